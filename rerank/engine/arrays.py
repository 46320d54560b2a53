"""The engine's boundary: candidate lists in, chosen items out (docs/design.md §5).

Every entry point ends here: the frame API, ``rerank apply``, Spark, ``rerank gap``, the
adapters' helpers and the simulator. Three functions, from the most to the least checking:

* :func:`rerank_arrays` — raw arrays and keyword options (the convenience call);
* :func:`rerank_lists` — :class:`CandidateLists` and a :class:`RerankOptions`;
* :func:`solve` — a :class:`Problem` whose arrays are already checked (the frame API builds it
  from a validated frame), so nothing is checked twice.

Dtypes are normalised once at the boundary (int64 indices, float64 values) so the kernel is
compiled once. ``solve`` runs the kernel (:mod:`rerank.engine.kernel`), the quota feasibility
(:mod:`rerank.engine.feasibility`) and the exact solver (:mod:`rerank.engine.exact`), then
orders the exact solver's sets.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import NamedTuple

import numba
import numpy as np
import scipy.sparse as sp

from rerank._numba import num_threads
from rerank.engine.attributes import Attributes, check_attributes, refuse_attributes
from rerank.engine.budget import search_lambda
from rerank.engine.exact import ExactResult, normalized_scores, solve_exact
from rerank.engine.explain import Explanation, explained, result_divergences
from rerank.engine.feasibility import max_quota_met, quota_matrix
from rerank.engine.kernel import METHOD_PM2, METHOD_QUOTA, rerank_kernel
from rerank.engine.layout import (
    CandidateLists,
    CategoryCSR,
    KernelOutput,
    KernelParams,
    QuotaPlan,
    ShownPrefix,
    category_matrix,
)
from rerank.engine.options import AUTO_LAMBDAS, RerankOptions
from rerank.engine.refine import REFINE_NONE
from rerank.engine.shown import check_shown, drop_shown, shown_candidates
from rerank.errors import InputError
from rerank.params import check_bool, check_finite, check_lam_array, float_array, int_array

__all__ = ["Attributes", "Explanation", "Problem", "RerankResult", "rerank_arrays", "rerank_lists", "solve"]


@dataclass(frozen=True)
class RerankResult:
    """Output for U users.

    ``indptr`` (U+1) delimits each user's output; ``positions`` are indices into the input
    candidate arrays, in output order; ``items`` the chosen item indices; ``objective`` the
    objective ``(1-λ)Σs - λC`` of each output list (on the normalised scores); ``used_topk``
    whether the safeguard replaced the greedy list by plain top-k. ``lam="auto"``: ``lam`` the λ
    chosen per user and ``miscalibration`` each list's divergence ``C`` (≤ ``max_miscalibration``
    unless λ = 1). ``shown_removed`` (with a
    shown prefix): per user, the candidates left out because they were shown already.
    ``gap`` (``solver="exact"`` only): each list's certified relative optimality gap
    (0 when enumerated or forced; see :mod:`rerank.engine.exact`), with the route taken per user
    (``exact_route``: 0 forced, 1 enumeration, 2 MILP) and the seconds spent (``exact_seconds``).
    ``quota_shortfall`` (``min_share`` only): per user, how many quota units
    ``Σ_g max(0, r_g - c_g)`` the list misses because no k-subset of the candidates meets them
    all (see :mod:`rerank.engine.quota`).
    ``swaps`` / ``swap_cap_hit`` (``refine="swap"`` only): per user, the improving swaps made
    and whether ``max_swaps`` stopped the search while an improving swap remained
    (:mod:`rerank.engine.refine`); ``used_topk`` then means the output is plain top-k.
    """

    indptr: np.ndarray
    positions: np.ndarray
    items: np.ndarray
    objective: np.ndarray
    used_topk: np.ndarray
    gap: np.ndarray | None = None
    quota_shortfall: np.ndarray | None = None
    exact_route: np.ndarray | None = None
    exact_seconds: np.ndarray | None = None
    swaps: np.ndarray | None = None
    swap_cap_hit: np.ndarray | None = None
    shown_removed: np.ndarray | None = None
    explanation: Explanation | None = None
    lam: np.ndarray | None = None
    miscalibration: np.ndarray | None = None


class Problem(NamedTuple):
    """Checked engine inputs: the candidate ``lists``, the item × category matrix ``categories``
    (canonical float64 CSR), ``targets`` float64 (T × G), and per user its ``target_rows`` (int64)
    and ``lam`` (float64); ``attributes`` (:class:`Attributes`) with several attributes, else
    ``None`` (one attribute: the plain divergence); ``shown`` the items already shown to each
    user (:class:`~rerank.engine.layout.ShownPrefix`, item rows), or ``None``; ``excluded``
    (bool, one per candidate entry) the candidates that were shown (``None``: those whose item
    row is in the user's prefix; the frame API decides it by item id, since unknown items share
    one empty row)."""

    lists: CandidateLists
    categories: sp.csr_matrix
    targets: np.ndarray
    target_rows: np.ndarray
    lam: np.ndarray
    attributes: Attributes | None = None
    shown: ShownPrefix | None = None
    excluded: np.ndarray | None = None


TARGET_SUM_TOL = 1e-6


def check_target_sums(targets: np.ndarray, attributes: Attributes | None = None) -> None:
    """Each row of ``targets`` is a distribution ``p(g|u)``: it sums to 1 (within
    ``TARGET_SUM_TOL``). Rows that do not would change the objective's balance between scores and
    miscalibration (and the quotas) without saying so, so they are refused, not rescaled. Several
    attributes: each attribute's block of the row is a distribution ``p_a``."""
    if not targets.shape[1]:
        return  # no categories: nothing to calibrate
    if attributes is not None:
        for code in range(attributes.n_attributes):
            columns = np.flatnonzero(attributes.codes == code)
            if columns.size:
                check_target_sums(targets[:, columns])
        return
    sums = targets.sum(axis=1)
    bad = np.flatnonzero(~(np.abs(sums - 1.0) <= TARGET_SUM_TOL))
    if bad.size:
        raise InputError(
            f"targets row {bad[0]} sums to {sums[bad[0]]:.6g}, not 1 ({bad.size} such rows): each row is a "
            "distribution p(g|u); divide it by its sum (a user with no target: give the population mean)"
        )


