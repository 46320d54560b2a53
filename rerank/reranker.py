"""``CalibratedReranker``: the pandas API over the one kernel (DESIGN §5).

    reranker = CalibratedReranker(k=10, lam=0.5).fit(history, item_categories)
    top = reranker.rerank(candidates)       # user_id, item_id, score, rank

Fallbacks (each reported in ``reranker.report_`` after ``rerank``):

* **cold users** (no history, or a history whose items have no category) get the population
  average ``p̄ = mean_u p(g|u)`` over the users seen in ``fit``;
* **items without categories** (or unknown to ``item_categories``) add no category mass;
* **fewer candidates than k**: all of them are returned, ranked.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
import pandas as pd
import scipy.sparse as sp

from rerank import validation
from rerank.arrays import rerank_arrays
from rerank.distributions import (
    history_weights,
    item_categories_from_frame,
    population_distribution,
    target_distributions,
)
from rerank.distributions import (
    rank_weights as make_rank_weights,
)
from rerank.frames import CandidateCSR, candidates_to_csr, output_frame, per_user_values


@dataclass(frozen=True)
class RerankReport:
    """What the last ``rerank`` call did besides plain reranking.

    ``cold_users``: users given the population target; ``short_users``: users with fewer
    candidates than k (all returned); ``topk_users``: users for whom the safeguard kept plain
    top-k; row counts in and out.
    """

    n_users: int
    n_candidates: int
    n_output_rows: int
    cold_users: pd.Index
    short_users: pd.Index
    topk_users: pd.Index

    def summary(self) -> str:
        return (
            f"{self.n_users} users, {self.n_candidates} candidate rows -> {self.n_output_rows} "
            f"output rows; {len(self.cold_users)} cold users (population target), "
            f"{len(self.short_users)} with fewer than k candidates, "
            f"{len(self.topk_users)} kept plain top-k (safeguard)"
        )


class CalibratedReranker:
    """Calibrated reranking (Steck 2018, eq. 3): per user, greedily build the k-list maximising

        (1-λ) Σ_{i∈L} s_i  -  λ C(p(·|u), q(·|L))

    Parameters
    ----------
    k : list length.
    lam : λ in [0, 1]; a float for everyone, the name of a candidates column holding a per-user
        λ (constant within a user), or a mapping / Series ``user_id -> λ``.
    alpha : KL smoothing α in (0, 1): ``q̃ = (1-α) q + α p``.
    divergence : ``"kl"``, ``"hellinger"`` or ``"chi2"`` (Pearson χ² on ``q̃``).
    rank_weights : ``"uniform"``, ``"dcg"`` or an array of k weights for ``q`` (Steck eq. 2).
    normalize : ``None`` (scores as given), ``"minmax"`` or ``"rank"``, per user.
    safeguard : also score plain top-k and return it when its objective is higher (DESIGN §4.2);
        ``False`` is exactly Steck's greedy.
    order : ``"greedy"`` (pick order) or ``"score"`` (chosen set re-sorted by score).
    half_life : recency half-life on the history's ``timestamp`` (same unit), or ``None``.
    n_threads : numba threads for the kernel (``None``: numba's current setting).
    """

    def __init__(
        self,
        k: int = 10,
        lam=0.5,
        alpha: float = 0.01,
        divergence: str = "kl",
        *,
        rank_weights="uniform",
        normalize: str | None = None,
        safeguard: bool = True,
        order: str = "greedy",
        half_life: float | None = None,
        n_threads: int | None = None,
    ):
        self.k = validation.check_k(k)
        if not isinstance(lam, str | Mapping | pd.Series):
            validation.check_unit_interval("lam", lam)
        self.lam = lam
        self.alpha = validation.check_unit_interval("alpha", alpha, open_interval=True)
        validation.divergence_code(divergence)
        self.divergence = divergence
        make_rank_weights(rank_weights, self.k)
        self.rank_weights = rank_weights
        validation.normalize_code(normalize)
        self.normalize = normalize
        self.safeguard = bool(safeguard)
        validation.check_order(order)
        self.order = order
        if half_life is not None and not half_life > 0:
            raise ValueError(f"half_life must be > 0, got {half_life}")
        self.half_life = half_life
        self.n_threads = n_threads

    # ------------------------------------------------------------------ fit
    def fit(self, history: pd.DataFrame, item_categories: pd.DataFrame) -> CalibratedReranker:
        """Learn each user's target ``p(g|u)`` (Steck eq. 1) and the item × category matrix."""
        validation.require_columns(history, ["user_id", "item_id"], "history")
        validation.require_no_null_ids(history, ["user_id", "item_id"], "history")
        table = item_categories_from_frame(item_categories)
        weights = history_weights(history, self.half_life)
        user_codes, users = pd.factorize(history["user_id"], sort=False)
        targets, has_mass = target_distributions(
            user_codes, table.rows_for(history["item_id"]), weights, len(users), table.matrix
        )
        return self._set_fitted(table, users, targets, has_mass)

    def _set_fitted(self, table, users, targets: np.ndarray, has_mass: np.ndarray) -> CalibratedReranker:
        """Store the fitted state (shared by ``fit`` and ``rerank.spark.fit_spark``)."""
        self.item_categories_ = table
        self.categories_ = table.categories
        # One empty row at the end stands for every item the table does not know.
        self.category_matrix_ = sp.vstack(
            [table.matrix, sp.csr_matrix((1, table.matrix.shape[1]))], format="csr"
        )
        self.users_ = pd.Index(users)[has_mass]
        self.population_target_ = population_distribution(targets, has_mass)
        # Last row: the population target for cold users.
        self.targets_ = np.vstack([targets[has_mass], self.population_target_[None, :]])
        return self

    def fit_spark(self, history, item_categories) -> CalibratedReranker:
        """``fit`` on Spark DataFrames: targets aggregated on the cluster (see :mod:`rerank.spark`)."""
        from rerank.spark import fit_spark

        return fit_spark(self, history, item_categories)

    def rerank_spark(self, candidates, **options):
        """``rerank`` on a Spark DataFrame; same rows as ``rerank`` (see :func:`rerank.spark.rerank_spark`)."""
        from rerank.spark import rerank_spark

        return rerank_spark(self, candidates, **options)

    def _check_fitted(self) -> None:
        if not hasattr(self, "targets_"):
            raise RuntimeError("CalibratedReranker is not fitted: call fit(history, item_categories) first")

    def target_rows(self, user_ids) -> tuple[np.ndarray, np.ndarray]:
        """Row of ``targets_`` for each user id, and a mask of cold users (population row)."""
        self._check_fitted()
        rows = self.users_.get_indexer(user_ids)
        cold = rows < 0
        rows[cold] = len(self.targets_) - 1
        return rows.astype(np.int64), cold

    def target_distributions(self, user_ids) -> pd.DataFrame:
        """``p(g|u)`` for the given users (cold users get the population target)."""
        rows, _ = self.target_rows(pd.Index(user_ids))
        return pd.DataFrame(self.targets_[rows], index=pd.Index(user_ids, name="user_id"), columns=self.categories_)

    def item_rows(self, item_ids) -> np.ndarray:
        """Row of ``category_matrix_`` for each item id (unknown items: the empty last row)."""
        self._check_fitted()
        rows = self.item_categories_.rows_for(item_ids)
        rows[rows < 0] = self.category_matrix_.shape[0] - 1
        return rows.astype(np.int64)

    # ------------------------------------------------------------------ rerank
    def _lam_per_user(self, candidates: pd.DataFrame, csr: CandidateCSR):
        if isinstance(self.lam, str):
            return per_user_values(candidates, self.lam, csr)
        if isinstance(self.lam, Mapping | pd.Series):
            mapping = pd.Series(self.lam, dtype=np.float64)
            values = mapping.reindex(csr.users).to_numpy()
            missing = np.flatnonzero(np.isnan(values))
            if missing.size:
                raise ValueError(f"lam has no value for user {csr.users[missing[0]]!r}")
            return values
        return self.lam

    def rerank(self, candidates: pd.DataFrame) -> pd.DataFrame:
        """Rerank each user's candidates; returns ``user_id, item_id, score, rank`` (rank from 1).

        Users keep the order in which they first appear; ``score`` is the input score.
        """
        self._check_fitted()
        csr = candidates_to_csr(candidates)
        target_rows, cold = self.target_rows(csr.users)
        result = rerank_arrays(
            csr.indptr,
            self.item_rows(csr.item_ids),
            csr.scores,
            self.category_matrix_,
            self.targets_,
            self.k,
            self._lam_per_user(candidates, csr),
            self.alpha,
            divergence=self.divergence,
            rank_weights=self.rank_weights,
            normalize=self.normalize,
            safeguard=self.safeguard,
            order=self.order,
            target_rows=target_rows,
            n_threads=self.n_threads,
            return_result=True,
        )
        out = output_frame(csr, result.indptr, result.positions)
        lengths = np.diff(csr.indptr)
        self.report_ = RerankReport(
            n_users=len(csr.users),
            n_candidates=len(candidates),
            n_output_rows=len(out),
            cold_users=csr.users[cold],
            short_users=csr.users[lengths < self.k],
            topk_users=csr.users[result.used_topk],
        )
        return out

    def __repr__(self) -> str:
        return (
            f"CalibratedReranker(k={self.k}, lam={self.lam!r}, alpha={self.alpha}, "
            f"divergence={self.divergence!r}, normalize={self.normalize!r}, "
            f"safeguard={self.safeguard}, order={self.order!r})"
        )
