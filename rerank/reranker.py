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
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
import scipy.sparse as sp

from rerank import validation
from rerank.arrays import _list_builder, rerank_arrays
from rerank.distributions import (
    history_weights,
    item_categories_from_frame,
    population_distribution,
    target_distributions,
)
from rerank.distributions import rank_weights as make_rank_weights
from rerank.exact import MAX_ENUMERATE, check_solver
from rerank.frames import CandidateCSR, candidates_to_csr, output_frame, per_user_values
from rerank.refine import DEFAULT_MAX_SWAPS, check_refine


class RowAccounting:
    """Nothing-lost accounting shared by :class:`RerankReport` and the streaming report.

    Needs ``n_users``, ``skipped``, ``n_candidates``, ``n_rows_reranked``,
    ``n_rows_without_user``, ``n_output_rows`` and ``n_expected_output_rows``.
    """

    @property
    def n_users_in(self) -> int:
        """Distinct users in the input: reranked + skipped."""
        return self.n_users + len(self.skipped)

    @property
    def reconciles(self) -> bool:
        """Every input row and user is accounted for: see :func:`reconciles`."""
        return reconciles(
            self.n_candidates, self.n_rows_reranked, int(self.skipped["n_rows"].sum()),
            self.n_rows_without_user, self.n_output_rows, self.n_expected_output_rows,
        )


@dataclass(frozen=True)
class RerankReport(RowAccounting):
    """What the last ``rerank`` call did besides plain reranking.

    ``n_users``: users reranked (each has ``min(k, n_u)`` output rows); ``cold_users``: users
    given the population target; ``short_users``: users with fewer candidates than k (all
    returned); ``topk_users``: users for whom the safeguard kept plain top-k.

    Nothing lost: ``skipped`` lists the users left out with ``on_invalid="skip"``
    (``user_id, reason, n_rows``); ``n_rows_without_user`` counts rows dropped for a null
    ``user_id``; :attr:`reconciles` checks ``n_candidates = n_rows_reranked + rows of skipped users
    + n_rows_without_user`` and ``n_output_rows = Σ_u min(k, n_u)`` over the reranked users.

    Quota mode (``min_share``): ``quota_shortfall`` is a Series ``user_id -> units`` over the
    reranked users, ``Σ_g max(0, r_g - c_g)`` quota units the list misses because no k-subset of
    that user's candidates meets every quota (0 for everyone whose quotas are feasible; see
    :mod:`rerank.quota`); ``None`` without ``min_share``. ``solver="exact"``: ``exact_gap`` is a
    Series ``user_id -> certified relative optimality gap`` (:mod:`rerank.exact`).
    ``refine="swap"``: ``swaps`` is a Series ``user_id -> swaps made`` and ``swap_cap_hit`` a
    Series ``user_id -> bool``, True where ``max_swaps`` stopped the search while an improving
    swap remained (:mod:`rerank.refine`); both ``None`` without refinement.
    """

    n_users: int
    n_candidates: int
    n_output_rows: int
    cold_users: pd.Index
    short_users: pd.Index
    topk_users: pd.Index
    skipped: pd.DataFrame = field(default_factory=validation.empty_skipped)
    n_rows_without_user: int = 0
    n_rows_reranked: int | None = None
    n_expected_output_rows: int | None = None
    quota_shortfall: pd.Series | None = None
    exact_gap: pd.Series | None = None
    swaps: pd.Series | None = None
    swap_cap_hit: pd.Series | None = None

    def summary(self) -> str:
        return summary_line(
            n_users=self.n_users, skipped=self.skipped, n_candidates=self.n_candidates,
            n_rows_reranked=self.n_rows_reranked, n_rows_without_user=self.n_rows_without_user,
            n_output_rows=self.n_output_rows, n_cold=len(self.cold_users),
            n_short=len(self.short_users), n_topk=len(self.topk_users), ok=self.reconciles,
        )


def reconciles(n_in, n_reranked, n_skipped_rows, n_without_user, n_out, n_expected_out) -> bool:
    """Row counts add up: in = reranked + skipped + without user; out = Σ min(k, n_u)."""
    if n_reranked is None or n_expected_out is None:
        return True
    return n_in == n_reranked + n_skipped_rows + n_without_user and n_out == n_expected_out


