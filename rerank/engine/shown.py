"""Pages that remember (docs/design.md §9.3): the shown prefix as raw arrays, and the
candidates it removes (a shown item cannot be picked again)."""

from __future__ import annotations

import numpy as np

from rerank.engine.layout import CandidateLists, ShownPrefix
from rerank.errors import InputError
from rerank.params import int_array

__all__ = ["check_shown", "drop_shown", "shown_candidates"]


def check_shown(shown_indptr, shown_items, n_users: int, n_items: int) -> ShownPrefix | None:
    """The shown prefix as raw CSR arrays: user ``u``'s shown item rows are
    ``shown_items[shown_indptr[u]:shown_indptr[u+1]]``, in shown order, distinct per user."""
    if shown_indptr is None and shown_items is None:
        return None
    if shown_indptr is None or shown_items is None:
        raise InputError("a shown prefix needs both shown_indptr and shown_items")
    indptr = int_array("shown_indptr", shown_indptr)
    items = int_array("shown_items", shown_items)
    if indptr.shape != (n_users + 1,) or indptr[0] != 0 or np.any(np.diff(indptr) < 0) or indptr[-1] != items.size:
        raise InputError(
            f"shown_indptr must be nondecreasing from 0 with {n_users + 1} entries (one per user + 1) "
            f"ending at len(shown_items)={items.size}"
        )
    if items.size and (items.min() < 0 or items.max() >= n_items):
        bad = np.flatnonzero((items < 0) | (items >= n_items))[0]
        raise InputError(f"shown_items[{bad}]={items[bad]} is outside the category matrix's {n_items} rows")
    owners = np.repeat(np.arange(n_users, dtype=np.int64), np.diff(indptr))
    pairs = owners * np.int64(n_items + 1) + items
    order = np.argsort(pairs, kind="stable")
    repeated = np.flatnonzero(pairs[order][1:] == pairs[order][:-1])
    if repeated.size:
        first = order[repeated[0] + 1]
        raise InputError(f"shown_items[{first}]={items[first]} is shown twice to user row {owners[first]}")
    return ShownPrefix(indptr, items)


def shown_candidates(lists: CandidateLists, shown: ShownPrefix, n_items: int) -> np.ndarray:
    """Which candidate entries are in their user's shown prefix (by item row)."""
    owners = lists.owners()
    shown_owners = np.repeat(np.arange(lists.n_users, dtype=np.int64), np.diff(shown.indptr))
    width = np.int64(n_items + 1)
    return np.isin(owners * width + lists.items, shown_owners * width + shown.items)


def drop_shown(lists: CandidateLists, excluded: np.ndarray) -> tuple[np.ndarray, CandidateLists]:
    """The candidates that were not shown to their user: the kept global positions and the
    lists without the shown ones (docs/design.md §9.3: a shown item cannot be picked again)."""
    owners = lists.owners()
    kept = np.flatnonzero(~excluded)
    indptr = np.zeros(lists.n_users + 1, dtype=np.int64)
    np.cumsum(np.bincount(owners[kept], minlength=lists.n_users), out=indptr[1:])
    return kept, CandidateLists(indptr, lists.items[kept], lists.scores[kept])
