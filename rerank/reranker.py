"""``CalibratedReranker``: the pandas API over the one kernel (docs/design.md §5).

    reranker = CalibratedReranker(k=10, lam=0.5).fit(history, item_categories)
    top = reranker.rerank(candidates)       # user_id, item_id, score, rank

As in scikit-learn, ``__init__`` only stores the parameters; ``fit`` checks them once (building
``options_``, a :class:`rerank.RerankOptions`) and learns the targets.

Each call's report comes with its result: ``top, report = reranker.rerank(candidates,
return_report=True)`` (safe when one fitted reranker serves several threads);
``reranker.report_`` keeps the last call's report for single-threaded use.

Fallbacks (each reported in the call's :class:`RerankReport`):

* **cold users** (no history, or a history whose items have no category) get the population
  average ``p̄ = mean_u p(g|u)`` over the users seen in ``fit``;
* **items without categories** (or unknown to ``item_categories``) add no category mass;
* **fewer candidates than k**: all of them are returned, ranked.
"""

from __future__ import annotations

import inspect
import warnings
from collections.abc import Mapping
from typing import NamedTuple

import numpy as np
import pandas as pd
import scipy.sparse as sp

import rerank.report as reports
from rerank import schemas
from rerank.beyond import attributes_of, explanation_columns, report_fields, shown_problem
from rerank.directindex import cached_direct_index, cached_direct_rows
from rerank.engine.arrays import Problem, solve
from rerank.engine.options import MAX_ENUMERATE, RerankOptions
from rerank.engine.refine import DEFAULT_MAX_SWAPS
from rerank.errors import InputError, InputTypeError
from rerank.fitting import category_warnings, exact_items, fit_targets
from rerank.frames import CandidateCSR, candidates_to_csr, output_frame
from rerank.ids import id_array, lookup, restore, text_keys
from rerank.lam import lam_per_user
from rerank.params import (
    check_bool,
    check_choice,
    check_n_threads,
    check_positive,
    check_unit_interval,
)
from rerank.report import RerankReport, RerankWarning, RunContext, describe, safeguard_applies
from rerank.scan import count_equal
from rerank.targets import TARGET_DTYPES, TargetTable

__all__ = ["CalibratedReranker", "RerankReport", "RerankWarning", "Reranked"]

ID_MATCHES = ("exact", "text")