def summary_line(
    *, n_users, skipped, n_candidates, n_rows_reranked, n_rows_without_user, n_output_rows,
    n_cold, n_short, n_topk, ok,
) -> str:
    """One line saying where every user and row went (the "nothing lost" summary)."""
    reasons = ""
    if len(skipped):
        counts = skipped["reason"].value_counts(sort=True)
        reasons = " (" + ", ".join(f"{n} {reason}" for reason, n in counts.items()) + ")"
    n_skipped_rows = int(skipped["n_rows"].sum())
    reranked = n_candidates - n_skipped_rows - n_rows_without_user if n_rows_reranked is None else n_rows_reranked
    return (
        f"{n_users + len(skipped)} users in: {n_users} reranked, {len(skipped)} skipped{reasons}; "
        f"{n_candidates} candidate rows in: {reranked} reranked, {n_skipped_rows} of skipped users, "
        f"{n_rows_without_user} without user_id; {n_output_rows} output rows; "
        f"{n_cold} cold users (population target), {n_short} with fewer than k candidates, "
        f"{n_topk} kept plain top-k (safeguard); "
        + ("nothing lost" if ok else "ROW COUNTS DO NOT RECONCILE")
    )


def _per_user(users: pd.Index, values, name: str) -> pd.Series | None:
    if values is None:
        return None
    return pd.Series(values, index=pd.Index(users, name="user_id"), name=name)


