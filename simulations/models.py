"""The model in the loop: retrained on the log every R rounds, it scores candidates.

* ``als``: implicit ALS (``implicit.cpu.als``, Hu, Koren & Volinsky 2008) on the signed
  feedback of :meth:`InteractionLog.feedback_matrix`: clicks are positives, examined but
  unclicked impressions negatives ("known negatives": implicit reads a negative entry as
  preference 0 with confidence ``|entry|``). Each entry ``r`` becomes
  ``sign(r) · (1 + α|r|)``: confidence ``1 + α|r|`` as in Hu et al. and Spark's implicit
  ALS, which applies the same ``α`` to negative entries. :class:`FactorAdapter` scores
  blocks of users by ``X_u Y^T``.
  (:class:`rerank.adapters.ImplicitAdapter` gives the same candidates but goes through
  ``model.recommend``, about ten times slower per round here.)
* ``popularity``: the (weighted) click count of each item, the same for every user.
* ``oracle``: the true relevance ``rel(u,i)`` under the users' *current* interests.
* ``position-tower``: :class:`rerank.simulations.tower.PositionTower` (position term dropped
  at serving).

Training modes (``als`` and ``popularity``): ``naive`` counts each click as one positive;
``ips`` weights each click by ``min(1/propensity, clip)`` (organic rows: propensity 1).

Every model returns :class:`rerank.CandidateLists` (the candidate currency the reranking
engine takes) through the adapter contract (:class:`rerank.adapters.base.CandidateAdapter`:
:class:`FactorAdapter` for ALS, :class:`BlockScorerAdapter` for the others): per user the top
``n`` available items by score from the one top-n (:func:`rerank.engine.topn.top_n_dense`,
ties by lower item row), leaving out the items in ``exclude`` (what the user consumed, when
re-consumption is off).
"""

from __future__ import annotations

from abc import ABC, abstractmethod

import numpy as np
import scipy.sparse as sp
from rerank.adapters.base import CandidateAdapter
from rerank.simulations.config import SimConfig
from rerank.simulations.log import InteractionLog
from rerank.simulations.rng import stream
from rerank.simulations.tower import PositionTower
from rerank.simulations.world import RoundRelevance, World

from rerank import CandidateLists


class LoopModel(ABC):
    """A model retrained on the log and asked for candidates each round."""

    name: str = ""

    def __init__(self, world: World, config: SimConfig):
        self.world = world
        self.config = config

    @abstractmethod
    def fit(self, log: InteractionLog, n_available: int, round_: int) -> None:
        """Retrain on the whole log (items ``0..n_available-1`` exist)."""

    @abstractmethod
    def candidates(self, exclude: sp.csr_matrix | None, n_available: int, n: int) -> CandidateLists:
        """Top-``n`` available items per user, without the cells of ``exclude``."""


class FactorAdapter(CandidateAdapter):
    """Candidates from a factorisation ``score(u,i) = x_u·y_i`` through the adapter contract
    (batching, ``exclude_seen``, the one top-n with ties by lower item index).

    Used for implicit's ALS in the loop: the same scores as ``model.recommend`` (implicit's
    matrix-factorisation scorer is the dot product), computed as one dense block product.
    """

    def __init__(self, user_factors, item_factors, user_items=None, *, batch_size=None):
        self.user_factors = np.asarray(user_factors)
        self.item_factors = np.asarray(item_factors)
        self._init_common(self.user_factors.shape[0], self.item_factors.shape[0], user_items,
                          None, None, batch_size)

    def _score_block(self, rows, cols):
        items = self.item_factors if cols is None else self.item_factors[cols]
        return self.user_factors[rows] @ items.T


class BlockScorerAdapter(CandidateAdapter):
    """Candidates from a dense scorer ``score_block(user_rows) -> len(user_rows) × n_items``
    through the adapter contract: the popularity, oracle and tower models of the loop."""

    def __init__(self, score_block, n_users: int, n_items: int, user_items=None, *, batch_size=None):
        self.score_block = score_block
        self._init_common(n_users, n_items, user_items, None, None, batch_size)

    def _score_block(self, rows, cols):
        block = self.score_block(rows)
        return block if cols is None else block[:, cols]


def dense_candidates(score_block, n_users: int, exclude: sp.csr_matrix | None, n_available: int,
                     n: int) -> CandidateLists:
    """Top-``n`` per user of ``score_block`` over the ``n_available`` items, the cells of
    ``exclude`` (users × ``n_available``) left out (:class:`BlockScorerAdapter`)."""
    adapter = BlockScorerAdapter(score_block, n_users, n_available, exclude)
    return adapter.candidate_lists(None, n=n, exclude_seen=exclude is not None)