def check_problem(
    lists: CandidateLists, categories, targets, target_rows, lam, options: RerankOptions, *,
    category_attribute=None, attribute_weights=None, shown_indptr=None, shown_items=None,
) -> Problem:
    """The checks that relate the arrays to each other (finite scores, items within the category
    matrix, one target row and one λ per user, one attribute per category); returns the
    :class:`Problem` to :func:`solve`."""
    matrix = category_matrix(categories)
    n_items = matrix.shape[0]
    check_finite("scores", lists.scores)
    items = lists.items
    if items.size and (items.min() < 0 or items.max() >= n_items):
        bad = np.flatnonzero((items < 0) | (items >= n_items))[0]
        raise InputError(f"item_idx[{bad}]={items[bad]} is outside the category matrix's {n_items} rows")
    n_users = lists.n_users
    targets = float_array("targets", targets, ndim=2)
    if targets.shape[1] != matrix.shape[1]:
        raise InputError(
            f"targets must be 2-d with {matrix.shape[1]} columns (one per category), got shape {targets.shape}"
        )
    check_finite("targets", targets.ravel())
    if targets.size and targets.min() < 0:
        raise InputError("targets must be nonnegative")
    if target_rows is None:
        if targets.shape[0] != n_users:
            raise InputError(f"targets has {targets.shape[0]} rows for {n_users} users")
        target_rows = np.arange(n_users, dtype=np.int64)
    else:
        target_rows = int_array("target_rows", target_rows)
        if target_rows.shape != (n_users,):
            raise InputError(f"target_rows must have one entry per user ({n_users})")
        if n_users and (target_rows.min() < 0 or target_rows.max() >= targets.shape[0]):
            raise InputError("target_rows points outside targets")
    if options.lam == "auto":  # λ is searched per user (solve); a placeholder until then
        if lam is not None:
            raise InputError("lam='auto' chooses each user's λ; do not pass lam values too")
        lam = 0.0
    if lam is None:
        if options.lam is None:
            raise InputError("options.lam is None (per-user λ): pass lam, one value per user")
        lam = options.lam
    attributes = check_attributes(category_attribute, attribute_weights, matrix.shape[1])
    check_target_sums(targets, attributes)
    shown = check_shown(shown_indptr, shown_items, n_users, n_items)
    return Problem(lists, matrix, targets, target_rows, check_lam_array(lam, n_users), attributes, shown)