def _looks_like_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


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
    min_share : quota mode (DESIGN §4.3): ``True`` gives each category ``g`` with
        ``p_g ≥ min_share_threshold`` at least ``⌊k p_g⌋`` items carrying it whenever some
        k-subset of the candidates allows it; a float ``ρ`` in (0, 1] scales the quotas to
        ``⌊ρ k p_g⌋``; the units missed per user are in ``report_.quota_shortfall``.
    min_share_threshold : protect only categories with ``p_g ≥`` this share (default 0: all).
    method : ``"greedy"`` (Steck) or ``"pm2"`` (PM-2 with relevance, :mod:`rerank.pm2`;
        ``pm2_theta`` is its aspect weight).
    solver : ``"greedy"`` or ``"exact"`` (certified optimum for uniform rank weights,
        :mod:`rerank.exact`; at most ``time_limit`` seconds per user; gaps in
        ``report_.exact_gap``).
    refine : ``None`` (the list as built) or ``"swap"``: start from the better of the list and
        top-k, then apply improving single swaps (one listed item out, one candidate in at its
        position) until none improves the objective (:mod:`rerank.refine`; not with
        ``method="pm2"``). ``safeguard=False, refine=None`` is exactly Steck's greedy.
    max_swaps : cap on the swaps per user (default 30; ``None``: none); the swaps made and the
        users whose search the cap stopped are in ``report_.swaps`` / ``report_.swap_cap_hit``.
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
        min_share=False,
        min_share_threshold: float = 0.0,
        method: str = "greedy",
        pm2_theta: float = 0.5,
        solver: str = "greedy",
        time_limit: float = 10.0,
        refine: str | None = None,
        max_swaps: int | None = DEFAULT_MAX_SWAPS,
    ):
        self.k = validation.check_k(k)
        if not isinstance(lam, str | Mapping | pd.Series):
            validation.check_unit_interval("lam", lam)
        elif isinstance(lam, str) and lam in validation.CANDIDATE_COLUMNS:
            raise validation.InputError(f"lam names the column {lam!r}, which is not a per-user lambda column")
        elif isinstance(lam, str) and _looks_like_number(lam):
            raise validation.InputTypeError(
                f"lam must be a number or the name of a candidates column; got the string {lam!r} "
                f"(did you mean {float(lam)}?)"
            )
        self.lam = lam
        self.alpha = validation.check_unit_interval("alpha", alpha, open_interval=True)
        validation.divergence_code(divergence)
        self.divergence = divergence
        validation.check_rank_weights(rank_weights, self.k)
        self.rank_weights = rank_weights
        validation.normalize_code(normalize)
        self.normalize = normalize
        self.safeguard = validation.check_bool("safeguard", safeguard)
        validation.check_order(order)
        self.order = order
        self.half_life = validation.check_positive("half_life", half_life)
        self.n_threads = validation.check_n_threads(n_threads)
        _list_builder(method, min_share, min_share_threshold, pm2_theta, solver)
        check_refine(refine, max_swaps, method == "pm2")
        # the first k weights of an array; "uniform"/"dcg" need only 2 to tell (k may be huge)
        first_weights = validation.check_rank_weights(rank_weights, self.k)
        if first_weights is None:
            first_weights = make_rank_weights(rank_weights, min(self.k, 2))
        check_solver(solver, first_weights, time_limit, MAX_ENUMERATE)
        self.min_share = min_share
        self.min_share_threshold = min_share_threshold
        self.method = method
        self.pm2_theta = pm2_theta
        self.solver = solver
        self.time_limit = time_limit
        self.refine = refine
        self.max_swaps = max_swaps

    # ------------------------------------------------------------------ fit
    def fit(self, history: pd.DataFrame, item_categories: pd.DataFrame) -> CalibratedReranker:
        """Learn each user's target ``p(g|u)`` (Steck eq. 1) and the item × category matrix."""
        checked = validation.validate_history(history)
        checked_categories = validation.validate_item_categories(item_categories)
        validation.check_same_id_kind(
            checked.item_kind, "history column 'item_id'", checked_categories.item_kind,
            "item_categories column 'item_id'",
        )
        self.id_kinds_ = {"user_id": checked.user_kind, "item_id": checked_categories.item_kind}
        if self.id_kinds_["item_id"] == validation.ID_EMPTY:
            self.id_kinds_["item_id"] = checked.item_kind
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
        return rows.astype(np.int64, copy=False)  # no second copy of a (rows,) array

    # ------------------------------------------------------------------ rerank
    def _lam_per_user(self, candidates: pd.DataFrame, csr: CandidateCSR):
        if isinstance(self.lam, str):
            values = per_user_values(candidates, self.lam, csr)
            return validation.check_lam_array(values, len(csr.users), csr.users)
        if isinstance(self.lam, Mapping | pd.Series):
            return validation.lam_from_mapping(self.lam, csr.users)
        return self.lam

    def _check_id_kinds(self, csr: CandidateCSR) -> None:
        kinds = getattr(self, "id_kinds_", None)
        if kinds is None:  # fitted another way (e.g. Spark): read the kinds off the fitted ids once
            kinds = {
                "user_id": validation.id_kind(pd.Series(self.users_), "fitted users"),
                "item_id": validation.id_kind(pd.Series(self.item_categories_.items), "fitted items"),
            }
            self.id_kinds_ = kinds
        validation.check_same_id_kind(
            csr.user_kind, "candidates column 'user_id'", kinds["user_id"], "the history's user_id"
        )
        validation.check_same_id_kind(
            csr.item_kind, "candidates column 'item_id'", kinds["item_id"], "the item_categories' item_id"
        )

    def rerank(self, candidates: pd.DataFrame, *, on_invalid: str = "raise") -> pd.DataFrame:
        """Rerank each user's candidates; returns ``user_id, item_id, score, rank`` (rank from 1).

        Users keep the order in which they first appear; ``score`` is the input score (float64).
        Invalid input raises :class:`rerank.validation.InputError` naming the column, user or
        item; with ``on_invalid="skip"`` users with invalid rows (null item id, NaN/inf score,
        duplicate item) are skipped instead and listed in ``report_.skipped``.
        """
        self._check_fitted()
        csr = candidates_to_csr(candidates, on_invalid=on_invalid)
        self._check_id_kinds(csr)
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
            min_share=self.min_share,
            min_share_threshold=self.min_share_threshold,
            method=self.method,
            pm2_theta=self.pm2_theta,
            solver=self.solver,
            time_limit=self.time_limit,
            refine=self.refine,
            max_swaps=self.max_swaps,
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
            skipped=csr.skipped,
            n_rows_without_user=csr.n_rows_without_user,
            n_rows_reranked=int(csr.indptr[-1]),
            n_expected_output_rows=int(np.minimum(lengths, self.k).sum()),
            quota_shortfall=_per_user(csr.users, result.quota_shortfall, "quota_shortfall"),
            exact_gap=_per_user(csr.users, result.gap, "exact_gap"),
            swaps=_per_user(csr.users, result.swaps, "swaps"),
            swap_cap_hit=_per_user(csr.users, result.swap_cap_hit, "swap_cap_hit"),
        )
        return out

    def __repr__(self) -> str:
        return (
            f"CalibratedReranker(k={self.k}, lam={self.lam!r}, alpha={self.alpha}, "
            f"divergence={self.divergence!r}, normalize={self.normalize!r}, "
            f"safeguard={self.safeguard}, order={self.order!r})"
        )
