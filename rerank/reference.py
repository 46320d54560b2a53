"""Two slow reference implementations of Steck's greedy, for ``rerank bench`` and ``benchmarks/``.

They share nothing with :mod:`rerank.engine.kernel` (no import of it, no shared helper) and are what
the compiled kernel is measured and checked against:

* :func:`python_greedy` — the way public notebooks write the greedy: plain Python, the list
  distribution ``q(L ∪ {j})`` rebuilt as a dict for every candidate at every step, then the
  divergence summed over the categories. O(k · n · (k · ḡ + G)) per user.
* :func:`numpy_greedy` — a NumPy *incremental* greedy: the list mass ``M`` is kept between
  steps and each step scores all candidates at once on a dense ``n × G`` block,
  ``Q = (M + w_t A_cand) / W_t``. O(k · n · G) per user, vectorised.

Both implement docs/design.md §3 exactly as the kernel does: the objective compared at step ``t`` is
``(1-λ) s_j - λ C(p, q(L ∪ {j}))``; ties (equal within ``TIE_RTOL`` relative) go to the higher
score, then to the earlier input position; with ``safeguard`` the plain top-k list is returned
when its objective ``(1-λ) Σ s - λ C`` is higher by more than the tolerance. Scores are used as
given (no normalisation). Divergences: ``"kl"`` (``Σ p log(p/q̃)``, ``q̃ = (1-α) q + α p``),
``"hellinger"`` (``sqrt(Σ (√p - √q)²) / √2``) and ``"chi2"`` (``Σ (p - q̃)² / q̃``).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

TIE_RTOL = 1e-12  # the tolerance of docs/design.md §3 (rerank.engine.ties)

__all__ = ["TIE_RTOL", "numpy_greedy", "python_greedy"]


# ----------------------------------------------------------------------------- pure Python
def _py_divergence(p: Sequence[float], q: dict, alpha: float, divergence: str) -> float:
    total = 0.0
    if divergence == "hellinger":
        for g, pg in enumerate(p):
            d = math.sqrt(pg) - math.sqrt(q.get(g, 0.0))
            total += d * d
        return math.sqrt(max(total, 0.0)) / math.sqrt(2.0)
    for g, pg in enumerate(p):
        qs = (1.0 - alpha) * q.get(g, 0.0) + alpha * pg
        if divergence == "kl":
            if pg > 0.0:
                total += pg * math.log(pg / qs)
        elif qs > 0.0:
            total += (pg - qs) ** 2 / qs
    return total


def _py_list_distribution(chosen: list[int], item_cats: Sequence[dict], weights: Sequence[float]) -> dict:
    q: dict = {}
    total = 0.0
    for r, j in enumerate(chosen):
        total += weights[r]
        for g, a in item_cats[j].items():
            q[g] = q.get(g, 0.0) + weights[r] * a
    return {g: m / total for g, m in q.items()}


def _py_better(a: tuple, b: tuple) -> bool:
    """``a``, ``b`` = (objective, score, position): the tie rule of docs/design.md §3."""
    tol = TIE_RTOL * (1.0 + max(abs(a[0]), abs(b[0])))
    if a[0] > b[0] + tol:
        return True
    if a[0] < b[0] - tol:
        return False
    if a[1] != b[1]:
        return a[1] > b[1]
    return a[2] < b[2]


def python_greedy(
    scores: Sequence[float],
    item_cats: Sequence[dict],
    p: Sequence[float],
    k: int,
    lam: float,
    alpha: float = 0.01,
    divergence: str = "kl",
    rank_weights: Sequence[float] | None = None,
    safeguard: bool = True,
    refine: bool = False,
) -> list[int]:
    """Local positions of the chosen candidates, in pick order.

    ``item_cats[j]`` is candidate ``j``'s ``{category: p(g|i)}``; ``p`` the target (length G);
    ``rank_weights`` the ``w_1..w_k`` (uniform when ``None``). ``refine``: start from the better
    of the greedy and top-k, then swap (a candidate outside the list into some position) until
    no swap improves the objective by more than ``TIE_RTOL``: positions in list order,
    cyclically from the one after the last swap; at the first position with improving swaps,
    the best of them by the tie rule. Every objective computed from scratch; no cap.
    """
    n = len(scores)
    kk = min(k, n)
    weights = [1.0] * kk if rank_weights is None else [float(w) for w in rank_weights[:kk]]

    def objective(chosen: list[int]) -> float:
        q = _py_list_distribution(chosen, item_cats, weights)
        return (1.0 - lam) * sum(scores[j] for j in chosen) - lam * _py_divergence(p, q, alpha, divergence)

    chosen: list[int] = []
    for _ in range(kk):
        best = None
        for j in range(n):
            if j in chosen:
                continue
            q = _py_list_distribution(chosen + [j], item_cats, weights)
            obj = (1.0 - lam) * scores[j] - lam * _py_divergence(p, q, alpha, divergence)
            if best is None or _py_better((obj, scores[j], j), best):
                best = (obj, scores[j], j)
        chosen.append(best[2])
    if (safeguard or refine) and lam != 0.0 and kk:
        top = sorted(range(n), key=lambda j: (-scores[j], j))[:kk]
        greedy_obj, top_obj = objective(chosen), objective(top)
        if top_obj > greedy_obj + TIE_RTOL * (1.0 + max(abs(greedy_obj), abs(top_obj))):
            chosen = top
    first = 0
    while refine and lam != 0.0 and kk:
        current = objective(chosen)
        best = None
        for step in range(kk):
            r = (first + step) % kk
            for c in range(n):
                if c in chosen:
                    continue
                obj = objective(chosen[:r] + [c] + chosen[r + 1 :])
                if obj > current + TIE_RTOL * (1.0 + max(abs(obj), abs(current))) and (
                    best is None or _py_better((obj, scores[c], c), best[0])
                ):
                    best = ((obj, scores[c], c), r)
            if best is not None:
                break
        if best is None:
            break
        chosen[best[1]] = best[0][2]
        first = (best[1] + 1) % kk
    return chosen


# ----------------------------------------------------------------------------- NumPy
def _np_divergence_rows(p: np.ndarray, q: np.ndarray, alpha: float, divergence: str) -> np.ndarray:
    """``C(p, q_r)`` for every row ``q_r`` of ``q`` (n × G)."""
    if divergence == "hellinger":
        d = np.sqrt(p) - np.sqrt(q)
        return np.sqrt(np.maximum((d * d).sum(axis=1), 0.0)) / math.sqrt(2.0)
    qs = (1.0 - alpha) * q + alpha * p
    with np.errstate(divide="ignore", invalid="ignore"):
        if divergence == "kl":
            terms = np.where(p > 0.0, p * np.log(p / qs), 0.0)
        else:
            terms = np.where(qs > 0.0, (p - qs) ** 2 / qs, 0.0)
    return terms.sum(axis=1)


def _np_pick(obj: np.ndarray, s: np.ndarray, available: np.ndarray) -> int:
    """The tie rule over the available candidates: best objective (within the tolerance),
    then higher score, then earlier position."""
    masked = np.where(available, obj, -np.inf)
    best = int(np.argmax(masked))
    tol = TIE_RTOL * (1.0 + np.maximum(np.abs(obj), abs(obj[best])))
    tied = available & ~(obj < obj[best] - tol)
    top_score = s[tied].max()
    return int(np.flatnonzero(tied & (s == top_score))[0])


def numpy_greedy(
    scores: np.ndarray,
    cand_cats: np.ndarray,
    p: np.ndarray,
    k: int,
    lam: float,
    alpha: float = 0.01,
    divergence: str = "kl",
    rank_weights: np.ndarray | None = None,
    safeguard: bool = True,
) -> np.ndarray:
    """Local positions of the chosen candidates, in pick order.

    ``cand_cats`` is the dense ``n × G`` block of the candidates' ``p(g|i)`` rows (e.g.
    ``dense_item_categories[items]``); ``p`` the target (G); ``rank_weights`` ``w_1..w_k``.
    """
    s = np.asarray(scores, dtype=np.float64)
    n = s.shape[0]
    kk = min(k, n)
    weights = np.ones(kk) if rank_weights is None else np.asarray(rank_weights, dtype=np.float64)[:kk]
    mass = np.zeros(cand_cats.shape[1])
    available = np.ones(n, dtype=bool)
    chosen = np.empty(kk, dtype=np.int64)
    total_w = 0.0
    for t in range(kk):
        w = weights[t]
        total_w += w
        q = (mass + w * cand_cats) / total_w
        obj = (1.0 - lam) * s - lam * _np_divergence_rows(p, q, alpha, divergence)
        j = _np_pick(obj, s, available)
        chosen[t] = j
        available[j] = False
        mass += w * cand_cats[j]
    if safeguard and lam != 0.0 and kk:
        top = np.lexsort((np.arange(n), -s))[:kk]

        def objective(lst: np.ndarray) -> float:
            q = (weights[:, None] * cand_cats[lst]).sum(axis=0) / weights.sum()
            return (1.0 - lam) * s[lst].sum() - lam * _np_divergence_rows(p, q[None, :], alpha, divergence)[0]

        greedy_obj, top_obj = objective(chosen), objective(top)
        if top_obj > greedy_obj + TIE_RTOL * (1.0 + max(abs(greedy_obj), abs(top_obj))):
            chosen = top.astype(np.int64)
    return chosen
