"""The adapter contract: a trained recommender in, a candidate frame out (docs/design.md §5).

Every adapter answers one call::

    adapter.candidates(users, n=100, exclude_seen=True, items=None)
        -> DataFrame[user_id, item_id, score]

in the caller's *external* ids, at most ``n`` rows per user, sorted within each user by
score (highest first; ties by lower internal item index, except that implicit's
matrix-factorisation models keep the order of the library's own top-k), batched over users:
work is done on blocks of users with array operations, never in a per-user Python loop.
``exclude_seen`` drops each user's training items (the ``user_items`` matrix); ``items``
restricts the candidates to a subset of the catalogue.

:func:`recommend_calibrated` is the one-call helper: candidates from an adapter, reranked by a
:class:`rerank.CalibratedReranker` (the one kernel).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence

import numpy as np
import pandas as pd
import scipy.sparse as sp

from rerank import CalibratedReranker
from rerank.engine.layout import CandidateLists
from rerank.engine.topn import BLOCK_CELLS, top_n_dense, top_n_stored
from rerank.errors import InputError, InputTypeError
from rerank.params import check_whole, show

__all__ = [
    "BLOCK_CELLS", "CandidateAdapter", "as_csr_matrix", "id_index", "lookup", "recommend_calibrated", "seen_cells",
    "top_n_dense", "top_n_stored",
]


def as_csr_matrix(matrix, name: str = "user_items") -> sp.csr_matrix:
    """Any scipy sparse matrix or array (``csr_array``, ``coo_matrix``, ...) as a canonical
    ``csr_matrix`` (sorted indices, duplicates summed). Dense input raises ``TypeError``."""
    if not sp.issparse(matrix):
        raise InputTypeError(f"{name} must be a scipy sparse matrix or array, got {type(matrix).__name__}")
    out = sp.csr_matrix(matrix)
    if not out.has_canonical_format:
        out = out.copy()
        out.sum_duplicates()
    return out


def id_index(ids, size: int, what: str) -> pd.Index:
    """External ids by internal position: ``ids`` (one per position) or ``0..size-1``."""
    if ids is None:
        return pd.RangeIndex(size)
    index = pd.Index(ids)
    if len(index) != size:
        raise InputError(f"{what} has {len(index)} ids but the model has {size} {what.split('_')[0]}s")
    if index.has_duplicates:
        raise InputError(f"{what} has duplicate id {show(index[index.duplicated()][0])}")
    return index


def ids_from_mapping(mapping: dict) -> pd.Index:
    """External ids ordered by internal index, from a ``{external: internal}`` dict whose
    indices are ``0..n-1`` (LightFM's ``Dataset.mapping()``, Cornac's ``uid_map``)."""
    ids = np.empty(len(mapping), dtype=object)
    positions = np.fromiter(mapping.values(), dtype=np.int64, count=len(mapping))
    if len(mapping) and not np.array_equal(np.sort(positions), np.arange(len(mapping))):
        raise InputError("the id mapping's internal indices are not 0..n-1")
    ids[positions] = list(mapping.keys())
    return pd.Index(list(ids))


def lookup(index: pd.Index, ids, what: str) -> np.ndarray:
    """Internal positions of external ids; an unknown id raises ``ValueError`` naming it."""
    ids = pd.Index(ids)
    pos = index.get_indexer(ids)
    bad = np.flatnonzero(pos < 0)
    if bad.size:
        raise InputError(f"unknown {what} {show(ids[bad[0]])} ({bad.size} unknown {what}s)")
    return pos.astype(np.int64)


def seen_cells(user_items: sp.csr_matrix, rows: np.ndarray, col_pos: np.ndarray | None):
    """``(block_row, block_col)`` of the training items of users ``rows``; with a restricted
    catalogue ``col_pos`` maps an item to its block column (``-1``: not in the block)."""
    seen = user_items[rows].tocoo()
    r, c = seen.row.astype(np.int64), seen.col.astype(np.int64)
    if col_pos is not None:
        c = col_pos[c]
        r, c = r[c >= 0], c[c >= 0]
    return r, c


class CandidateAdapter(ABC):
    """Base class: id mappings, validation and batching; subclasses score blocks of users.

    Attributes ``user_ids`` / ``item_ids`` (external id of each internal position) and
    ``user_items`` (the users × items training matrix as ``csr_matrix``, or ``None``).
    Subclasses implement :meth:`_top_n_block` (or :meth:`_score_block` for dense scorers).
    """

    user_ids: pd.Index
    item_ids: pd.Index
    user_items: sp.csr_matrix | None
    batch_size: int | None = None

    def _init_common(self, n_users: int, n_items: int, user_items, user_ids, item_ids, batch_size):
        self.user_ids = id_index(user_ids, n_users, "user_ids")
        self.item_ids = id_index(item_ids, n_items, "item_ids")
        if user_items is not None:
            user_items = as_csr_matrix(user_items)
            if user_items.shape != (n_users, n_items):
                raise InputError(
                    f"user_items has shape {user_items.shape}, but the model has "
                    f"{n_users} users and {n_items} items: row u must be internal user u"
                )
        self.user_items = user_items
        if batch_size is not None:
            batch_size = check_whole("batch_size", batch_size)
        self.batch_size = batch_size

    @property
    def n_users(self) -> int:
        return len(self.user_ids)

    @property
    def n_items(self) -> int:
        return len(self.item_ids)

    def _batch(self, n_cols: int) -> int:
        if self.batch_size is not None:
            return self.batch_size
        return max(1, min(4096, BLOCK_CELLS // max(n_cols, 1)))

    def _user_rows(self, users) -> np.ndarray:
        if users is None:
            return np.arange(self.n_users, dtype=np.int64)
        return lookup(self.user_ids, pd.unique(pd.Index(users)), "user")

    def candidate_lists(
        self,
        users=None,
        n: int = 100,
        exclude_seen: bool = True,
        items: Sequence | None = None,
    ) -> CandidateLists:
        """Top-``n`` candidates per user as :class:`rerank.CandidateLists`, no pandas frame.

        Row ``u`` of the lists is the ``u``-th distinct user of ``users`` (default: every user, in
        internal order); ``lists.items`` are *internal* item indices (positions in ``item_ids``),
        by descending score within a user. Arguments as in :meth:`candidates`.
        """
        return self._lists(users, n, exclude_seen, items)[1]

    def candidates(
        self,
        users=None,
        n: int = 100,
        exclude_seen: bool = True,
        items: Sequence | None = None,
    ) -> pd.DataFrame:
        """Top-``n`` candidates per user: ``user_id, item_id, score`` (external ids).

        ``users``: external user ids (default: every user the model knows; repeats are
        dropped); an unknown user raises ``ValueError``. ``exclude_seen``: drop each user's
        items in ``user_items``. ``items``: restrict to these external item ids. A user may get
        fewer than ``n`` rows (small catalogue, everything seen); users are kept in the given
        order, rows within a user by descending score.
        """
        user_rows, lists = self._lists(users, n, exclude_seen, items)
        return pd.DataFrame(
            {
                "user_id": self.user_ids.take(user_rows[lists.owners()]),
                "item_id": self.item_ids.take(lists.items),
                "score": lists.scores,
            }
        )

    def _lists(self, users, n, exclude_seen, items) -> tuple[np.ndarray, CandidateLists]:
        """The user rows and their top-n, block by block (about ``BLOCK_CELLS`` scores at once)."""
        n = check_whole("n", n)
        if exclude_seen and self.user_items is None:
            raise InputError("exclude_seen=True needs user_items (the users × items training matrix)")
        user_rows = self._user_rows(users)
        cols = None
        if items is not None:
            cols = np.unique(lookup(self.item_ids, pd.Index(items), "item"))
        n_cols = self.n_items if cols is None else cols.size
        step = self._batch(n_cols)
        owners, item_pos, scores = [], [], []
        for start in range(0, user_rows.size, step):
            block = user_rows[start : start + step]
            r, c, s = self._top_n_block(block, n, bool(exclude_seen), cols)
            owners.append(r + start)
            item_pos.append(c)
            scores.append(s)
        if owners:
            owner = np.concatenate(owners)
            item = np.concatenate(item_pos)
            score = np.concatenate(scores)
        else:
            owner = item = np.empty(0, dtype=np.int64)
            score = np.empty(0, dtype=np.float64)
        return user_rows, CandidateLists.from_rows(owner, item, score, user_rows.size)

    # ------------------------------------------------------------------ hooks
    def _top_n_block(self, rows: np.ndarray, n: int, exclude_seen: bool, cols: np.ndarray | None):
        """Top-n of a block of users: ``(block_row, item_position, score)``.

        Default: dense scores from :meth:`_score_block`, seen cells set to ``-inf``."""
        scores = np.array(self._score_block(rows, cols), dtype=np.float64, copy=True)
        expected = (rows.size, self.n_items if cols is None else cols.size)
        if scores.shape != expected:
            raise InputError(f"score block has shape {scores.shape}, expected {expected}")
        if exclude_seen:
            col_pos = None
            if cols is not None:
                col_pos = np.full(self.n_items, -1, dtype=np.int64)
                col_pos[cols] = np.arange(cols.size)
            r, c = seen_cells(self.user_items, rows, col_pos)
            scores[r, c] = -np.inf
        r, c, s = top_n_dense(scores, n)
        if cols is not None:
            c = cols[c]
        return r, c, s

    @abstractmethod
    def _score_block(self, rows: np.ndarray, cols: np.ndarray | None) -> np.ndarray:
        """Dense scores ``len(rows) × len(cols)`` (all items when ``cols`` is None)."""


def recommend_calibrated(
    adapter: CandidateAdapter,
    reranker: CalibratedReranker,
    users=None,
    *,
    n: int = 100,
    exclude_seen: bool = True,
    items: Sequence | None = None,
    history: pd.DataFrame | None = None,
    item_categories: pd.DataFrame | None = None,
) -> pd.DataFrame:
    """Candidates from ``adapter`` reranked by ``reranker``, in one call.

    ``reranker`` is a :class:`rerank.CalibratedReranker`; if ``history`` and
    ``item_categories`` are given it is fitted on them first, otherwise it must already be
    fitted. Returns the reranker's output ``user_id, item_id, score, rank``.
    """
    if not isinstance(reranker, CalibratedReranker):
        raise InputTypeError(f"reranker must be a CalibratedReranker, got {type(reranker).__name__}")
    if (history is None) != (item_categories is None):
        raise InputError("pass both history and item_categories to fit the reranker, or neither")
    if history is not None:
        reranker.fit(history, item_categories)
    elif not hasattr(reranker, "targets_"):
        raise InputError("reranker is not fitted: pass history and item_categories, or fit it first")
    candidates = adapter.candidates(users, n=n, exclude_seen=exclude_seen, items=items)
    return reranker.rerank(candidates)