def als_confidence(feedback: sp.csr_matrix, alpha: float) -> sp.csr_matrix:
    """``sign(r) · (1 + α|r|)`` entry-wise: Hu et al.'s confidence, signed so that implicit reads
    a negative entry as a known negative (preference 0) with confidence ``1 + α|r|``."""
    out = feedback.astype(np.float32).tocsr(copy=True)
    out.data = np.sign(out.data) * (1.0 + alpha * np.abs(out.data))
    return out


class ALSModel(LoopModel):
    """Implicit-feedback ALS (Hu, Koren & Volinsky 2008) via ``implicit``, with impression
    negatives; candidates through :class:`FactorAdapter` (the adapter contract)."""

    name = "als"

    def training_matrix(self, log: InteractionLog, n_available: int) -> sp.csr_matrix:
        """The confidence matrix ALS is fitted on (see :func:`als_confidence`)."""
        cfg = self.config
        weight = cfg.impression_negative_weight if cfg.impression_negatives else 0.0
        feedback = log.feedback_matrix(self.world.n_users, n_available, cfg.train, cfg.ips_clip,
                                       weight)
        return als_confidence(feedback, cfg.als_alpha)

    def fit(self, log, n_available, round_):
        from implicit.cpu.als import AlternatingLeastSquares
        from threadpoolctl import threadpool_limits

        cfg = self.config
        matrix = self.training_matrix(log, n_available)
        seed = int(stream(cfg.seed, "als", round_).integers(0, 2**31 - 1))
        # implicit's own threads parallelise over users; BLAS threads would fight them.
        with threadpool_limits(1, "blas"):
            self.model = AlternatingLeastSquares(
                factors=cfg.als_factors, regularization=cfg.als_regularization,
                alpha=1.0, iterations=cfg.als_iterations, random_state=seed,
                num_threads=cfg.n_threads or 0,
            )
            self.model.fit(matrix, show_progress=False)
        self.n_trained_items = n_available

    def candidates(self, exclude, n_available, n):
        # Items that arrived after the last retrain have no factors yet: they are not
        # candidates until the next retrain (cold start; the fresh slot shows them).
        n_known = min(n_available, self.n_trained_items)
        seen = exclude[:, :n_known] if exclude is not None else None
        adapter = FactorAdapter(self.model.user_factors, self.model.item_factors[:n_known], seen)
        return adapter.candidate_lists(None, n=n, exclude_seen=exclude is not None)


class PopularityModel(LoopModel):
    """``score_i = Σ_u w_ui``: (weighted) clicks per item, the same ranking for everyone."""

    name = "popularity"

    def fit(self, log, n_available, round_):
        users, items, weights = log.clicks(self.config.train, self.config.ips_clip)
        self.counts = np.bincount(items, weights=weights, minlength=self.world.item_categories.shape[0])

    def candidates(self, exclude, n_available, n):
        counts = self.counts[:n_available]
        return dense_candidates(
            lambda rows: np.broadcast_to(counts, (rows.size, n_available)), self.world.n_users,
            exclude, n_available, n,
        )


class OracleModel(LoopModel):
    """True relevance under the users' current tastes: ``relevance``
    (:class:`rerank.simulations.world.RoundRelevance`) is set by the loop every round."""

    name = "oracle"
    relevance: RoundRelevance | None = None

    def fit(self, log, n_available, round_):
        return None

    def candidates(self, exclude, n_available, n):
        if self.relevance is None or self.relevance.n_items != n_available:
            self.relevance = RoundRelevance(self.world, self.world.theta0, n_available)
        return dense_candidates(self.relevance.rows, self.world.n_users, exclude, n_available, n)


class TowerModel(LoopModel):
    """The position-aware logistic factor model (shallow tower), position term dropped."""

    name = "position-tower"

    def __init__(self, world, config):
        super().__init__(world, config)
        self.tower = PositionTower(
            world.n_users, world.item_categories.shape[0], config.slate_size,
            factors=config.tower_factors, epochs=config.tower_epochs,
            learning_rate=config.tower_learning_rate,
            regularization=config.tower_regularization, seed=config.seed,
        )

    def fit(self, log, n_available, round_):
        self.tower.fit(log, self.config.n_items, round_)

    def candidates(self, exclude, n_available, n):
        return dense_candidates(
            lambda rows: self.tower.serving_scores(rows, n_available), self.world.n_users,
            exclude, n_available, n,
        )


MODEL_CLASSES = {
    "als": ALSModel, "popularity": PopularityModel, "oracle": OracleModel,
    "position-tower": TowerModel,
}


def make_model(world: World, config: SimConfig, name: str | None = None) -> LoopModel:
    """The model named ``name`` (default ``config.model``)."""
    name = config.model if name is None else name
    try:
        return MODEL_CLASSES[name](world, config)
    except KeyError:
        raise ValueError(f"unknown model {name!r}; choose one of {sorted(MODEL_CLASSES)}") from None
