"""Pure-Python references for quota mode (DESIGN §4.3) and PM-2, by brute-force enumeration.

Written from the definitions only: quotas ``r_g = floor(ρ k p_g)`` on categories with
``p_g ≥ threshold``; membership ``A[i, g] > 0``; ``met(L) = Σ_g min(r_g, c_g(L))``.
"""

from __future__ import annotations

import math
from itertools import combinations

import reference as ref


def quotas(p, k, rho=1.0, threshold=0.0):
    return [math.floor(rho * k * pg + 1e-9) if (pg > 0 and pg >= threshold) else 0 for pg in p]


def met(chosen, item_cats, r):
    counts = [0] * len(r)
    for j in chosen:
        for g, a in item_cats[j].items():
            if a > 0:
                counts[g] += 1
    return sum(min(rg, c) for rg, c in zip(r, counts, strict=True))


def best_met(n, k, item_cats, r):
    """max over all min(k, n)-subsets of met(L)."""
    return max(met(list(sub), item_cats, r) for sub in combinations(range(n), min(k, n)))


def can_complete(chosen, n, k, item_cats, r, target):
    """Is there a completion of ``chosen`` to min(k, n) items meeting ``target`` units?"""
    rest = [j for j in range(n) if j not in chosen]
    size = min(k, n) - len(chosen)
    return any(met(chosen + list(extra), item_cats, r) >= target for extra in combinations(rest, size))


def quota_greedy(scores, item_cats, p, k, lam, r, alpha=0.01, divergence="kl", rank_weights="uniform",
                 normalize=None, safeguard=True, refine=None, max_swaps=None):
    """Steck's greedy restricted, at each step, to candidates after which the best reachable
    quota units can still be met; safeguard: top-k only if it meets them too. ``refine="swap"``:
    start from the better of the two, then swaps that keep the best reachable units
    (:func:`reference.refine_swaps`), at every λ."""
    s = ref.normalized(scores, normalize)
    n = len(s)
    kk = min(k, n)
    weights = ref.rank_weight_list(rank_weights, k)
    target = best_met(n, k, item_cats, r)
    chosen: list[int] = []
    for _ in range(kk):
        best = None
        base = (1 - lam) * sum(s[j] for j in chosen)
        for j in range(n):
            if j in chosen or not can_complete(chosen + [j], n, k, item_cats, r, target):
                continue
            obj = ref.objective(chosen + [j], s, item_cats, p, lam, alpha, divergence, weights) - base
            cand = (obj, s[j], j)
            if best is None or ref._better(cand, best):
                best = cand
        chosen.append(best[2])
    if (safeguard or refine) and lam != 0 and kk:
        top = ref.top_k(scores, kk)  # top-k always means by the input scores (as the kernel)
        g_obj = ref.objective(chosen, s, item_cats, p, lam, alpha, divergence, weights)
        t_obj = ref.objective(top, s, item_cats, p, lam, alpha, divergence, weights)
        if t_obj > g_obj + ref.TIE_RTOL * (1 + max(abs(g_obj), abs(t_obj))) and met(top, item_cats, r) >= target:
            chosen = top
    if refine:
        chosen = ref.refine_swaps(
            chosen, s, item_cats, p, lam, alpha, divergence, weights, max_swaps,
            admissible=lambda new: met(new, item_cats, r) >= target,
        )[0]
    return chosen, target


def pm2(scores, item_cats, p, k, lam, theta=0.5, rank_weights="uniform", normalize=None):
    """PM-2 (Dang & Croft 2012) with a relevance term, straight from its definition."""
    s = ref.normalized(scores, normalize)
    n = len(s)
    weights = ref.rank_weight_list(rank_weights, k)
    seats = [0.0] * len(p)
    chosen: list[int] = []
    for t in range(min(k, n)):
        quotient = [pg / (2 * sg + 1) for pg, sg in zip(p, seats, strict=True)]
        positive = [g for g in range(len(p)) if p[g] > 0]
        top = max(positive, key=lambda g: (quotient[g], -g)) if positive else -1
        best = None
        for j in range(n):
            if j in chosen:
                continue
            share = sum((theta if g == top else 1 - theta) * quotient[g] * a for g, a in item_cats[j].items())
            obj = (1 - lam) * s[j] + lam * share if lam != 0 else s[j]
            cand = (obj, s[j], j)
            if best is None or ref._better(cand, best):
                best = cand
        chosen.append(best[2])
        for g, a in item_cats[best[2]].items():
            seats[g] += weights[t] * a
    return chosen
