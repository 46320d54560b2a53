"""``ImplicitAdapter``: candidates from a trained `implicit <https://github.com/benfred/implicit>`_
(0.7) model — ALS, BPR, LMF (matrix factorisation) and the item-item nearest-neighbour models
(``CosineRecommender``, ``BM25Recommender``, ``TFIDFRecommender``, ``ItemItemRecommender``).

What it takes care of (each a pitfall of calling ``model.recommend`` yourself):

* **GPU models** (``implicit.gpu``) are converted once with ``model.to_cpu()``.
* **Row alignment**: for a batch of user ids, ``recommend`` wants ``user_items[userids]``
  (one row per requested user), not the full matrix; the adapter slices it.
* **``-FLT_MAX`` entries**: when a user's eligible items run out (everything left was
  filtered as seen), implicit fills the remaining slots with score ``-3.4e38`` (``-1.8e308``
  for item-item models with ``items=``); they are dropped.
* **Padding**: matrix-factorisation models asked for ``N`` > number of items return extra
  id-0 / score-0 slots; ``N`` is capped at the number of eligible items and any slot past it is
  dropped. Item-item models pad with id ``-1``; those are dropped too.
* **``csr_array``**: implicit checks ``isinstance(user_items, csr_matrix)``; any scipy sparse
  matrix or array is converted to ``csr_matrix`` once.
* **Item-item models** score ``user_items[u] @ similarity`` (the library's own scorer, as a
  sparse product over the whole block, instead of implicit's per-user loop); an item only
  reachable through no neighbour is not a candidate. Seen items, which implicit returns with
  score 0 when ``N`` is large, are removed when ``exclude_seen``.

``implicit`` is imported lazily, so ``import rerank.adapters`` works without it.
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp
from rerank.adapters.base import CandidateAdapter, top_n_stored

from rerank.errors import InputError, InputTypeError

#: implicit marks "no more candidates" with -FLT_MAX (float32) or -DBL_MAX; anything at or
#: below this threshold is such a marker, never a real score.
FILLER_THRESHOLD = -np.finfo(np.float32).max


def _implicit():
    try:
        import implicit
        import implicit.cpu.matrix_factorization_base
        import implicit.nearest_neighbours
    except ImportError as exc:
        raise ImportError(
            "ImplicitAdapter needs the 'implicit' package: pip install 'calibrated-rerank[implicit]'"
        ) from exc
    return implicit


def to_cpu(model):
    """A CPU copy of a GPU implicit model (``model.to_cpu()``); CPU models are returned as is."""
    implicit = _implicit()
    try:
        from implicit.gpu.matrix_factorization_base import MatrixFactorizationBase as GpuBase
    except ImportError:  # pragma: no cover - implicit built without the gpu package
        GpuBase = ()
    if GpuBase and isinstance(model, GpuBase):
        return model.to_cpu()
    if isinstance(
        model,
        implicit.cpu.matrix_factorization_base.MatrixFactorizationBase
        | implicit.nearest_neighbours.ItemItemRecommender,
    ):
        return model
    raise InputTypeError(
        f"ImplicitAdapter supports implicit's matrix-factorisation (ALS, BPR, LMF) and item-item "
        f"nearest-neighbour models, got {type(model).__module__}.{type(model).__name__}"
    )


class ImplicitAdapter(CandidateAdapter):
    """Candidates from an ``implicit`` model.

    Parameters
    ----------
    model : a fitted implicit model (CPU or GPU; GPU models are copied to the CPU).
    user_items : the users × items matrix the model was fitted on (any scipy sparse format);
        row ``u`` is internal user ``u``. Needed for ``exclude_seen`` and, for item-item
        models, to score at all.
    user_ids, item_ids : external id of each internal user / item (default: the positions),
        e.g. from :func:`rerank.adapters.interaction_matrix`.
    batch_size : users per ``recommend`` call (default: about 4M scores per block).
    """

    def __init__(self, model, user_items=None, *, user_ids=None, item_ids=None, batch_size=None):
        implicit = _implicit()
        self.model = to_cpu(model)
        self.kind = (
            "item-item"
            if isinstance(self.model, implicit.nearest_neighbours.ItemItemRecommender)
            else "factorization"
        )
        if self.kind == "factorization":
            if self.model.item_factors is None or self.model.user_factors is None:
                raise InputError(f"{type(self.model).__name__} is not fitted (no factors)")
            n_users, n_items = self.model.user_factors.shape[0], self.model.item_factors.shape[0]
        else:
            if self.model.similarity is None:
                raise InputError(f"{type(self.model).__name__} is not fitted (no similarity)")
            if user_items is None:
                raise InputError("item-item models score from user_items: pass the training matrix")
            n_items = self.model.similarity.shape[0]
            n_users = user_items.shape[0]
            self._similarity = sp.csr_matrix(self.model.similarity)
        self._init_common(n_users, n_items, user_items, user_ids, item_ids, batch_size)

    def _batch(self, n_cols: int) -> int:
        # Item-item blocks are sparse (a user reaches a few thousand items at most): larger
        # blocks than the dense budget, fewer sparse products.
        if self.kind == "item-item" and self.batch_size is None:
            return 2048
        return super()._batch(n_cols)

    def _score_block(self, rows, cols):  # pragma: no cover - _top_n_block is overridden
        raise NotImplementedError

    def _top_n_block(self, rows, n, exclude_seen, cols):
        if self.kind == "item-item":
            return self._item_item_block(rows, n, exclude_seen, cols)
        return self._factorization_block(rows, n, exclude_seen, cols)

    def _factorization_block(self, rows, n, exclude_seen, cols):
        n_eligible = self.n_items if cols is None else cols.size
        N = min(n, n_eligible)
        user_items = self.user_items[rows] if self.user_items is not None else None
        ids, scores = self.model.recommend(
            rows,
            user_items,
            N=N,
            filter_already_liked_items=exclude_seen,
            items=cols,
        )
        ids = np.asarray(ids, dtype=np.int64).reshape(rows.size, -1)
        scores = np.asarray(scores, dtype=np.float64).reshape(rows.size, -1)
        slot = np.broadcast_to(np.arange(ids.shape[1]), ids.shape)
        keep = (scores > FILLER_THRESHOLD) & (slot < n_eligible) & (ids >= 0)
        r, slot_kept = np.nonzero(keep)
        return r.astype(np.int64), ids[r, slot_kept], scores[r, slot_kept]

    def _item_item_block(self, rows, n, exclude_seen, cols):
        block = self.user_items[rows] @ self._similarity
        seen = self.user_items[rows] if exclude_seen else None
        return top_n_stored(block, n, seen=seen, cols=cols)
