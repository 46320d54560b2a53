"""Slow, obviously-correct pure-Python references for the tests (no numpy in the logic).

Everything is written straight from DESIGN §3: the full objective of a list is recomputed from
scratch for every candidate at every step, with plain loops and dicts.
"""

from __future__ import annotations

import math
from itertools import combinations

TIE_RTOL = 1e-12  # same tie tolerance the library documents


def kl(p, q, alpha):
    total = 0.0
    for pg, qg in zip(p, q, strict=True):
        if pg > 0:
            total += pg * math.log(pg / ((1 - alpha) * qg + alpha * pg))
    return total


def hellinger(p, q, alpha):
    return math.sqrt(sum((math.sqrt(pg) - math.sqrt(qg)) ** 2 for pg, qg in zip(p, q, strict=True))) / math.sqrt(2)


def chi2(p, q, alpha):
    total = 0.0
    for pg, qg in zip(p, q, strict=True):
        qs = (1 - alpha) * qg + alpha * pg
        if qs > 0:
            total += (pg - qs) ** 2 / qs
    return total


DIVERGENCES = {"kl": kl, "hellinger": hellinger, "chi2": chi2}


def rank_weight_list(spec, k):
    if spec == "uniform":
        return [1.0] * k
    if spec == "dcg":
        return [1.0 / math.log2(r + 1) for r in range(1, k + 1)]
    return [float(x) for x in spec][:k]


def list_distribution(chosen, item_cats, n_cat, weights):
    """q(g|L) = Σ_r w_r p(g|L_r) / Σ_r w_r, with item_cats[j] a dict {category: p(g|i)}."""
    q = [0.0] * n_cat
    total = sum(weights[: len(chosen)])
    for r, j in enumerate(chosen):
        for g, a in item_cats[j].items():
            q[g] += weights[r] * a
    return [x / total for x in q]


def objective(chosen, scores, item_cats, p, lam, alpha, divergence, weights):
    """(1-λ) Σ s - λ C(p, q(L))."""
    q = list_distribution(chosen, item_cats, len(p), weights)
    return (1 - lam) * sum(scores[j] for j in chosen) - lam * DIVERGENCES[divergence](p, q, alpha)


def normalized(scores, mode):
    n = len(scores)
    if mode is None or n == 0:
        return list(scores)
    if mode == "minmax":
        lo, hi = min(scores), max(scores)
        return [(s - lo) / (hi - lo) if hi > lo else 0.0 for s in scores]
    if mode == "rank":
        order = sorted(range(n), key=lambda j: (-scores[j], j))
        out = [0.0] * n
        for r, j in enumerate(order):
            out[j] = (n - 1 - r) / (n - 1) if n > 1 else 1.0
        return out
    raise ValueError(mode)


def top_k(scores, k):
    return sorted(range(len(scores)), key=lambda j: (-scores[j], j))[:k]


def _better(a, b):
    """a, b = (objective_of_full_list, score, position)."""
    tol = TIE_RTOL * (1 + max(abs(a[0]), abs(b[0])))
    if a[0] > b[0] + tol:
        return True
    if a[0] < b[0] - tol:
        return False
    if a[1] != b[1]:
        return a[1] > b[1]
    return a[2] < b[2]


def improves(new, current):
    """``new`` beats ``current`` by more than the library's tie tolerance."""
    return new > current + TIE_RTOL * (1 + max(abs(new), abs(current)))


def refine_swaps(chosen, s, item_cats, p, lam, alpha, divergence, weights, max_swaps=None, admissible=None):
    """Improving single swaps (issue 13), every objective recomputed from scratch.

    A swap puts a candidate c outside the list at position r. Positions are visited in list
    order, cyclically, starting after the last swap's position (at 0 first); at the first
    position that has swaps improving the list's objective by more than the tie tolerance, the
    best of them by (objective within the tolerance, higher score of c, earlier c) is made.
    This repeats until a whole round of positions has no improving swap, or ``max_swaps`` swaps
    were made. ``admissible(list)`` filters swaps (quota mode). Returns
    ``(list, swaps, cap_hit)``; ``cap_hit``: the cap stopped an improving swap.
    """
    chosen = list(chosen)
    swaps = 0
    first = 0
    while chosen:
        current = objective(chosen, s, item_cats, p, lam, alpha, divergence, weights)
        best = None
        for step in range(len(chosen)):
            r = (first + step) % len(chosen)
            for c in range(len(s)):
                if c in chosen:
                    continue
                new = chosen[:r] + [c] + chosen[r + 1 :]
                if admissible is not None and not admissible(new):
                    continue
                obj = objective(new, s, item_cats, p, lam, alpha, divergence, weights)
                if improves(obj, current) and (best is None or _better((obj, s[c], c), best[0])):
                    best = ((obj, s[c], c), r)
            if best is not None:
                break
        if best is None:
            return chosen, swaps, False
        if max_swaps is not None and swaps == max_swaps:
            return chosen, swaps, True
        chosen[best[1]] = best[0][2]
        swaps += 1
        first = (best[1] + 1) % len(chosen)
    return chosen, 0, False  # an empty list


def greedy(scores, item_cats, p, k, lam, alpha=0.01, divergence="kl", rank_weights="uniform",
           normalize=None, safeguard=True, order="greedy", refine=None, max_swaps=None):
    """Steck's greedy (DESIGN §3) with the safeguard of §4.2; returns local positions.

    ``refine="swap"``: start from the better of the greedy and top-k (whatever ``safeguard``),
    then :func:`refine_swaps` (not for λ = 0, where top-k is already optimal).

    The comparison at a step uses the objective of the whole extended list (the constant
    (1-λ)Σ_{L} s is subtracted so the tie tolerance is applied to the same quantity as the
    library, which compares ``(1-λ)s_j - λC``).
    """
    s = normalized(scores, normalize)
    n = len(s)
    kk = min(k, n)
    weights = rank_weight_list(rank_weights, k)
    chosen = top_k(scores, kk) if lam == 0 else []  # top-k always means by the input scores
    for _ in range(kk - len(chosen)):
        best = None
        base = (1 - lam) * sum(s[j] for j in chosen)
        for j in range(n):
            if j in chosen:
                continue
            obj = objective(chosen + [j], s, item_cats, p, lam, alpha, divergence, weights) - base
            cand = (obj, s[j], j)
            if best is None or _better(cand, best):
                best = cand
        chosen.append(best[2])
    if (safeguard or refine) and lam != 0 and kk:
        top = top_k(scores, kk)
        g_obj = objective(chosen, s, item_cats, p, lam, alpha, divergence, weights)
        t_obj = objective(top, s, item_cats, p, lam, alpha, divergence, weights)
        if t_obj > g_obj + TIE_RTOL * (1 + max(abs(g_obj), abs(t_obj))):
            chosen = top
    if refine and lam != 0:
        chosen = refine_swaps(chosen, s, item_cats, p, lam, alpha, divergence, weights, max_swaps)[0]
    if order == "score":
        chosen = sorted(chosen, key=lambda j: (-scores[j], j))
    return chosen


def brute_force_best(scores, item_cats, p, k, lam, alpha=0.01, divergence="kl"):
    """Best objective over all k-subsets (uniform rank weights: order does not matter)."""
    n = len(scores)
    weights = [1.0] * k
    best = -math.inf
    for subset in combinations(range(n), min(k, n)):
        best = max(best, objective(list(subset), scores, item_cats, p, lam, alpha, divergence, weights))
    return best