def rerank_lists(
    lists: CandidateLists,
    categories,
    targets,
    options: RerankOptions,
    *,
    target_rows=None,
    lam=None,
    category_attribute=None,
    attribute_weights=None,
    shown_indptr=None,
    shown_items=None,
    explain: bool = False,
    n_threads: int | None = None,
) -> RerankResult:
    """Calibrated reranking of candidate lists with ``options`` (docs/design.md §3, §4).

    ``categories`` is the items × G matrix of ``p(g|i)`` (scipy sparse), ``targets`` the T × G
    targets ``p(g|u)``; user ``u`` uses ``targets[target_rows[u]]`` (``targets[u]`` by default)
    and ``lam[u]`` (``options.lam`` by default; a scalar or one value per user).

    Several attributes: ``category_attribute`` gives the attribute (0, 1, …) of each category
    column and ``attribute_weights`` their weights (normalised to sum to 1; equal by default).
    Each item's row and each target are then normalised *within* each attribute, and the
    divergence is ``Σ_a w_a C(p_a, q_a)``.

    Pages that remember (docs/design.md §9.3): ``shown_indptr`` / ``shown_items`` (a CSR of item
    rows per user, in shown order) are items already shown; they fill the first positions of
    ``q`` with their rank weights, and the candidates among them are not picked again.

    ``explain=True`` fills ``result.explanation`` (input rank, score and calibration gains and
    the reason of every output item, docs/design.md §9.4).
    """
    problem = check_problem(
        lists, categories, targets, target_rows, lam, options, category_attribute=category_attribute,
        attribute_weights=attribute_weights, shown_indptr=shown_indptr, shown_items=shown_items,
    )
    return solve(problem, options, n_threads, explain=check_bool("explain", explain))


def rerank_arrays(
    indptr,
    item_idx,
    scores,
    categories,
    targets,
    k: int | None = None,
    lam=None,
    alpha: float | None = None,
    *,
    options: RerankOptions | None = None,
    target_rows=None,
    category_attribute=None,
    attribute_weights=None,
    shown_indptr=None,
    shown_items=None,
    explain: bool = False,
    n_threads: int | None = None,
    **keywords,
) -> RerankResult:
    """Calibrated reranking of CSR candidates (docs/design.md §3).

    For each user row ``u`` (candidates ``item_idx[indptr[u]:indptr[u+1]]`` with ``scores``)
    returns the list of ``min(k, n_u)`` items maximising, greedily,
    ``(1-λ_u) Σ_{i∈L} s_i - λ_u C(p_u, q(L))`` with ``p_u = targets[target_rows[u]]``
    (``targets[u]`` by default) and ``categories`` the items × G matrix of ``p(g|i)``.

    Options: either ``options=RerankOptions(...)``, or keywords — ``k`` (default 10), ``lam``
    (0.5), ``alpha`` (0.01) and any other field of :class:`RerankOptions` (``divergence``,
    ``rank_weights``, ``normalize``, ``safeguard``, ``order``, ``method``, ``pm2_theta``,
    ``min_share``, ``min_share_threshold``, ``solver``, ``time_limit``, ``max_enumerate``,
    ``refine``, ``max_swaps``).
    ``lam`` may also hold one value per user (with ``options`` too, where it overrides
    ``options.lam``). Several attributes: ``category_attribute`` and ``attribute_weights``, a shown
    prefix: ``shown_indptr`` and ``shown_items``, and ``explain``, as in :func:`rerank_lists`.

    Returns a :class:`RerankResult` (``result.indptr`` delimits each user's ``result.items``).
    """
    per_user = lam is not None and np.ndim(lam) > 0
    if options is None:
        given = {name: value for name, value in (("k", k), ("alpha", alpha)) if value is not None}
        if lam is not None:
            given["lam"] = None if per_user else lam
        options = RerankOptions(**given, **keywords)
        lam = lam if per_user else None
    elif keywords or k is not None or alpha is not None:
        raise TypeError("rerank_arrays takes options=RerankOptions(...) or keyword options, not both")
    lists = CandidateLists(indptr, item_idx, scores)
    return rerank_lists(
        lists, categories, targets, options, target_rows=target_rows, lam=lam,
        category_attribute=category_attribute, attribute_weights=attribute_weights, shown_indptr=shown_indptr,
        shown_items=shown_items, explain=explain, n_threads=n_threads,
    )


