"""The low-level array entry point: CSR candidates in, chosen items out.

Every other entry point (the frame API, adapters, the simulator, Spark) ends here, in
:func:`rerank.kernel.rerank_kernel`. Dtypes are normalised once at this boundary (int64
indices, float64 values) so the kernel is compiled once.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp

from rerank import validation
from rerank._numba import kernel_lock, num_threads
from rerank.distributions import rank_weights as make_rank_weights
from rerank.exact import GAP_TOL, check_solver, run_exact
from rerank.feasibility import check_min_share, max_quota_met, quota_matrix
from rerank.kernel import METHOD_GREEDY, METHOD_PM2, METHOD_QUOTA, rerank_kernel
from rerank.refine import DEFAULT_MAX_SWAPS, check_refine


@dataclass(frozen=True)
class RerankResult:
    """Kernel output for U users.

    ``indptr`` (U+1) delimits each user's output; ``positions`` are indices into the input
    candidate arrays, in output order; ``items`` the chosen item indices; ``objective`` the
    objective ``(1-λ)Σs - λC`` of each output list (on the normalised scores); ``used_topk``
    whether the safeguard replaced the greedy list by plain top-k.
    ``gap`` (``solver="exact"`` only): each list's certified relative optimality gap
    (0 when enumerated or forced; see :mod:`rerank.exact`). ``quota_shortfall``
    (``min_share`` only): per user, how many quota units ``Σ_g max(0, r_g - c_g)`` the list
    misses because no k-subset of the candidates meets them all (see :mod:`rerank.quota`).
    ``swaps`` / ``swap_cap_hit`` (``refine="swap"`` only): per user, the improving swaps made
    and whether ``max_swaps`` stopped the search while an improving swap remained
    (:mod:`rerank.refine`); ``used_topk`` then means the output is plain top-k.
    """

    indptr: np.ndarray
    positions: np.ndarray
    items: np.ndarray
    objective: np.ndarray
    used_topk: np.ndarray
    gap: np.ndarray | None = None
    quota_shortfall: np.ndarray | None = None
    swaps: np.ndarray | None = None
    swap_cap_hit: np.ndarray | None = None


def _as_category_csr(categories) -> tuple[np.ndarray, np.ndarray, np.ndarray, int]:
    if not sp.issparse(categories):
        raise validation.InputTypeError(f"categories must be a scipy sparse matrix, got {type(categories).__name__}")
    matrix = sp.csr_matrix(categories, dtype=np.float64)
    if not matrix.has_canonical_format:
        matrix = matrix.copy()
        matrix.sum_duplicates()
    if matrix.nnz and (not np.all(np.isfinite(matrix.data)) or matrix.data.min() < 0):
        raise validation.InputError("categories must hold finite, nonnegative values")
    return (
        matrix.indptr.astype(np.int64, copy=False),
        matrix.indices.astype(np.int64, copy=False),
        matrix.data,
        matrix.shape[0],
    )


def _list_builder(method, min_share, threshold, pm2_theta, solver) -> tuple[int, float]:
    """Kernel method code and quota scale ρ for the ``method``/``min_share`` options."""
    validation.check_choice("method", method, ("greedy", "pm2"))
    validation.check_unit_interval("pm2_theta", pm2_theta)
    rho = check_min_share(min_share, threshold)
    if rho > 0 and method == "pm2":
        raise validation.InputError("min_share (quota mode) works with method='greedy', not 'pm2'")
    if solver == "exact" and (rho > 0 or method == "pm2"):
        raise validation.InputError("solver='exact' solves the calibration objective only: no min_share, no pm2")
    if rho > 0:
        return METHOD_QUOTA, rho
    return (METHOD_PM2 if method == "pm2" else METHOD_GREEDY), rho


def _category_matrix(indptr, indices, data, shape) -> sp.csr_matrix:
    return sp.csr_matrix((data, indices, indptr), shape=shape)


def _check_candidates(indptr, item_idx, scores, n_items: int):
    indptr = validation.int_array("indptr", indptr)
    item_idx = validation.int_array("item_idx", item_idx)
    scores = validation.float_array("scores", scores)
    if indptr.ndim != 1 or indptr.size < 1 or indptr[0] != 0 or np.any(np.diff(indptr) < 0):
        raise validation.InputError("indptr must be a nondecreasing 1-d array starting at 0")
    if indptr[-1] != item_idx.size or item_idx.size != scores.size:
        raise validation.InputError(
            f"indptr[-1]={indptr[-1]}, len(item_idx)={item_idx.size} and len(scores)={scores.size} must agree"
        )
    validation.check_finite("scores", scores)
    if item_idx.size and (item_idx.min() < 0 or item_idx.max() >= n_items):
        bad = np.flatnonzero((item_idx < 0) | (item_idx >= n_items))[0]
        raise validation.InputError(
            f"item_idx[{bad}]={item_idx[bad]} is outside the category matrix's {n_items} rows"
        )
    return indptr, item_idx, scores


def rerank_arrays(
    indptr,
    item_idx,
    scores,
    categories,
    targets,
    k: int,
    lam=0.5,
    alpha: float = 0.01,
    *,
    divergence: str = "kl",
    rank_weights="uniform",
    normalize: str | None = None,
    safeguard: bool = True,
    order: str = "greedy",
    target_rows=None,
    n_threads: int | None = None,
    return_result: bool = False,
    solver: str = "greedy",
    time_limit: float = 10.0,
    max_enumerate: int = 200_000,
    method: str = "greedy",
    min_share=False,
    min_share_threshold: float = 0.0,
    pm2_theta: float = 0.5,
    refine: str | None = None,
    max_swaps: int | None = DEFAULT_MAX_SWAPS,
):
    """Calibrated reranking of CSR candidates (DESIGN §3).

    For each user row ``u`` (candidates ``item_idx[indptr[u]:indptr[u+1]]`` with ``scores``)
    returns the list of ``min(k, n_u)`` items maximising, greedily,
    ``(1-λ_u) Σ_{i∈L} s_i - λ_u C(p_u, q(L))`` with ``p_u = targets[target_rows[u]]``
    (``targets[u]`` by default) and ``categories`` the items × G matrix of ``p(g|i)``.

    ``lam`` is a scalar or one value per user; ``divergence`` is ``"kl"``, ``"hellinger"`` or
    ``"chi2"``; ``rank_weights`` ``"uniform"``, ``"dcg"`` or an array; ``normalize`` ``None``,
    ``"minmax"`` or ``"rank"``; ``safeguard`` returns top-k when its objective is higher;
    ``order="score"`` re-sorts each chosen list by score.

    ``solver="exact"`` (uniform rank weights only) replaces each list by the certified
    optimum of the objective with list size ``min(k, n_u)``: enumeration when there are at most
    ``max_enumerate`` subsets, else a MILP outer approximation with cutting planes (KL, χ²)
    stopped at a relative gap ≤ 1e-6 or after ``time_limit`` seconds per user; the gap per user
    is in ``RerankResult.gap`` (:mod:`rerank.exact`).

    ``min_share=True`` (or ``ρ`` in (0, 1]) is quota mode (DESIGN §4.3, :mod:`rerank.quota`):
    every category with ``p_g ≥ min_share_threshold`` gets at least ``⌊ρ k p_g⌋`` items
    carrying it whenever some subset of the candidates meets all the quotas, otherwise as many
    quota units as any subset can meet; the units missed are ``RerankResult.quota_shortfall``.
    ``method="pm2"`` builds the lists with PM-2 (:mod:`rerank.pm2`, aspect weight ``pm2_theta``).

    ``refine="swap"`` (:mod:`rerank.refine`; greedy and quota mode, not PM-2) starts from the
    better of the list and top-k and applies best-improvement single swaps (one listed item out,
    one candidate in at its position) until none improves the objective or ``max_swaps`` were
    made (``None``: no cap); swaps per user and cap hits are in ``RerankResult``.

    Returns ``(out_indptr, out_items)``, or a :class:`RerankResult` with ``return_result``.
    """
    k = validation.check_k(k)
    alpha = validation.check_unit_interval("alpha", alpha, open_interval=True)
    div_code = validation.divergence_code(divergence)
    norm_code = validation.normalize_code(normalize)
    order_by_score = validation.check_order(order)
    cat_indptr, cat_indices, cat_data, n_items = _as_category_csr(categories)
    indptr, item_idx, scores = _check_candidates(indptr, item_idx, scores, n_items)
    n_users = indptr.size - 1

    targets = validation.float_array("targets", targets, ndim=2)
    if targets.shape[1] != categories.shape[1]:
        raise validation.InputError(
            f"targets must be 2-d with {categories.shape[1]} columns (one per category), got shape {targets.shape}"
        )
    validation.check_finite("targets", targets.ravel())
    if targets.size and targets.min() < 0:
        raise validation.InputError("targets must be nonnegative")
    if target_rows is None:
        if targets.shape[0] != n_users:
            raise validation.InputError(f"targets has {targets.shape[0]} rows for {n_users} users")
        target_rows = np.arange(n_users, dtype=np.int64)
    else:
        target_rows = validation.int_array("target_rows", target_rows)
        if target_rows.shape != (n_users,):
            raise validation.InputError(f"target_rows must have one entry per user ({n_users})")
        if n_users and (target_rows.min() < 0 or target_rows.max() >= targets.shape[0]):
            raise validation.InputError("target_rows points outside targets")
    lam_arr = validation.check_lam_array(lam, n_users)
    validation.check_rank_weights(rank_weights, k)
    method_code, rho = _list_builder(method, min_share, min_share_threshold, pm2_theta, solver)
    refine_code, swap_cap = check_refine(refine, max_swaps, method_code == METHOD_PM2)
    quotas = np.zeros((1, 1), dtype=np.int64)
    quota_target = np.zeros(max(n_users, 1), dtype=np.int64)
    shortfall = None
    if method_code == METHOD_QUOTA:  # quotas use the k asked for, before the clamp below
        quotas = quota_matrix(targets, k, rho, float(min_share_threshold))
        feasibility = max_quota_met(
            indptr, item_idx, _category_matrix(cat_indptr, cat_indices, cat_data, categories.shape), quotas,
            target_rows, k,
        )
        quota_target, shortfall = feasibility.met, feasibility.shortfall
    # k above every user's candidate count changes nothing but the buffers: size them by the
    # longest list, so a huge k (e.g. 10**12) cannot exhaust memory.
    k = min(k, max(int(np.diff(indptr).max(initial=0)), 1))
    weights = make_rank_weights(rank_weights, k)
    exact = check_solver(solver, weights, time_limit, max_enumerate)

    lengths = np.diff(indptr)
    out_indptr = np.zeros(n_users + 1, dtype=np.int64)
    np.cumsum(np.minimum(lengths, k), out=out_indptr[1:])
    out_pos = np.empty(out_indptr[-1], dtype=np.int64)
    objective = np.zeros(n_users, dtype=np.float64)
    used_topk = np.zeros(n_users, dtype=np.bool_)
    swaps = np.zeros(n_users, dtype=np.int64)
    cap_hit = np.zeros(n_users, dtype=np.bool_)
    max_n = int(lengths.max(initial=0))
    if n_users:
        with num_threads(n_threads), kernel_lock():
            rerank_kernel(
                indptr, item_idx, scores, cat_indptr, cat_indices, cat_data, targets,
                target_rows, lam_arr, k, alpha, div_code, weights, norm_code, bool(safeguard),
                order_by_score, max(max_n, 1), out_indptr, out_pos, objective, used_topk,
                method_code, quotas, quota_target, float(pm2_theta), refine_code, swap_cap, swaps, cap_hit,
            )
    gap = None
    if exact and n_users:
        out_pos, objective, gap, _, _ = run_exact(
            indptr, item_idx, scores, _category_matrix(cat_indptr, cat_indices, cat_data, categories.shape),
            targets, target_rows, lam_arr, k, alpha, div_code, norm_code, out_indptr, out_pos,
            order_by_score=order_by_score, divergence=divergence, time_limit=float(time_limit),
            gap_tol=GAP_TOL, max_enumerate=int(max_enumerate),
        )
        used_topk = np.zeros(n_users, dtype=np.bool_)
    items = item_idx[out_pos]
    if return_result:
        refined = (swaps, cap_hit) if refine_code else (None, None)
        return RerankResult(out_indptr, out_pos, items, objective, used_topk, gap, shortfall, *refined)
    return out_indptr, items
