"""Long pandas frames <-> CSR arrays (docs/design.md §5), vectorised: no per-user Python loop.

Candidates ``user_id, item_id, score`` become a CSR whose user rows follow the order in which
users first appear, and whose rows keep the input order within a user (the tie rule's
"earlier position in the input").
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cached_property

import numpy as np
import pandas as pd

from rerank import schemas
from rerank.engine.layout import CandidateLists, ShownPrefix
from rerank.errors import InputError
from rerank.grouping import Groups, duplicated_within, take, user_groups
from rerank.ids import decode_dictionaries, id_array, restore, show_id


@dataclass(frozen=True)
class CandidateCSR:
    """Candidates grouped by user.

    ``users`` the distinct user ids (row order); ``indptr`` row bounds; ``rows`` the input row
    number of each CSR entry (so ``frame.iloc[rows]`` is the CSR order; int32 below 2³¹ rows;
    ``None`` when that is the input order: grouped users, nothing skipped); :attr:`item_ids`
    (CSR order) is ``item_source`` itself, or ``item_source[item_source_rows]`` gathered only
    when asked for (an interleaved frame: its ids in input order, and ``rows``); ``scores`` in
    CSR order; ``item_rows`` the category rows of the entries (CSR order) when the caller's item
    lookup made them while grouping (``None``: look :attr:`item_ids` up); ``skipped`` the users
    left out (``user_id, reason, n_rows``) and ``n_rows_without_user`` the rows dropped for a
    null ``user_id`` (``on_invalid="skip"``); ``user_kind`` / ``item_kind`` the id kinds
    (:func:`rerank.schemas.id_kind`). Ids are held exactly as numpy keys
    (:func:`rerank.ids.id_array`); ``user_dtype`` / ``item_dtype`` are the input's dtypes, which
    the output gets back.

    :meth:`lists` gives the engine's currency, :class:`rerank.engine.CandidateLists`, on the same
    ``indptr`` and ``scores`` (no copy), once the item ids are mapped to category rows.
    """

    users: pd.Index
    indptr: np.ndarray
    rows: np.ndarray | None
    item_source: pd.Index
    scores: np.ndarray
    skipped: pd.DataFrame = field(default_factory=schemas.empty_skipped)
    n_rows_without_user: int = 0
    user_kind: str = schemas.ID_EMPTY
    item_kind: str = schemas.ID_EMPTY
    user_dtype: object = None
    item_dtype: object = None
    item_rows: np.ndarray | None = None
    item_source_rows: np.ndarray | None = None

    @cached_property
    def item_ids(self) -> pd.Index:
        """The item id of each entry, in CSR order."""
        rows = self.item_source_rows
        return self.item_source if rows is None else _take_ids(self.item_source, rows)

    def item_ids_at(self, positions: np.ndarray) -> pd.Index:
        """``item_ids[positions]`` without gathering every entry's id first."""
        rows = self.item_source_rows
        return self.item_source.take(positions if rows is None else rows[positions])

    def lists(self, item_rows: np.ndarray) -> CandidateLists:
        """The candidates as :class:`CandidateLists` over ``item_rows`` (one row per entry)."""
        return CandidateLists(self.indptr, item_rows, self.scores)

    @property
    def user_of_entry(self) -> np.ndarray:
        return np.repeat(np.arange(len(self.users)), np.diff(self.indptr))


def _take_ids(ids: pd.Index, rows: np.ndarray) -> pd.Index:
    values = ids.to_numpy() if isinstance(ids.dtype, np.dtype) else None
    if values is None:
        return ids.take(rows)
    return pd.Index(take(values, rows), dtype=ids.dtype, copy=False)  # 8-byte numbers: in parallel


ItemLookup = Callable[[np.ndarray, np.ndarray, np.ndarray], "tuple[np.ndarray, np.ndarray, int] | None"]


