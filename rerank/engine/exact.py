"""The certified exact solver behind ``solver="exact"`` (docs/design.md §3, §4.4).

For user ``u`` with ``n`` candidates (scores ``s_j`` after the usual normalisation), target
``p`` and trade-off ``λ``, it solves Steck's objective with **uniform rank weights** and a
fixed list size ``k' = min(k, n)``:

    max_{x ∈ {0,1}^n, Σ_j x_j = k'}  F(x) = (1-λ) Σ_j s_j x_j - λ C(p, q(x)),
    q_g(x) = Σ_j A[i_j, g] x_j / k',   q̃_g = (1-α) q_g + α p_g  (affine in x)

Two routes, per user:

* **Enumeration** when ``C(n, k') ≤ max_enumerate``: every k'-subset is scored with the
  kernel's own :func:`rerank.engine.kernel.list_objective` (compiled loop, no Python per subset).
  The result is the optimum; its gap is 0.
* **Outer approximation + cutting planes** otherwise (KL and χ² only). Both divergences are
  ``C = const + lin·x + Σ_{g: p_g>0} φ_g(q̃_g)`` with ``φ_g`` convex and decreasing:
  KL ``φ_g(y) = -p_g log y`` (``const = Σ p log p``); χ² ``φ_g(y) = p_g²/y`` (the rest,
  ``Σ_g q̃_g - 2 Σ_g p_g``, is affine). An epigraph variable ``t_g ≥ φ_g(y_g)`` is replaced by
  tangent cuts ``t_g ≥ φ_g(y⁰) + φ_g'(y⁰)(y_g - y⁰)``, which *under*-estimate the convex
  ``φ_g``; the resulting MILP (``scipy.optimize.milp``, HiGHS) is a relaxation, so its dual
  bound is a certified upper bound ``UB`` on ``max F``. Each MILP solution ``x*`` is scored
  exactly (lower bound ``LB``, the incumbent); new cuts are added at ``y(x*)`` and the MILP
  is solved again until

      gap = (UB - LB) / max(|UB|, |LB|, GAP_FLOOR)  ≤  gap_tol (1e-6)

  or the per-user ``time_limit`` is spent; the certified ``gap`` is reported per user.
  (Kelley's method terminates: once ``x*`` repeats, the cut at ``y(x*)`` makes the relaxation
  exact there, so ``UB = F(x*) = LB`` up to HiGHS's own tolerance.)
  ``GAP_FLOOR = 1e-3``: HiGHS stops at an absolute gap of 1e-6 on the scaled objective, i.e.
  ``1e-6 / OBJECTIVE_SCALE = 1e-10`` in our units, so a relative gap below
  ``1e-10 / |F|`` cannot be certified; below ``|F| = 1e-3`` the gap is therefore measured
  against 1e-3 (an absolute gap of 1e-9, ten times HiGHS's, certifies). Before, a floor of
  1e-9 reported ``gap ≈ 0.1`` for an exact optimum of 0 (a list matching the target at zero
  scores).

The objective is never written as a minimum-cost flow (that formulation is patented); only
the generic MILP above is used.

The incumbent starts at the list the greedy kernel returned, so the exact solver's objective
is always ≥ the greedy's (docs/design.md §4.4). The solver returns *sets*; the engine
(:func:`rerank.engine.arrays.order_sets`) lists them in output order.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp
from numba import prange
from scipy.optimize import Bounds, LinearConstraint, milp

from rerank._numba import compiled
from rerank.engine.divergences import DIV_CHI2, DIV_HELLINGER, DIV_KL
from rerank.engine.layout import CategoryCSR
from rerank.engine.scoring import list_objective, normalize_scores
from rerank.engine.ties import TIE_RTOL

__all__ = ["GAP_TOL", "ROUTE_MILP", "ExactResult", "solve_exact"]

GAP_TOL = 1e-6
GAP_FLOOR = 1e-3  # below this |objective| the certified gap is absolute (10x HiGHS's 1e-10 in our units)
GRID = 1  # initial tangents per category at q = c / (GRID·k'), c = 0..GRID·k'
ROUTE_TRIVIAL = 0  # n ≤ k or λ = 0: the answer is forced (all candidates / top-k)
ROUTE_ENUMERATE = 1
ROUTE_MILP = 2


@dataclass(frozen=True)
class ExactResult:
    """Per user: chosen local positions (CSR by ``indptr``), objective, certified relative gap,
    route (0 forced, 1 enumeration, 2 MILP) and seconds spent."""

    indptr: np.ndarray
    local: np.ndarray
    objective: np.ndarray
    gap: np.ndarray
    route: np.ndarray
    seconds: np.ndarray


@compiled(parallel=True)
def normalized_scores(indptr, scores, normalize, out):
    """``out`` = each user's scores after the kernel's per-user normalisation."""
    n_users = indptr.shape[0] - 1
    for u in prange(n_users):
        lo = indptr[u]
        n = indptr[u + 1] - lo
        if n:
            buf = np.empty(n, dtype=np.float64)
            normalize_scores(scores[lo : lo + n], buf, n, normalize)
            out[lo : lo + n] = buf


@compiled(parallel=True)
def enumerate_users(users, lists, s_all, cats, targets, target_rows, lam, kk_all, alpha, divergence, best_local,
                    best_obj):
    """Best k'-subset of each listed user by full enumeration (lexicographic order).

    ``best_local[r, :k']`` receives local positions of user ``users[r]``; ``best_obj[r]`` its
    objective (uniform rank weights). Ties keep the lexicographically first subset.
    """
    for r in prange(users.shape[0]):
        u = users[r]
        lo = lists.indptr[u]
        n = lists.indptr[u + 1] - lo
        kk = kk_all[r]
        s = s_all[lo : lo + n]
        items = lists.items[lo : lo + n]
        p = targets[target_rows[u]]
        mass = np.empty(p.shape[0], dtype=np.float64)
        no_prefix = np.zeros(p.shape[0], dtype=np.float64)
        rank_w = np.ones(kk, dtype=np.float64)
        comb = np.arange(kk).astype(np.int64)
        best = -np.inf
        while True:
            obj = list_objective(comb, kk, s, items, cats, p, lam[u], alpha, divergence, rank_w, mass, no_prefix, 0.0)
            if obj > best + TIE_RTOL * (1.0 + abs(obj)) or best == -np.inf:
                best = obj
                best_local[r, :kk] = comb
            # next combination in lexicographic order
            i = kk - 1
            while i >= 0 and comb[i] == n - kk + i:
                i -= 1
            if i < 0:
                break
            comb[i] += 1
            for j in range(i + 1, kk):
                comb[j] = comb[j - 1] + 1
        best_obj[r] = best


def _true_objective(local, s, items, cats, p, lam, alpha, div_code):
    chosen = np.ascontiguousarray(local, dtype=np.int64)
    if chosen.size == 0:
        return 0.0
    return list_objective(
        chosen, chosen.size, s, items, cats, p, lam, alpha, div_code, np.ones(max(chosen.size, 1)),
        np.empty(p.shape[0]), np.zeros(p.shape[0]), 0.0,
    )


OBJECTIVE_SCALE = 1e4


class _OuterApproximation:
    """The MILP relaxation of one user's problem, tightened by tangent cuts."""

    def __init__(self, s, items, categories: sp.csr_matrix, p, lam, alpha, div_code, kk):
        n = s.size
        self.n, self.kk, self.lam, self.p = n, kk, lam, p
        # y = a_g · x + b_g  with  a_g[j] = (1-α) A[i_j, g] / k'
        sub = categories[items]  # n × G, CSR
        self.a = ((1.0 - alpha) / kk) * sub.T.tocsr()  # G × n
        self.b = alpha * p
        self.div_code = div_code
        self.active = np.flatnonzero(p > 0.0)
        m = self.active.size
        # objective (minimised): -(1-λ) s·x + λ (lin·x + Σ t_g) ; constant kept separately
        lin = np.zeros(n)
        const = 0.0
        if div_code == DIV_KL:
            const = float(np.sum(p[self.active] * np.log(p[self.active])))
        else:  # χ²: Σ_g q̃_g - 2 Σ_g p_g is affine in x
            lin = np.asarray(self.a.sum(axis=0)).ravel()
            const = float(self.b.sum() - 2.0 * p.sum())
        self.const = const
        self.c = np.concatenate([-(1.0 - lam) * s + lam * lin, np.full(m, lam)])
        a_active = self.a[self.active].toarray() if m else np.zeros((0, n))
        self.a_active = a_active
        top = -np.sort(-a_active, axis=1)[:, :kk].sum(axis=1) if m else np.zeros(0)
        self.y_lo = self.b[self.active]
        self.y_hi = self.b[self.active] + top
        self.rows: list[np.ndarray] = []
        self.rhs: list[float] = []
        for g in range(m):  # initial tangents at the values q = c/k' reachable by single-category items
            grid = self.b[self.active[g]] + (1.0 - alpha) * np.arange(GRID * kk + 1) / (GRID * kk)
            for y0 in np.clip(grid, self.y_lo[g], self.y_hi[g]):
                self.add_cut(g, y0)
        self.t_bounds = (self.phi(np.arange(m), self.y_hi), self.phi(np.arange(m), self.y_lo))

    def phi(self, g, y):
        pg = self.p[self.active[g]]
        if self.div_code == DIV_KL:
            return -pg * np.log(y)
        return pg * pg / y

    def dphi(self, g, y):
        pg = self.p[self.active[g]]
        if self.div_code == DIV_KL:
            return -pg / y
        return -pg * pg / (y * y)

    def add_cut(self, g: int, y0: float) -> None:
        """t_g - φ'(y0) a_g·x ≥ φ(y0) + φ'(y0)(b_g - y0)."""
        slope = float(self.dphi(g, y0))
        row = np.zeros(self.n + self.active.size)
        row[: self.n] = -slope * self.a_active[g]
        row[self.n + g] = 1.0
        self.rows.append(row)
        self.rhs.append(float(self.phi(g, y0)) + slope * (self.b[self.active[g]] - y0))

    def y_of(self, x: np.ndarray) -> np.ndarray:
        return self.a_active @ x + self.y_lo

    def solve(self, time_limit: float, mip_gap: float):
        n, m = self.n, self.active.size
        card = np.zeros((1, n + m))
        card[0, :n] = 1.0
        constraints = [LinearConstraint(card, self.kk, self.kk)]
        if self.rows:
            constraints.append(LinearConstraint(np.array(self.rows), np.array(self.rhs), np.inf))
        lower = np.concatenate([np.zeros(n), self.t_bounds[0]])
        upper = np.concatenate([np.ones(n), self.t_bounds[1]])
        integrality = np.concatenate([np.ones(n), np.zeros(m)])
        # HiGHS also stops at an absolute gap of 1e-6 (mip_abs_gap, which scipy does not
        # expose): scaling the objective makes that 1e-6 / OBJECTIVE_SCALE in our units.
        res = milp(
            OBJECTIVE_SCALE * self.c, integrality=integrality, bounds=Bounds(lower, upper), constraints=constraints,
            options={"time_limit": max(time_limit, 1e-3), "mip_rel_gap": mip_gap, "disp": False},
        )
        if res.x is None:
            return None, -np.inf
        dual = (res.mip_dual_bound if res.mip_dual_bound is not None else res.fun) / OBJECTIVE_SCALE
        upper_bound = -(dual + self.lam * self.const)
        return res.x, upper_bound


def _relative_gap(upper: float, lower: float) -> float:
    """``(UB - LB) / max(|UB|, |LB|, GAP_FLOOR)`` (module docstring)."""
    return max(upper - lower, 0.0) / max(abs(upper), abs(lower), GAP_FLOOR)


def _milp_user(s, items, categories, cats, p, lam, alpha, div_code, kk, incumbent, time_limit, gap_tol):
    """Cutting-plane loop for one user; returns (local positions, objective, certified gap)."""
    start = time.perf_counter()
    best_local = np.sort(incumbent)
    best_obj = _true_objective(best_local, s, items, cats, p, lam, alpha, div_code)
    model = _OuterApproximation(s, items, categories, p, lam, alpha, div_code, kk)
    m = model.active.size
    if m:
        x0 = np.zeros(s.size)
        x0[best_local] = 1.0
        for g, y0 in enumerate(model.y_of(x0)):
            model.add_cut(g, y0)
    upper = np.inf
    while True:
        remaining = time_limit - (time.perf_counter() - start)
        if remaining <= 0:
            break
        x, ub = model.solve(remaining, gap_tol / 10.0)
        if x is None:
            break
        upper = min(upper, ub)
        local = np.flatnonzero(x[: s.size] > 0.5)
        if local.size == kk:
            obj = _true_objective(local, s, items, cats, p, lam, alpha, div_code)
            if obj > best_obj + TIE_RTOL * (1.0 + abs(obj)):
                best_obj, best_local = obj, local
        if _relative_gap(upper, best_obj) <= gap_tol:
            break
        if local.size != kk or m == 0:
            break
        y = model.y_of(x[: s.size].round())
        t = x[s.size :]
        violated = [g for g in range(m) if model.phi(g, y[g]) > t[g] + 1e-12 * (1.0 + abs(t[g]))]
        if not violated:  # relaxation exact at x*: only HiGHS's own gap is left
            break
        for g in violated:
            model.add_cut(g, y[g])
    return best_local, best_obj, (_relative_gap(upper, best_obj) if np.isfinite(upper) else np.inf)


def solve_exact(
    lists,
    categories: sp.csr_matrix,
    targets: np.ndarray,
    target_rows: np.ndarray,
    lam: np.ndarray,
    k: int,
    alpha: float,
    div_code: int,
    normalize_code: int,
    initial_indptr: np.ndarray,
    initial_local: np.ndarray,
    *,
    time_limit: float = 10.0,
    gap_tol: float = GAP_TOL,
    max_enumerate: int = 200_000,
) -> ExactResult:
    """The optimal *set* of every user (inputs checked and typed by :func:`rerank.engine.arrays.solve`).

    ``lists`` are the :class:`~rerank.engine.layout.CandidateLists`; ``initial_local`` (CSR by
    ``initial_indptr``) holds the greedy's list of each user in local positions: it is the
    starting incumbent of the MILP route and the fallback of ties. The sets come back unordered
    (sorted local positions or the greedy's order); :func:`rerank.engine.arrays.order_sets`
    lists them.
    """
    indptr, cand_items, scores = lists
    n_users = indptr.size - 1
    lengths = np.diff(indptr)
    kk = np.minimum(lengths, k)
    s_all = np.empty_like(scores)
    if scores.size:
        normalized_scores(indptr, scores, normalize_code, s_all)
    cats = CategoryCSR.of(categories)
    objective = np.zeros(n_users)
    gap = np.zeros(n_users)
    route = np.full(n_users, ROUTE_TRIVIAL, dtype=np.int8)
    seconds = np.zeros(n_users)
    chosen = [initial_local[initial_indptr[u] : initial_indptr[u + 1]].copy() for u in range(n_users)]

    def initial_objective(u):
        lo = indptr[u]
        return _true_objective(
            chosen[u], s_all[lo : indptr[u + 1]], cand_items[lo : indptr[u + 1]], cats,
            targets[target_rows[u]], lam[u], alpha, div_code,
        )

    n_subsets = np.array([math.comb(int(n), int(c)) for n, c in zip(lengths, kk, strict=True)], dtype=object)
    forced = (lengths <= k) | (lam == 0.0)
    small = ~forced & (n_subsets <= max_enumerate).astype(bool)
    large = ~forced & ~small
    if div_code == DIV_HELLINGER and large.any():
        u = int(np.flatnonzero(large)[0])
        raise ValueError(
            f"solver='exact' supports divergence='hellinger' only by enumeration; user row {u} has "
            f"C({lengths[u]}, {kk[u]}) = {n_subsets[u]} subsets > max_enumerate={max_enumerate}"
        )
    for u in np.flatnonzero(forced):
        objective[u] = initial_objective(u)

    small_users = np.flatnonzero(small).astype(np.int64)
    if small_users.size:
        t0 = time.perf_counter()
        best_local = np.zeros((small_users.size, max(k, 1)), dtype=np.int64)
        best_obj = np.empty(small_users.size)
        enumerate_users(
            small_users, lists, s_all, cats, targets, target_rows, lam, kk[small_users].astype(np.int64), alpha,
            div_code, best_local, best_obj,
        )
        per_user = (time.perf_counter() - t0) / small_users.size
        for r, u in enumerate(small_users):
            route[u] = ROUTE_ENUMERATE
            seconds[u] = per_user
            start = initial_objective(u)
            if best_obj[r] > start + TIE_RTOL * (1.0 + abs(start)):
                chosen[u] = best_local[r, : kk[u]].copy()
                objective[u] = best_obj[r]
            else:
                objective[u] = start

    for u in np.flatnonzero(large):
        if div_code not in (DIV_KL, DIV_CHI2):  # pragma: no cover - guarded above
            raise ValueError("the MILP route supports divergence 'kl' and 'chi2'")
        t0 = time.perf_counter()
        lo, hi = indptr[u], indptr[u + 1]
        local, obj, g = _milp_user(
            s_all[lo:hi], cand_items[lo:hi], categories, cats, targets[target_rows[u]], lam[u], alpha,
            div_code, int(kk[u]), chosen[u], time_limit, gap_tol,
        )
        chosen[u], objective[u], gap[u] = local, obj, g
        route[u] = ROUTE_MILP
        seconds[u] = time.perf_counter() - t0

    out_indptr = np.zeros(n_users + 1, dtype=np.int64)
    np.cumsum(kk, out=out_indptr[1:])
    local = np.concatenate(chosen).astype(np.int64) if n_users else np.zeros(0, dtype=np.int64)
    return ExactResult(out_indptr, local, objective, gap, route, seconds)