class Reranked(NamedTuple):
    """``rerank(..., return_report=True)``: the output ``frame`` and this call's ``report``."""

    frame: pd.DataFrame
    report: RerankReport


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
        λ (constant within a user), a mapping / Series ``user_id -> λ``, or ``"auto"`` with
        ``max_miscalibration=τ``: per user the smallest grid λ with ``C ≤ τ`` (design §9.5).
    alpha : KL smoothing α in (0, 1): ``q̃ = (1-α) q + α p``.
    divergence : ``"kl"``, ``"hellinger"`` or ``"chi2"`` (Pearson χ² on ``q̃``).
    rank_weights : ``"uniform"``, ``"dcg"`` or an array of k weights for ``q`` (Steck eq. 2).
    normalize : ``"minmax"`` (default, the one default of the library: docs/design.md §8),
        ``"rank"`` or ``None`` (scores as given), per user.
    safeguard : also score plain top-k and return it when its objective is higher
        (docs/design.md §4.2); ``False`` is exactly Steck's greedy.
    order : ``"greedy"`` (pick order) or ``"score"`` (chosen set re-sorted by score).
    half_life : recency half-life on the history's ``timestamp`` (same unit), or ``None``.
    target_dtype : ``"float64"`` (exact) or ``"float32"`` (half the memory per fitted user,
        each target value within ``2⁻²⁴`` relative; docs/performance.md "Memory per user").
        Either way each user's target is stored dense or sparse, whichever is smaller
        (:mod:`rerank.targets`).
    n_threads : numba threads for the kernel (``None``: numba's current setting).
    min_share : quota mode (docs/design.md §4.3): ``True`` gives each category ``g`` with
        ``p_g ≥ min_share_threshold`` at least ``⌊k p_g⌋`` items carrying it whenever some
        k-subset of the candidates allows it; a float ``ρ`` in (0, 1] scales the quotas to
        ``⌊ρ k p_g⌋``; the units missed per user are in ``report_.quota_shortfall``.
    min_share_threshold : protect only categories with ``p_g ≥`` this share (default 0: all).
    method : ``"greedy"`` (Steck) or ``"pm2"`` (PM-2 with relevance, :mod:`rerank.engine.pm2`;
        ``pm2_theta`` is its aspect weight).
    solver : ``"greedy"`` or ``"exact"`` (certified optimum for uniform rank weights,
        :mod:`rerank.engine.exact`; at most ``time_limit`` seconds per user, enumeration up to
        ``max_enumerate`` subsets; gaps in ``report_.exact_gap``).
    attribute_weights : ``{attribute: w_a}`` for ``Σ_a w_a C(p_a, q_a)`` when ``item_categories``
        has an ``attribute`` column (normalised; default equal; docs/design.md §9.1).
    refine : ``None`` (the list as built) or ``"swap"``: start from the better of the list and
        top-k, then make improving single swaps (a listed item out, a candidate in at its
        position) until none improves the objective (:mod:`rerank.engine.refine`; greedy and
        quota mode, not ``method="pm2"``). ``safeguard=False, refine=None`` is exactly Steck's
        greedy.
    max_swaps : cap on the swaps per user (default 30; ``None``: no cap); the swaps made and the
        users whose search the cap stopped are in ``report_.swaps`` / ``report_.swap_cap_hit``.
    id_match : ``"exact"`` (default): ids of one column must have one kind in every frame (an
        integer id never matches a string id; mixing them is an error). ``"text"``: where one
        frame holds integer ids and another string ids for the same column, the integers match
        by their decimal text (``7`` matches ``"7"``, never ``"007"``) — what ``rerank apply``
        does for CSV files beside Parquet ones. Ids are never changed: the output keeps the
        candidates' ids and dtype.

    Attributes after ``fit``: ``options_`` (the checked :class:`rerank.RerankOptions`),
    ``target_table_`` (the fitted targets, :class:`rerank.targets.TargetTable`), ``users_``,
    ``category_matrix_``, ``item_categories_``, ``categories_``, ``population_target_``, and
    ``targets_`` (all targets as one dense float64 array, population last: built on each
    access, for small problems); after ``rerank``: ``report_``.
    """

    def __init__(
        self,
        k: int = 10,
        lam=0.5,
        alpha: float = 0.01,
        divergence: str = "kl",
        *,
        rank_weights="uniform",
        normalize: str | None = "minmax",
        safeguard: bool = True,
        order: str = "greedy",
        half_life: float | None = None,
        n_threads: int | None = None,
        target_dtype: str = "float64",
        min_share=False,
        min_share_threshold: float = 0.0,
        method: str = "greedy",
        pm2_theta: float = 0.5,
        solver: str = "greedy",
        time_limit: float = 10.0,
        max_enumerate: int = MAX_ENUMERATE,
        attribute_weights=None,
        max_miscalibration: float | None = None,
        refine: str | None = None,
        max_swaps: int | None = DEFAULT_MAX_SWAPS,
        id_match: str = "exact",
    ):
        self.k = k
        self.lam = lam
        self.alpha = alpha
        self.divergence = divergence
        self.rank_weights = rank_weights
        self.normalize = normalize
        self.safeguard = safeguard
        self.order = order
        self.half_life = half_life
        self.n_threads = n_threads
        self.target_dtype = target_dtype
        self.min_share = min_share
        self.min_share_threshold = min_share_threshold
        self.method = method
        self.pm2_theta = pm2_theta
        self.solver = solver
        self.time_limit = time_limit
        self.max_enumerate = max_enumerate
        self.attribute_weights = attribute_weights
        self.max_miscalibration = max_miscalibration
        self.refine = refine
        self.max_swaps = max_swaps
        self.id_match = id_match

    @classmethod
    def from_options(
        cls, options: RerankOptions, *, lam=None, half_life=None, n_threads=None, target_dtype: str = "float64",
        id_match: str = "exact", attribute_weights=None,
    ) -> CalibratedReranker:
        """A reranker with the settings of ``options``; ``lam`` (e.g. a column name) replaces
        ``options.lam`` when given."""
        params = options.as_dict()
        if lam is not None:
            params["lam"] = lam
        return cls(**params, half_life=half_life, n_threads=n_threads, target_dtype=target_dtype, id_match=id_match,
                   attribute_weights=attribute_weights)

    def get_params(self) -> dict:
        """The constructor parameters, as scikit-learn's ``get_params`` returns them."""
        return {name: getattr(self, name) for name in inspect.signature(type(self)).parameters}

    def __getstate__(self) -> dict:
        """A pickle (or copy) leaves out the lookup caches built from the fitted state on first use
        (near-miss hints, the direct item index): rebuilt when needed, not stored or shipped."""
        return {k: v for k, v in self.__dict__.items() if k not in ("_near_miss", "_direct_index")}

    def __repr__(self) -> str:
        shown = ", ".join(f"{name}={value!r}" for name, value in self.get_params().items())
        return f"{type(self).__name__}({shown})"

    def build_options(self) -> RerankOptions:
        """Check every parameter and return the :class:`rerank.RerankOptions` that ``fit`` stores
        as ``options_`` (``lam`` is ``None`` there when it is a column or a mapping)."""
        lam = self.lam
        auto = lam == "auto"  # λ from a budget (docs/design.md §9.5); RerankOptions checks the budget
        if isinstance(lam, str) and not auto:
            if lam in schemas.CANDIDATE_COLUMNS:
                raise InputError(f"lam names the column {lam!r}, which is not a per-user lambda column")
            if _looks_like_number(lam):
                raise InputTypeError(
                    f"lam must be a number or the name of a candidates column; got the string {lam!r} "
                    f"(did you mean {float(lam)}?)"
                )
        per_user = isinstance(lam, str | Mapping | pd.Series) and not auto
        if not per_user and not auto:
            check_unit_interval("lam", lam)
        params = self.get_params()
        fields = {name: params[name] for name in RerankOptions.__dataclass_fields__}
        options = RerankOptions(**{**fields, "lam": None if per_user else lam})
        check_positive("half_life", self.half_life)
        check_n_threads(self.n_threads)
        check_choice("target_dtype", self.target_dtype, TARGET_DTYPES)
        check_choice("id_match", self.id_match, ID_MATCHES)
        return options

    # ------------------------------------------------------------------ fit
    def fit(self, history, item_categories) -> CalibratedReranker:
        """Learn each user's target ``p(g|u)`` (Steck eq. 1) and the item × category matrix.

        ``history`` is a frame (or the :class:`rerank.schemas.CheckedHistory` a caller already
        validated it into), or — for histories that do not fit in memory — the path of a
        Parquet file or folder (read in batches of about ``batch_rows`` rows,
        :func:`rerank.history.parquet_history`) or any iterable of frames, each holding whole
        users (every row of a user in one frame; a user met again in a later frame is an
        error). Only the targets are kept (:mod:`rerank.targets`), never the history.
        ``item_categories`` is a frame (or a :class:`rerank.schemas.CheckedItemCategories`).
        """
        self.options_ = self.build_options()
        checked_categories = schemas.validate_item_categories(item_categories)
        self.fit_warnings_ = category_warnings(checked_categories)
        for message in self.fit_warnings_:
            warnings.warn(message, RerankWarning, stacklevel=2)
        table, targets, self.id_kinds_ = fit_targets(
            history, checked_categories, self.half_life, self.target_dtype, self.id_match
        )
        return self._set_fitted(table, targets)

    def _set_fitted(self, table, targets: TargetTable) -> CalibratedReranker:
        """Store the fitted state (shared by ``fit`` and ``rerank.spark.fit_spark``)."""
        table = exact_items(table)
        self.item_categories_ = table
        self.categories_ = table.categories
        # One empty row at the end stands for every item the table does not know.
        self.category_matrix_ = sp.vstack(
            [table.matrix, sp.csr_matrix((1, table.matrix.shape[1]))], format="csr"
        )
        self.target_table_ = targets
        self.population_target_ = targets.population
        self.attributes_ = attributes_of(table, self.attribute_weights)
        return self

    @property
    def users_(self) -> pd.Index:
        """The fitted users with category mass, in the order of their targets' rows."""
        return self.target_table_.users.ids

    @property
    def targets_(self) -> np.ndarray:
        """Every fitted target as one dense float64 array (users × G), the population target
        as its last row. Built on each access: for small problems and inspection."""
        table = self.target_table_
        return table.dense(np.append(np.arange(table.n_users), -1))

    def fit_spark(self, history, item_categories) -> CalibratedReranker:
        """``fit`` on Spark DataFrames: targets aggregated on the cluster (see :mod:`rerank.spark`)."""
        from rerank.spark import fit_spark

        return fit_spark(self, history, item_categories)

    def rerank_spark(self, candidates, **options):
        """``rerank`` on a Spark DataFrame; same rows as ``rerank`` (see :func:`rerank.spark.rerank_spark`)."""
        from rerank.spark import rerank_spark

        return rerank_spark(self, candidates, **options)

    def rerank_parquet_spark(self, spark, source: str, destination: str, **options):
        """Parquet files in, Parquet files out, on Spark (:func:`rerank.spark_files.rerank_parquet_spark`)."""
        from rerank.spark_files import rerank_parquet_spark

        return rerank_parquet_spark(self, spark, source, destination, **options)

    def check_fitted(self) -> None:
        """Raise ``RuntimeError`` unless ``fit`` (or ``fit_spark``) has run."""
        if not hasattr(self, "target_table_"):
            raise RuntimeError("CalibratedReranker is not fitted: call fit(history, item_categories) first")

    def _rows(self, fitted: pd.Index, ids) -> np.ndarray:
        """Row of each id in a fitted index (``-1`` if absent), exactly; with ``id_match="text"``
        integer ids meet string ids by their decimal text (``rerank.ids.text_keys``)."""
        ids = pd.Index(id_array(pd.Index(ids)))
        if getattr(self, "id_match", "exact") == "text" and len(fitted) and len(ids):
            numeric = {fitted.dtype.kind in "iuf", ids.dtype.kind in "iuf"}
            if numeric == {True, False}:
                if ids.dtype.kind in "iuf":
                    return lookup(fitted, text_keys(ids))
                return lookup(pd.Index(text_keys(fitted)), ids)
        return lookup(fitted, ids)

    def _user_rows(self, user_ids) -> np.ndarray:
        """Fitted row of each user id (``-1``: cold), exactly (:class:`rerank.userindex.UserIndex`);
        with ``id_match="text"`` integer ids meet string ids by their decimal text."""
        ids = pd.Index(id_array(pd.Index(user_ids)))
        if getattr(self, "id_match", "exact") == "text":
            return self._rows(self.users_, ids).astype(np.int64, copy=False)
        return self.target_table_.rows_for(ids)

    def target_rows(self, user_ids) -> tuple[np.ndarray, np.ndarray]:
        """Row of ``targets_`` for each user id, and a mask of cold users (population row)."""
        self.check_fitted()
        rows = self._user_rows(user_ids)
        cold = rows < 0
        rows[cold] = self.target_table_.n_users
        return rows, cold

    def targets_for(self, user_ids) -> tuple[np.ndarray, np.ndarray]:
        """float64 ``p(g|u)`` of each user id (one row each; cold users get the population
        target) and the mask of cold users: what one call of the kernel needs, whatever the
        storage of the fitted targets."""
        self.check_fitted()
        rows = self._user_rows(user_ids)
        return self.target_table_.dense(rows), rows < 0

    def target_distributions(self, user_ids) -> pd.DataFrame:
        """``p(g|u)`` for the given users (cold users get the population target)."""
        targets, _ = self.targets_for(pd.Index(user_ids))
        return pd.DataFrame(targets, index=pd.Index(user_ids, name="user_id"), columns=self.categories_)

    def item_rows(self, item_ids) -> np.ndarray:
        """Row of ``category_matrix_`` for each item id (unknown items: the empty last row)."""
        self.check_fitted()
        missing, fitted = self.category_matrix_.shape[0] - 1, self.item_categories_.items
        rows = None if getattr(self, "id_match", "exact") == "text" else cached_direct_rows(
            self, "item_id", fitted, item_ids, missing)  # int64 on both sides: a table, no hashing
        if rows is None:
            rows = self._rows(fitted, item_ids)
            rows[rows < 0] = missing
        return rows.astype(np.int64, copy=False)  # no second copy of a (rows,) array

    def _gathered_item_rows(self, ids: np.ndarray, order: np.ndarray, scores: np.ndarray):
        """``candidates_to_csr``'s ``item_lookup``: :meth:`item_rows` of ``ids[order]`` read
        through ``order``, with ``scores[order]``, as ``(rows, scores, n_unknown)`` (int64 ids on
        both sides), else ``None``."""
        index = None if getattr(self, "id_match", "exact") == "text" else cached_direct_index(
            self, "item_id", self.item_categories_.items)
        return None if index is None else index.gathered_rows(ids, order, self.category_matrix_.shape[0] - 1, scores)

    # ------------------------------------------------------------------ rerank
    def _check_id_kinds(self, csr: CandidateCSR) -> None:
        if getattr(self, "id_match", "exact") == "text":
            return  # integers meet strings by their text (_rows)
        kinds = getattr(self, "id_kinds_", None)
        if kinds is None:  # fitted another way (e.g. Spark): read the kinds off the fitted ids once
            kinds = {
                "user_id": schemas.id_kind(pd.Series(self.users_), "fitted users"),
                "item_id": schemas.id_kind(pd.Series(self.item_categories_.items), "fitted items"),
            }
            self.id_kinds_ = kinds
        schemas.check_same_id_kind(
            csr.user_kind, "candidates column 'user_id'", kinds["user_id"], "the history's user_id"
        )
        schemas.check_same_id_kind(
            csr.item_kind, "candidates column 'item_id'", kinds["item_id"], "the item_categories' item_id"
        )

    def rerank(
        self, candidates: pd.DataFrame, *, on_invalid: str = "raise", return_report: bool = False, shown=None,
        explain: bool = False,
    ):
        """Rerank each user's candidates; returns ``user_id, item_id, score, rank`` (rank from 1),
        or with ``return_report=True`` a :class:`Reranked` ``(frame, report)`` holding this
        call's :class:`RerankReport` (``report_`` also keeps the last call's, for
        single-threaded use; concurrent calls on one reranker should take the returned one).

        ``shown``: a frame ``user_id, item_id`` (+ ``rank``) of items already shown, the first
        positions of ``q``, not picked again (docs/design.md §9.3). ``explain=True`` adds
        ``input_rank, score_gain, calibration_gain, reason`` (§9.4).

        Users keep the order in which they first appear; ``score`` is the input score (float64);
        the id columns keep their input values and dtype (docs/inputs.md, "Ids").
        Invalid input raises :class:`rerank.errors.InputError` naming the column, user or item;
        with ``on_invalid="skip"`` users with invalid rows (null item id, NaN/inf score,
        duplicate item) are skipped instead and listed in the report's ``skipped``. Ids that
        match nothing fitted give a :class:`RerankWarning` saying what to do.
        """
        check_bool("return_report", return_report)
        out, report = self._rerank(candidates, on_invalid, shown=shown, explain=explain)
        self.report_ = report
        for message in report.warnings:
            warnings.warn(message, RerankWarning, stacklevel=2)
        return Reranked(out, report) if return_report else out

    def _rerank(
        self, candidates: pd.DataFrame, on_invalid: str, *, shown=None, explain: bool = False,
    ) -> tuple[pd.DataFrame, RerankReport]:
        """``rerank`` without side effects: the output and its report (streaming uses it)."""
        self.check_fitted()
        csr = candidates_to_csr(candidates, on_invalid=on_invalid, item_lookup=self._gathered_item_rows)
        self._check_id_kinds(csr)
        targets, cold = self.targets_for(csr.users)
        item_rows = self.item_rows(csr.item_ids) if csr.item_rows is None else csr.item_rows
        missing = self.category_matrix_.shape[0] - 1  # the empty row of unknown items
        n_unknown = count_equal(item_rows, missing)  # no 10⁸-row mask
        # The frame was validated once (candidates_to_csr); the engine takes the arrays as checked.
        text = getattr(self, "id_match", "exact") == "text"  # integers meet text by their decimal form
        prefix, excluded = (None, None) if shown is None else shown_problem(shown, csr, self.item_rows, text)
        rows = np.arange(len(csr.users), dtype=np.int64)  # targets: one row per user of the call
        lam = lam_per_user(self.lam, self.options_.lam, candidates, csr)
        problem = Problem(csr.lists(item_rows), self.category_matrix_, targets, rows, lam, self.attributes_, prefix,
                          excluded)
        result = solve(problem, self.options_, self.n_threads, explain=check_bool("explain", explain))
        out = output_frame(csr, result.indptr, result.positions)
        reasons = explanation_columns(out, result)
        lengths = np.diff(csr.indptr) - (0 if result.shown_removed is None else result.shown_removed)
        k = self.options_.k
        users = restore(csr.users, csr.user_dtype)  # the report names users in the input's dtype
        unknown_ids = csr.item_ids[item_rows == missing] if n_unknown else csr.item_source[:0]  # no gather
        hints = reports.near_miss_hints(self, csr.users[cold], pd.unique(unknown_ids))
        report = RerankReport(
            n_users=len(csr.users),
            n_candidates=len(candidates),
            n_output_rows=len(out),
            cold_users=users[cold],
            short_users=users[lengths < k],
            topk_users=users[result.used_topk],
            skipped=csr.skipped,
            n_rows_without_user=csr.n_rows_without_user,
            n_rows_reranked=int(csr.indptr[-1]),
            n_expected_output_rows=int(np.minimum(lengths, k).sum()),
            quota_shortfall=reports.per_user_series(users, result.quota_shortfall, "quota_shortfall"),
            exact_gap=reports.per_user_series(users, result.gap, "exact_gap"),
            context=RunContext(describe(self.options_), safeguard_applies(self.options_), self.target_table_.n_users,
                               len(self.item_categories_.items)),
            n_rows_unknown_item=n_unknown,
            id_hints={column: hint for column, hint in hints.items() if hint is not None},
            **report_fields(users, result, reasons, self.options_),
            swaps=reports.per_user_series(users, result.swaps, "swaps"),
            swap_cap_hit=reports.per_user_series(users, result.swap_cap_hit, "swap_cap_hit"),
        )
        return out, report