def solve(
    problem: Problem, options: RerankOptions, n_threads: int | None = None, *, explain: bool = False,
) -> RerankResult:
    """Run the kernel (and the quota feasibility / exact solver when asked) on checked inputs.

    A shown prefix (``problem.shown``): the shown candidates are removed first (they cannot be
    picked again, and nothing downstream sees them: normalisation, top-k, quotas), the kernel
    starts each ``q`` from the prefix, and the positions are mapped back to the input arrays;
    ``shown_removed`` counts the candidates removed per user. ``explain``: also fill
    ``result.explanation`` (:mod:`rerank.engine.explain`). ``options.lam == "auto"``: each user's
    λ is searched (:mod:`rerank.engine.budget`) and returned in ``result.lam``, with each list's
    divergence in ``result.miscalibration``."""
    refuse_attributes(problem.attributes, options)
    if options.lam == "auto":
        return solve_auto(problem, options, n_threads, explain)
    shown = problem.shown
    n_users = problem.lists.n_users
    kept = None
    work, prefix = problem, ShownPrefix.empty(n_users)
    if shown is not None and (shown.items.size or (problem.excluded is not None and problem.excluded.any())):
        if options.refine is not None:
            raise InputError("refine='swap' scores swaps without a shown prefix; use refine=None with shown items")
        if options.validate().exact:
            raise InputError("solver='exact' does not take a shown prefix; use solver='greedy'")
        if not isinstance(options.rank_weights, str):
            raise InputError(
                "a shown prefix needs rank weights for the shown positions too: rank_weights='uniform' or 'dcg'"
            )
        excluded = problem.excluded
        if excluded is None:
            excluded = shown_candidates(problem.lists, shown, problem.categories.shape[0])
        kept, compact = drop_shown(problem.lists, excluded)
        work, prefix = problem._replace(lists=compact), shown
    # explanations follow the pick order: re-sort by score only after explaining
    by_score = explain and options.order == "score"
    result = _solve(work, options.replace(order="greedy") if by_score else options, n_threads, prefix)
    if explain:
        before = None  # refine="swap": the list before the swaps tells which items a swap put in
        if options.refine is not None:
            start = options.replace(refine=None, safeguard=True, order="greedy")  # the refinement's start list
            before = _solve(work, start, n_threads, prefix).positions
        result = explained(work, options, result, prefix, n_threads, before)
    if shown is not None:
        removed = problem.lists.lengths() - work.lists.lengths()
        result = dataclasses.replace(result, shown_removed=removed)
    if kept is not None:
        result = dataclasses.replace(result, positions=kept[result.positions])
    return result


def solve_auto(problem: Problem, options: RerankOptions, n_threads, explain: bool) -> RerankResult:
    """``lam="auto"``: per user the smallest λ of ``AUTO_LAMBDAS`` whose list has
    ``C ≤ max_miscalibration``, else 1 (:mod:`rerank.engine.budget`); then one plain run."""
    fixed = options.replace(lam=None, max_miscalibration=None)

    def divergence_of(sub: Problem) -> np.ndarray:
        return result_divergences(sub, fixed, solve(sub, fixed, n_threads))

    lam = search_lambda(problem, float(options.max_miscalibration), AUTO_LAMBDAS, divergence_of)
    final = problem._replace(lam=lam)
    result = solve(final, fixed, n_threads, explain=explain)
    return dataclasses.replace(result, lam=lam, miscalibration=result_divergences(final, fixed, result))


