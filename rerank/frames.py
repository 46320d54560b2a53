"""Long pandas frames <-> CSR arrays (DESIGN §5), vectorised: no per-user Python loop.

Candidates ``user_id, item_id, score`` become a CSR whose user rows follow the order in which
users first appear, and whose rows keep the input order within a user (the tie rule's
"earlier position in the input").
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from rerank import validation

CANDIDATE_COLUMNS = ["user_id", "item_id", "score"]
OUTPUT_COLUMNS = ["user_id", "item_id", "score", "rank"]


@dataclass(frozen=True)
class CandidateCSR:
    """Candidates grouped by user.

    ``users`` the distinct user ids (row order); ``indptr`` row bounds; ``rows`` the input row
    number of each CSR entry (so ``frame.iloc[rows]`` is the CSR order); ``item_ids`` and
    ``scores`` in CSR order.
    """

    users: pd.Index
    indptr: np.ndarray
    rows: np.ndarray
    item_ids: pd.Index
    scores: np.ndarray

    @property
    def user_of_entry(self) -> np.ndarray:
        return np.repeat(np.arange(len(self.users)), np.diff(self.indptr))


def candidates_to_csr(candidates: pd.DataFrame, *, check_duplicates: bool = True) -> CandidateCSR:
    """Validate a candidate frame and group it by user (stable within each user)."""
    validation.require_columns(candidates, CANDIDATE_COLUMNS, "candidates")
    validation.require_no_null_ids(candidates, ["user_id", "item_id"], "candidates")
    scores = validation.require_numeric(candidates["score"], "candidates")
    bad = np.flatnonzero(~np.isfinite(scores))
    if bad.size:
        row = candidates.iloc[bad[0]]
        raise ValueError(
            f"candidates column 'score' must be finite: user {row['user_id']!r}, item "
            f"{row['item_id']!r} has {scores[bad[0]]!r} ({bad.size} such rows)"
        )
    if check_duplicates:
        dup = candidates.duplicated(["user_id", "item_id"]).to_numpy()
        if dup.any():
            row = candidates.iloc[np.flatnonzero(dup)[0]]
            raise ValueError(
                f"candidates has duplicate (user_id, item_id) rows, e.g. user {row['user_id']!r}, "
                f"item {row['item_id']!r}"
            )
    codes, users = pd.factorize(candidates["user_id"], sort=False)
    rows = np.argsort(codes, kind="stable")
    counts = np.bincount(codes, minlength=len(users))
    indptr = np.zeros(len(users) + 1, dtype=np.int64)
    np.cumsum(counts, out=indptr[1:])
    item_ids = pd.Index(candidates["item_id"].to_numpy()[rows])
    return CandidateCSR(pd.Index(users), indptr, rows.astype(np.int64), item_ids, scores[rows])


def per_user_values(candidates: pd.DataFrame, column: str, csr: CandidateCSR) -> np.ndarray:
    """One value per user from a column that must be constant within each user."""
    validation.require_columns(candidates, [column], "candidates")
    values = validation.require_numeric(candidates[column], "candidates")[csr.rows]
    first = values[csr.indptr[:-1]]
    differs = values != np.repeat(first, np.diff(csr.indptr))
    if differs.any():
        user = csr.users[csr.user_of_entry[np.flatnonzero(differs)[0]]]
        raise ValueError(f"candidates column '{column}' must be constant per user; user {user!r} has several values")
    return first


def output_frame(csr: CandidateCSR, out_indptr: np.ndarray, positions: np.ndarray) -> pd.DataFrame:
    """The output frame ``user_id, item_id, score, rank`` (rank from 1) of chosen positions."""
    lengths = np.diff(out_indptr)
    owners = np.repeat(np.arange(len(csr.users)), lengths)
    ranks = np.arange(len(positions)) - np.repeat(out_indptr[:-1], lengths) + 1
    return pd.DataFrame(
        {
            "user_id": csr.users.take(owners),
            "item_id": csr.item_ids.take(positions),
            "score": csr.scores[positions],
            "rank": ranks.astype(np.int64),
        }
    )
