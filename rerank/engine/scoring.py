"""Per-user helpers shared by every list builder, the safeguard and the exact solver.

* :func:`normalize_scores` — the per-user score normalisation (``normalize=``);
* :func:`top_k_positions` — plain top-k by (score desc, position asc), through
  :func:`insert_ranked` (a bounded sorted insertion, also the refinement's best keys);
* :func:`list_objective` — ``(1-λ) Σ_{l∈L} s_l - λ C(p, q(L))`` of a list, docs/design.md §3;
* :func:`sort_by_score` — ``order="score"``.
"""

from __future__ import annotations

import numpy as np

from rerank._numba import compiled
from rerank.engine.divergences import divergence_finish, divergence_term

__all__ = [
    "NORMALIZE_CODES", "insert_ranked", "list_objective", "normalize_scores", "ranks_before", "sort_by_score",
    "top_k_positions",
]

NORM_NONE = 0
NORM_MINMAX = 1
NORM_RANK = 2
NORMALIZE_CODES = {None: NORM_NONE, "none": NORM_NONE, "minmax": NORM_MINMAX, "rank": NORM_RANK}


@compiled()
def descending_order(raw, n):
    """Positions ``0..n-1`` sorted by (``raw`` desc, position asc): a bottom-up merge sort,
    stable, so equal scores keep their input order (the same order as a stable argsort of
    ``-raw``; written out because numba's own ``argsort(kind="mergesort")`` costs a second of
    compile on the first call)."""
    order = np.arange(n)
    spare = np.empty(n, dtype=np.int64)
    width = 1
    while width < n:
        for lo in range(0, n, 2 * width):
            mid = min(lo + width, n)
            hi = min(lo + 2 * width, n)
            a, b = lo, mid
            for t in range(lo, hi):
                if b < hi and (a >= mid or raw[order[b]] > raw[order[a]]):
                    spare[t] = order[b]
                    b += 1
                else:
                    spare[t] = order[a]
                    a += 1
        order, spare = spare, order
        width *= 2
    return order


@compiled()
def normalize_scores(raw, out, n, mode):
    """Per-user score normalisation into ``out[:n]``.

    * none:   ``s``
    * minmax: ``(s - min) / (max - min)``, all 0 when the scores are constant (computed on
      halves so extreme finite scores cannot overflow to inf/NaN)
    * rank:   ``(n - r) / (n - 1)`` with ``r`` the 1-based rank by (score desc, position asc);
      1 for a single candidate
    """
    if mode == NORM_MINMAX:
        lo = raw[0]
        hi = raw[0]
        for j in range(1, n):
            if raw[j] < lo:
                lo = raw[j]
            if raw[j] > hi:
                hi = raw[j]
        span = 0.5 * hi - 0.5 * lo
        for j in range(n):
            out[j] = (0.5 * raw[j] - 0.5 * lo) / span if span > 0.0 else 0.0
    elif mode == NORM_RANK:
        order = descending_order(raw, n)
        for r in range(n):
            out[order[r]] = (n - 1 - r) / (n - 1) if n > 1 else 1.0
    else:
        for j in range(n):
            out[j] = raw[j]


@compiled(inline="always")
def ranks_before(key, score, other_key, other_score):
    """``(key, score)`` comes before ``(other_key, other_score)``: higher key, then higher score."""
    return key > other_key or (key == other_key and score > other_score)


@compiled(inline="always")
def insert_ranked(out, filled, cap, j, key, score):
    """Insert ``j`` into ``out[:filled]``, kept sorted by (``key`` desc, ``score`` desc, earlier
    insertion first) and at most ``cap`` long (``j`` is dropped when it ranks after the last of a
    full list); returns the new length."""
    if filled == cap and not ranks_before(key[j], score[j], key[out[cap - 1]], score[out[cap - 1]]):
        return filled
    at = filled if filled < cap else cap - 1
    while at > 0 and ranks_before(key[j], score[j], key[out[at - 1]], score[out[at - 1]]):
        out[at] = out[at - 1]
        at -= 1
    out[at] = j
    return filled + 1 if filled < cap else filled


@compiled()
def top_k_positions(s, n, kk, out):
    """The ``kk`` best local positions by (score desc, position asc), in that order."""
    filled = 0
    for j in range(n):
        filled = insert_ranked(out, filled, kk, j, s, s)


@compiled()
def list_objective(chosen, length, s, items, cats, p, lam, alpha, divergence, rank_w, mass, start_mass, start_w):
    """``(1-λ) Σ_{l∈L} s_l - λ Σ_a w_a C(p_a, q_a(L))`` for the list ``chosen[:length]`` in that
    order (``cats`` a :class:`~rerank.engine.layout.CategoryCSR` whose ``weight`` holds ``w_{a(g)}``
    per category; ``mass`` a work buffer of length G). A shown prefix (docs/design.md §9.3) adds
    ``start_mass`` to the list's mass and ``start_w`` to its weight (zeros without one); the
    score term counts the new items only."""
    for g in range(mass.shape[0]):  # a loop: a slice copy compiles numba's shape-mismatch message
        mass[g] = start_mass[g]
    total_w = start_w
    score_sum = 0.0
    for r in range(length):
        j = chosen[r]
        score_sum += s[j]
        w = rank_w[r]
        total_w += w
        item = items[j]
        for e in range(cats.indptr[item], cats.indptr[item + 1]):
            mass[cats.indices[e]] += w * cats.data[e]
    if lam == 0.0:
        return score_sum
    total = 0.0
    for g in range(p.shape[0]):
        total += divergence_term(p[g], mass[g] / total_w, alpha, divergence) * cats.weight[g]
    # λ = 1: no score term (0·Σs would be NaN when Σs of extreme finite scores overflows).
    score_term = (1.0 - lam) * score_sum if lam != 1.0 else 0.0
    return score_term - lam * divergence_finish(total, divergence)


@compiled()
def sort_by_score(chosen, kk, s):
    """Insertion sort of ``chosen[:kk]`` by (raw score desc, position asc)."""
    for a in range(1, kk):
        j = chosen[a]
        b = a
        while b > 0 and (s[chosen[b - 1]] < s[j] or (s[chosen[b - 1]] == s[j] and chosen[b - 1] > j)):
            chosen[b] = chosen[b - 1]
            b -= 1
        chosen[b] = j