def _solve(problem: Problem, options: RerankOptions, n_threads, shown: ShownPrefix) -> RerankResult:
    codes = options.validate()
    lists, matrix, targets, target_rows, lam, attributes, _, _ = problem
    n_users = lists.n_users
    k = options.k
    quota = None  # the kernel compiles the quota greedy only when given a plan (rerank.engine.kernel)
    shortfall = None
    if codes.method == METHOD_QUOTA:  # quotas use the k asked for, before the clamp below
        quotas = quota_matrix(targets, k, codes.rho, float(options.min_share_threshold))
        feasibility = max_quota_met(lists.indptr, lists.items, matrix, quotas, target_rows, k)
        quota, shortfall = QuotaPlan(quotas, feasibility.met), feasibility.shortfall
    lengths = lists.lengths()
    max_n = int(lengths.max(initial=0))
    # k above every user's candidate count changes nothing but the buffers: size them by the
    # longest list, so a huge k (e.g. 10**12) cannot exhaust memory.
    k = min(k, max(max_n, 1))
    weights = options.weights(k + shown.longest)
    out_indptr = np.zeros(n_users + 1, dtype=np.int64)
    np.cumsum(np.minimum(lengths, k), out=out_indptr[1:])
    out = KernelOutput(
        out_indptr, np.empty(out_indptr[-1], dtype=np.int64), np.zeros(n_users, dtype=np.float64),
        np.zeros(n_users, dtype=np.bool_), np.zeros(n_users, dtype=np.int64), np.zeros(n_users, dtype=np.bool_),
    )
    params = KernelParams(
        k, options.alpha, codes.divergence, codes.normalize, options.safeguard, codes.order_by_score, codes.method,
        float(options.pm2_theta), max(max_n, 1), codes.refine, codes.max_swaps,
    )
    cats = CategoryCSR.of(matrix, None if attributes is None else attributes.category_weights())
    if n_users:
        with num_threads(n_threads):  # checks n_threads; the kernel's threads are its own (no prange)
            pm2 = float(options.pm2_theta) if codes.method == METHOD_PM2 else None
            swap = codes.refine if codes.refine != REFINE_NONE else None
            prefix = shown if shown.items.size else None  # no shown item: the kernel compiles no prefix code
            rerank_kernel(lists, cats, targets, target_rows, lam, weights, params, quota, pm2, swap, out, prefix,
                          numba.get_num_threads())
    positions, objective, used_topk = out.positions, out.objective, out.used_topk
    exact = None
    if codes.exact and n_users:
        exact = solve_exact(
            lists, matrix, targets, target_rows, lam, k, options.alpha, codes.divergence, codes.normalize,
            out_indptr, positions - np.repeat(lists.indptr[:-1], np.diff(out_indptr)),
            time_limit=float(options.time_limit), max_enumerate=int(options.max_enumerate),
        )
        positions = order_sets(problem, exact, options, k, n_threads)
        objective, used_topk = exact.objective, np.zeros(n_users, dtype=np.bool_)
    return RerankResult(
        out_indptr, positions, lists.items[positions], objective, used_topk,
        gap=None if exact is None else exact.gap, quota_shortfall=shortfall,
        exact_route=None if exact is None else exact.route, exact_seconds=None if exact is None else exact.seconds,
        swaps=out.swaps if codes.refine else None, swap_cap_hit=out.cap_hit if codes.refine else None,
    )


def order_sets(problem: Problem, exact: ExactResult, options: RerankOptions, k: int, n_threads) -> np.ndarray:
    """Global positions of the exact solver's sets, each listed in output order.

    The optimum is an unordered set (uniform rank weights): listed by score with
    ``order="score"``, otherwise in the order the greedy picks its members (the greedy run on
    the set itself, scores already normalised, safeguard off).
    """
    lists = problem.lists
    owners = np.repeat(np.arange(lists.n_users), np.diff(exact.indptr))
    positions = exact.local + lists.indptr[owners]
    if not positions.size:
        return positions
    codes = options.validate()
    if codes.order_by_score:
        return positions[np.lexsort((positions, -lists.scores[positions], owners))]
    s_norm = np.empty_like(lists.scores)
    normalized_scores(lists.indptr, lists.scores, codes.normalize, s_norm)
    subset = Problem(
        CandidateLists(exact.indptr, lists.items[positions], s_norm[positions]), problem.categories,
        problem.targets, problem.target_rows, problem.lam,
    )
    greedy = options.replace(k=k, normalize=None, safeguard=False, solver="greedy", order="greedy", refine=None)
    return positions[solve(subset, greedy, n_threads).positions]
