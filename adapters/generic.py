"""Adapters for any other library: a score matrix, or a function that scores pairs.

* :class:`ScoreMatrixAdapter`: a users × items score matrix. Dense: every cell is a
  candidate. Sparse: only the *stored* entries are candidates (a missing entry is "not
  retrieved", not a score of 0).
* :class:`CallableAdapter`: ``score_fn(user_index, item_index) -> scores`` over flat arrays
  of internal indices (the shape of ``LightFM.predict`` and most pointwise scorers); it is
  called once per block of users with all (user, item) pairs of the block.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import scipy.sparse as sp
from rerank.adapters.base import CandidateAdapter, top_n_stored

from rerank.errors import InputError, InputTypeError


class ScoreMatrixAdapter(CandidateAdapter):
    """Candidates from a precomputed users × items score matrix (dense array or sparse).

    ``user_ids`` / ``item_ids``: the external id of each row / column (default positions);
    ``user_items``: the training matrix for ``exclude_seen``.
    """

    def __init__(self, scores, *, user_ids=None, item_ids=None, user_items=None, batch_size=None):
        if sp.issparse(scores):
            self.scores = sp.csr_matrix(scores, dtype=np.float64)
            self.scores.sum_duplicates()
        else:
            self.scores = np.asarray(scores)
            if self.scores.ndim != 2 or self.scores.dtype.kind not in "fiu":
                raise InputTypeError(
                    f"scores must be a 2-d numeric array or a sparse matrix, got "
                    f"{self.scores.dtype} array of shape {self.scores.shape}"
                )
        n_users, n_items = self.scores.shape
        self._init_common(n_users, n_items, user_items, user_ids, item_ids, batch_size)

    def _score_block(self, rows, cols):
        block = self.scores[rows]
        return block if cols is None else block[:, cols]

    def _top_n_block(self, rows, n, exclude_seen, cols):
        if not sp.issparse(self.scores):
            return super()._top_n_block(rows, n, exclude_seen, cols)
        seen = self.user_items[rows] if exclude_seen else None
        return top_n_stored(self.scores[rows], n, seen=seen, cols=cols)


class CallableAdapter(CandidateAdapter):
    """Candidates from ``score_fn(user_index, item_index) -> scores`` (flat arrays of internal
    indices of equal length; returns one score per pair).

    Give the id mappings (``user_ids``, ``item_ids``) or the sizes (``n_users``, ``n_items``).
    """

    def __init__(
        self,
        score_fn: Callable[[np.ndarray, np.ndarray], np.ndarray],
        *,
        user_ids=None,
        item_ids=None,
        n_users: int | None = None,
        n_items: int | None = None,
        user_items=None,
        batch_size=None,
    ):
        if not callable(score_fn):
            raise InputTypeError(f"score_fn must be callable, got {type(score_fn).__name__}")
        self.score_fn = score_fn
        n_users = _size(user_ids, n_users, "user")
        n_items = _size(item_ids, n_items, "item")
        self._init_common(n_users, n_items, user_items, user_ids, item_ids, batch_size)

    def _score_block(self, rows, cols):
        cols = np.arange(self.n_items, dtype=np.int64) if cols is None else cols
        users = np.repeat(rows, cols.size)
        items = np.tile(cols, rows.size)
        scores = np.asarray(self.score_fn(users, items))
        if scores.shape not in ((users.size,), (rows.size, cols.size)):
            raise InputError(
                f"score_fn returned shape {scores.shape} for {users.size} (user, item) pairs"
            )
        if scores.dtype.kind not in "fiu":
            raise InputTypeError(f"score_fn must return numbers, got dtype {scores.dtype}")
        return scores.reshape(rows.size, cols.size)


def _size(ids, n, what: str) -> int:
    if ids is not None:
        return len(ids)
    if n is None:
        raise InputError(f"give {what}_ids or n_{what}s")
    return int(n)