def candidates_to_csr(
    candidates: pd.DataFrame, *, check_duplicates: bool = True, on_invalid: str = "raise",
    item_lookup: ItemLookup | None = None,
) -> CandidateCSR:
    """Validate a candidate frame (:func:`rerank.schemas.validate_candidates`) and group it
    by user (stable within each user).

    With ``on_invalid="skip"`` the users holding invalid rows are left out of the CSR and
    listed in ``skipped``; rows without a ``user_id`` are counted in ``n_rows_without_user``.

    An *interleaved* frame (a user's rows scattered) is grouped by :func:`regroup_by_user` and
    its scores are gathered into user order (in parallel); validation runs on the frame in its
    own order, so an error names the same row whatever the layout. ``item_lookup(ids, order,
    scores)``, when given, maps the item ids in the order ``ids[order]`` straight to category
    rows, one distinct row per known item, and gathers ``scores[order]`` in the same pass; it
    returns ``(rows, scores[order], n_unknown)``, or ``None`` when it cannot. The ids themselves
    are then never gathered, and when every item is known the duplicate check runs on the rows
    (the same answer: known items and rows correspond one to one).
    """
    dtypes = (candidates["user_id"].dtype, candidates["item_id"].dtype) if _has_id_columns(candidates) else None
    candidates = decode_dictionaries(candidates, ["user_id", "item_id"])
    groups = regroup_by_user(candidates) if on_invalid == "raise" else None
    if groups is None:
        return _grouped_csr(candidates, check_duplicates, on_invalid, dtypes)
    return _regrouped_csr(candidates, groups, check_duplicates, dtypes, item_lookup)


def regroup_by_user(candidates) -> Groups | None:
    """The user groups (:func:`rerank.grouping.user_groups` of the exact user ids) of an
    interleaved candidate frame: users by first appearance, rows stable within a user. ``None``
    when there is nothing to regroup: the frame is grouped already, has a missing column or a
    null ``user_id`` (validation reports those), or is not a frame."""
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
    groups = user_groups(id_array(users))
    return None if groups.order is None else groups


def _regrouped_csr(candidates: pd.DataFrame, groups: Groups, check_duplicates: bool, dtypes,
                   item_lookup: ItemLookup | None) -> CandidateCSR:
    """The CSR of an interleaved frame (``on_invalid="raise"``) from its user ``groups``: the
    frame is validated in its own order, the scores are gathered into user order, and the
    duplicate check runs user by user on the entries in that order (contiguous: the grouped
    pass), over the category rows when ``item_lookup`` made them for every item, else over the
    gathered ids. A duplicate found there is named by validating the frame again in input order."""
    checked = schemas.validate_candidates(candidates, on_invalid="raise", check_duplicates=False)
    order = groups.order
    item_ids = pd.Index(id_array(candidates["item_id"]), copy=False)
    found = None if item_lookup is None else item_lookup(item_ids.to_numpy(), order, checked.scores)
    item_rows, scores, n_unknown = (None, take(checked.scores, order), -1) if found is None else found
    csr = CandidateCSR(
        pd.Index(groups.uniques), groups.indptr, order, item_ids, scores, checked.skipped,
        checked.n_rows_without_user, checked.user_kind, checked.item_kind, *(dtypes or (None, None)), item_rows, order,
    )
    if check_duplicates:
        keys = item_rows if n_unknown == 0 else csr.item_ids  # rows stand for ids when every item is known
        if duplicated_within(groups.indptr, keys).any():
            schemas.validate_candidates(candidates, on_invalid="raise")  # raises, naming the first repeat
            raise RuntimeError("rerank: the grouped duplicate check disagrees with validate_candidates")
    return csr


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
    kept = None if checked.keep is None else np.flatnonzero(checked.keep)
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
        rows,
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
    """The output frame ``user_id, item_id, score, rank`` (rank from 1) of chosen positions.

    ``rank[j] = j - out_indptr[u] + 1`` for the ``j``-th output row, of user ``u``. Each column
    is built with one full-length array where possible (users repeated directly, ranks in
    place): a fresh multi-MB array costs its page faults (rerank.scan)."""
    lengths = np.diff(out_indptr)
    ranks = np.arange(1, len(positions) + 1, dtype=np.int64)
    ranks -= np.repeat(out_indptr[:-1], lengths)
    return pd.DataFrame(
        {
            "user_id": restore(_repeat(csr.users, lengths), csr.user_dtype),
            "item_id": restore(csr.item_ids_at(positions), csr.item_dtype),
            "score": csr.scores[positions],
            "rank": ranks,
        },
        copy=False,  # the columns are fresh arrays: no second copy into consolidated blocks
    )


def _repeat(index: pd.Index, counts: np.ndarray) -> pd.Index:
    """Each entry of ``index`` ``counts`` times (numpy-backed: one array; else through ``take``)."""
    if isinstance(index.dtype, np.dtype):
        return pd.Index(index.to_numpy().repeat(counts), dtype=index.dtype, copy=False)
    return index.take(np.repeat(np.arange(len(index)), counts))


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
