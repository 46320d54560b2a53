"""Long pandas frames <-> CSR arrays (docs/design.md §5), vectorised: no per-user Python loop.

Candidates ``user_id, item_id, score`` become a CSR whose user rows follow the order in which
users first appear, and whose rows keep the input order within a user (the tie rule's
"earlier position in the input").
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from rerank import schemas
from rerank.engine.layout import CandidateLists, ShownPrefix
from rerank.errors import InputError
from rerank.grouping import take, user_groups
from rerank.ids import decode_dictionaries, id_array, restore, show_id


@dataclass(frozen=True)
class CandidateCSR:
    """Candidates grouped by user.

    ``users`` the distinct user ids (row order); ``indptr`` row bounds; ``rows`` the input row
    number of each CSR entry (so ``frame.iloc[rows]`` is the CSR order; ``None`` when that is
    the input order: grouped users, nothing skipped); ``item_ids`` and
    ``scores`` in CSR order; ``skipped`` the users left out (``user_id, reason, n_rows``) and
    ``n_rows_without_user`` the rows dropped for a null ``user_id`` (``on_invalid="skip"``);
    ``user_kind`` / ``item_kind`` the id kinds (:func:`rerank.schemas.id_kind`). Ids are held
    exactly as numpy keys (:func:`rerank.ids.id_array`); ``user_dtype`` / ``item_dtype`` are the
    input's dtypes, which the output gets back.

    :meth:`lists` gives the engine's currency, :class:`rerank.engine.CandidateLists`, on the same
    ``indptr`` and ``scores`` (no copy), once the item ids are mapped to category rows.
    """

    users: pd.Index
    indptr: np.ndarray
    rows: np.ndarray | None
    item_ids: pd.Index
    scores: np.ndarray
    skipped: pd.DataFrame = field(default_factory=schemas.empty_skipped)
    n_rows_without_user: int = 0
    user_kind: str = schemas.ID_EMPTY
    item_kind: str = schemas.ID_EMPTY
    user_dtype: object = None
    item_dtype: object = None

    def lists(self, item_rows: np.ndarray) -> CandidateLists:
        """The candidates as :class:`CandidateLists` over ``item_rows`` (one row per entry)."""
        return CandidateLists(self.indptr, item_rows, self.scores)

    @property
    def user_of_entry(self) -> np.ndarray:
        return np.repeat(np.arange(len(self.users)), np.diff(self.indptr))


def candidates_to_csr(
    candidates: pd.DataFrame, *, check_duplicates: bool = True, on_invalid: str = "raise"
) -> CandidateCSR:
    """Validate a candidate frame (:func:`rerank.schemas.validate_candidates`) and group it
    by user (stable within each user).

    With ``on_invalid="skip"`` the users holding invalid rows are left out of the CSR and
    listed in ``skipped``; rows without a ``user_id`` are counted in ``n_rows_without_user``.

    An *interleaved* frame (a user's rows scattered) is first regrouped by user
    (:func:`regroup_by_user`: its ids and scores gathered once, in parallel), so validation,
    the duplicate check and the CSR all take the grouped O(rows) path. A frame that fails
    validation is checked again in its own order, so the error names the same row either way.
    """
    dtypes = (candidates["user_id"].dtype, candidates["item_id"].dtype) if _has_id_columns(candidates) else None
    candidates = decode_dictionaries(candidates, ["user_id", "item_id"])
    regrouped = regroup_by_user(candidates) if on_invalid == "raise" else None
    if regrouped is None:
        return _grouped_csr(candidates, check_duplicates, on_invalid, dtypes)
    frame, order = regrouped
    try:
        csr = _grouped_csr(frame, check_duplicates, on_invalid, dtypes)
    except InputError:
        _grouped_csr(candidates, check_duplicates, on_invalid, dtypes)  # raises, naming the first bad row
        raise
    return dataclasses.replace(csr, rows=order if csr.rows is None else order[csr.rows])


def regroup_by_user(candidates) -> tuple[pd.DataFrame, np.ndarray] | None:
    """``(frame, order)``: the columns ``user_id, item_id, score`` of an interleaved candidate
    frame in user order (users by first appearance, rows stable within a user; index labels
    kept), and the input row of each output row. ``None`` when there is nothing to regroup: the
    frame is grouped already, has a missing column or a null ``user_id`` (validation reports
    those), or is not a frame."""
    if not isinstance(candidates, pd.DataFrame) or len(candidates) < 2:
        return None
    columns = candidates.columns
    if isinstance(columns, pd.MultiIndex):
        return None
    if any(np.count_nonzero(columns == c) != 1 for c in schemas.CANDIDATE_COLUMNS):
        return None
    users = candidates["user_id"]
    if users.hasnans:
        return None
    groups = user_groups(users)
    if groups.order is None:
        return None
    order = groups.order
    index = candidates.index
    if isinstance(index, pd.RangeIndex):
        labels = pd.Index(index.start + index.step * order, name=index.name)
    else:
        labels = index.take(order)
    frame = pd.DataFrame(
        {
            "user_id": groups.uniques.repeat(np.diff(groups.indptr)),
            "item_id": _take_column(candidates["item_id"], order),
            "score": _take_column(candidates["score"], order),
        },
        index=labels,
        copy=False,
    )
    return frame, order


def _take_column(column: pd.Series, order: np.ndarray):
    values = column.array
    if isinstance(values, pd.arrays.NumpyExtensionArray):
        return take(column.to_numpy(), order)
    return values.take(order)


def _has_id_columns(candidates) -> bool:
    """Both id columns present once each (else validation names what is wrong)."""
    if not isinstance(candidates, pd.DataFrame) or isinstance(candidates.columns, pd.MultiIndex):
        return False
    return all(np.count_nonzero(candidates.columns == c) == 1 for c in ("user_id", "item_id"))


def _grouped_csr(candidates: pd.DataFrame, check_duplicates: bool, on_invalid: str, dtypes) -> CandidateCSR:
    """The CSR of a candidate frame in its own row order (module docstring); ``dtypes``: the
    input's id dtypes (a dictionary column gets its type back in the output)."""
    checked = schemas.validate_candidates(
        candidates, on_invalid=on_invalid, check_duplicates=check_duplicates
    )
    kept = np.flatnonzero(checked.keep) if not checked.keep.all() else None
    user_col, item_col = candidates["user_id"], candidates["item_id"]
    # ids as exact numpy keys (never through float64: docs/inputs.md "Ids"); the output gets the
    # input dtypes back (output_frame)
    user_ids = id_array(user_col if kept is None else user_col.iloc[kept])
    groups = user_groups(user_ids)  # O(rows), no hashing or sorting, when users come grouped
    users, indptr = groups.uniques, groups.indptr
    if groups.order is None and kept is None:  # CSR order is the input order: no copies
        rows = None
        item_ids = pd.Index(id_array(item_col), copy=False)
        scores = checked.scores
    else:
        rows = groups.rows if kept is None else kept[groups.rows]
        item_ids = pd.Index(id_array(item_col.iloc[rows]), copy=False)
        scores = checked.scores[rows]
    return CandidateCSR(
        pd.Index(users),
        indptr,
        rows if rows is None else rows.astype(np.int64, copy=False),
        item_ids,
        scores,
        checked.skipped,
        checked.n_rows_without_user,
        checked.user_kind,
        checked.item_kind,
        *(dtypes or (None, None)),
    )


def per_user_values(candidates: pd.DataFrame, column: str, csr: CandidateCSR) -> np.ndarray:
    """One value per user from a column that must be constant within each user."""
    schemas.require_columns(candidates, [column], "candidates")
    values = schemas.require_numeric(candidates[column], "candidates")
    values = values if csr.rows is None else values[csr.rows]
    first = values[csr.indptr[:-1]]
    repeated = np.repeat(first, np.diff(csr.indptr))
    differs = (values != repeated) & ~(np.isnan(values) & np.isnan(repeated))
    if differs.any():
        user = csr.users[csr.user_of_entry[np.flatnonzero(differs)[0]]]
        raise InputError(
            f"candidates column '{column}' must be constant per user; user {show_id(user)} has several values"
        )
    return first


def output_frame(csr: CandidateCSR, out_indptr: np.ndarray, positions: np.ndarray) -> pd.DataFrame:
    """The output frame ``user_id, item_id, score, rank`` (rank from 1) of chosen positions."""
    lengths = np.diff(out_indptr)
    owners = np.repeat(np.arange(len(csr.users)), lengths)
    ranks = np.arange(len(positions)) - np.repeat(out_indptr[:-1], lengths) + 1
    return pd.DataFrame(
        {
            "user_id": restore(csr.users.take(owners), csr.user_dtype),
            "item_id": restore(csr.item_ids.take(positions), csr.item_dtype),
            "score": csr.scores[positions],
            "rank": ranks.astype(np.int64),
        },
        copy=False,  # the columns are fresh arrays: no second copy into consolidated blocks
    )


def shown_prefix(shown: schemas.CheckedShown, csr: CandidateCSR, item_rows, keys) -> tuple[ShownPrefix, np.ndarray]:
    """The shown prefix of the candidate users (docs/design.md §9.3) and which candidate entries
    were shown (by item id: unknown items share one empty category row, so rows cannot tell).

    ``item_rows(ids)`` maps item ids to category rows; ``keys(ids)`` makes ids comparable
    (``rerank.ids.id_array``, or ``text_keys`` when integers meet text). Users of ``shown``
    without candidates are ignored; each user's shown items keep the shown order.
    """
    frame = shown.frame
    user_rows = pd.Index(keys(csr.users)).get_indexer(keys(frame["user_id"]))
    keep = np.flatnonzero(user_rows >= 0)
    user_rows = user_rows[keep]
    order = keep[np.argsort(user_rows, kind="stable")]
    shown_items = pd.Index(id_array(frame["item_id"])[order])
    n_users = len(csr.users)
    indptr = np.zeros(n_users + 1, dtype=np.int64)
    np.cumsum(np.bincount(user_rows, minlength=n_users), out=indptr[1:])
    prefix = ShownPrefix(indptr, np.asarray(item_rows(shown_items), dtype=np.int64))
    codes, _ = pd.factorize(np.concatenate([keys(csr.item_ids), keys(shown_items)]))
    width = np.int64(codes.max(initial=0) + 1)
    cand_keys = csr.user_of_entry.astype(np.int64) * width + codes[: len(csr.item_ids)]
    shown_owners = np.repeat(np.arange(n_users, dtype=np.int64), np.diff(indptr))
    excluded = np.isin(cand_keys, shown_owners * width + codes[len(csr.item_ids):])
    return prefix, excluded
