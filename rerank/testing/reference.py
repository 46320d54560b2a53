"""The pure-Python reference: slow, obviously correct, no numpy in the logic.

``rerank.testing.reference`` is the one reference of the project's tests and of
:func:`rerank.testing.check_reranker`, shipped so that users can compare their own reranker
with it. Everything is written straight from the definitions of docs/design.md §3-§4, never
from the package's code (it imports nothing of ours but its own second half,
:mod:`rerank.testing.reference_metrics`, and no third-party library):

* the calibrated greedy, its safeguard and brute force — the full objective of a list is
  recomputed from scratch for every candidate at every step, with plain loops and dicts;
* quota mode and PM-2, by brute-force enumeration;
* the adapters' top-n, one user and one item at a time;
* targets ``p(g|u)`` from history and item-category rows (Steck eq. 1, cold users on the
  population mean), and the metrics: list distribution, divergences, minority attainment,
  intra-list diversity.

A *list* is a list of local positions ``j`` into one user's candidates (``scores[j]``,
``item_cats[j]`` a dict ``{category: p(g|i)}``); ``p`` a list of target shares.

(``rerank/reference.py`` is a different thing on purpose: the slow greedies shipped for
``rerank bench``; see docs/design.md §8.)
"""

from __future__ import annotations

import math
from fractions import Fraction
from itertools import combinations

from rerank.testing.reference_metrics import (  # noqa: F401  (re-exported: one reference to import)
    intra_list_diversity,
    item_shares,
    minority_attainment_missing,
    user_targets,
)

TIE_RTOL = 1e-12  # same tie tolerance the library documents


def kl(p, q, alpha):
    total = 0.0
    for pg, qg in zip(p, q, strict=True):
        if pg > 0:
            smoothed = (1 - alpha) * qg + alpha * pg
            # smoothed ≥ αp > 0 exactly; it is 0 in floats only when αp underflows (p subnormal,
            # q = 0), and then the exact term is p log(p / (αp)) = p log(1/α)
            total += pg * math.log(pg / smoothed) if smoothed > 0 else pg * math.log(1 / alpha)
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
    """(1-λ) Σ s - λ C(p, q(L)); at λ = 1 there is no score term (0·Σs would be NaN when the
    sum of extreme finite scores overflows)."""
    q = list_distribution(chosen, item_cats, len(p), weights)
    score_term = (1 - lam) * sum(scores[j] for j in chosen) if lam != 1 else 0.0
    return score_term - lam * DIVERGENCES[divergence](p, q, alpha)


def normalized(scores, mode):
    n = len(scores)
    if mode is None or n == 0:
        return list(scores)
    if mode == "minmax":  # (s - min) / (max - min), exactly, rounded once (no overflow)
        lo, hi = Fraction(min(scores)), Fraction(max(scores))
        return [float((Fraction(s) - lo) / (hi - lo)) if hi > lo else 0.0 for s in scores]
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
    """Steck's greedy (docs/design.md §3) with the safeguard of §4.2; returns local positions.

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


# ----------------------------------------------------------------------------- quotas, PM-2
# Quotas r_g = floor(ρ k p_g) on categories with p_g ≥ threshold; membership A[i, g] > 0;
# met(L) = Σ_g min(r_g, c_g(L)) (docs/design.md §4.3).
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
    (:func:`refine_swaps`), at every λ. At λ = 0 the greedy ranks by the input scores, as
    top-k does (normalising may merge near-ties)."""
    s = normalized(scores, normalize)
    g = [float(x) for x in scores] if lam == 0 else s  # the scores the greedy ranks by
    n = len(s)
    kk = min(k, n)
    weights = rank_weight_list(rank_weights, k)
    target = best_met(n, k, item_cats, r)
    chosen: list[int] = []
    for _ in range(kk):
        best = None
        base = (1 - lam) * sum(g[j] for j in chosen)
        for j in range(n):
            if j in chosen or not can_complete(chosen + [j], n, k, item_cats, r, target):
                continue
            obj = objective(chosen + [j], g, item_cats, p, lam, alpha, divergence, weights) - base
            cand = (obj, g[j], j)
            if best is None or _better(cand, best):
                best = cand
        chosen.append(best[2])
    if (safeguard or refine) and lam != 0 and kk:
        top = top_k(scores, kk)  # top-k always means by the input scores (as the kernel)
        g_obj = objective(chosen, s, item_cats, p, lam, alpha, divergence, weights)
        t_obj = objective(top, s, item_cats, p, lam, alpha, divergence, weights)
        if t_obj > g_obj + TIE_RTOL * (1 + max(abs(g_obj), abs(t_obj))) and met(top, item_cats, r) >= target:
            chosen = top
    if refine:
        chosen = refine_swaps(
            chosen, s, item_cats, p, lam, alpha, divergence, weights, max_swaps,
            admissible=lambda new: met(new, item_cats, r) >= target,
        )[0]
    return chosen, target


def pm2(scores, item_cats, p, k, lam, theta=0.5, rank_weights="uniform", normalize=None):
    """PM-2 (Dang & Croft 2012) with a relevance term, straight from its definition."""
    s = normalized(scores, normalize)
    n = len(s)
    weights = rank_weight_list(rank_weights, k)
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
            if best is None or _better(cand, best):
                best = cand
        chosen.append(best[2])
        for g, a in item_cats[best[2]].items():
            seats[g] += weights[t] * a
    return chosen


# ----------------------------------------------------------------------------- adapters' top-n

def top_n(score_of, users, n_items, n, seen=None, items=None):
    """Per user, the n best (item, score) pairs by score, ties by lower item index.

    ``score_of(u, i)`` returns a score or ``None`` (not a candidate); ``seen[u]`` is a set of
    items to skip; ``items`` restricts the catalogue.
    """
    out = {}
    catalogue = range(n_items) if items is None else sorted(set(items))
    for u in users:
        pairs = []
        for i in catalogue:
            if seen is not None and i in seen[u]:
                continue
            s = score_of(u, i)
            if s is not None:
                pairs.append((-float(s), i))
        pairs.sort()
        out[u] = [(i, -s) for s, i in pairs[:n]]
    return out


def seen_sets(matrix):
    """Row -> set of stored column indices of a scipy sparse matrix."""
    coo = matrix.tocoo()
    out = {u: set() for u in range(matrix.shape[0])}
    for r, c in zip(coo.row.tolist(), coo.col.tolist(), strict=True):
        out[r].add(c)
    return out


def frame_lists(frame, user_order=None):
    """Candidate frame -> {user: [(item, score), ...]} in frame order."""
    out = {}
    for u, i, s in zip(frame["user_id"], frame["item_id"], frame["score"], strict=True):
        out.setdefault(u, []).append((i, float(s)))
    if user_order is not None:
        for u in user_order:
            out.setdefault(u, [])
    return out


# ----------------------------------------------------------------------------- comparing objectives
def score_sum(chosen, scores):
    """``Σ_{j∈L} s_j`` exactly (a Fraction: no overflow, no cancellation)."""
    return sum((Fraction(scores[j]) for j in chosen), Fraction(0))


def not_below(chosen, other, scores, item_cats, p, lam, alpha=0.01, divergence="kl", weights=None, rtol=1e-9):
    """``F(chosen) ≥ F(other)`` up to rounding, ``F(L) = (1-λ) Σ_{j∈L} s_j - λ C(p, q(L))``.

    The score sums are exact, the divergences floats; the two may differ by at most
    ``rtol · (1 + (1-λ) Σ |s_j| over both lists + λ (C(L) + C(other)))``, a tolerance on the
    magnitude of the terms (an implementation summing extreme scores in floats rounds at that
    scale). Returns ``(holds, F(chosen), F(other))``, the last two as floats (maybe ±inf)."""
    weights = weights or [1.0] * max(len(chosen), len(other))
    c_a = DIVERGENCES[divergence](p, list_distribution(chosen, item_cats, len(p), weights), alpha)
    c_b = DIVERGENCES[divergence](p, list_distribution(other, item_cats, len(p), weights), alpha)
    lam_ = Fraction(lam)
    s_a, s_b = score_sum(chosen, scores), score_sum(other, scores)
    diff = (1 - lam_) * (s_a - s_b) - lam_ * (Fraction(c_a) - Fraction(c_b))
    magnitude = sum(abs(Fraction(scores[j])) for j in [*chosen, *other])
    scale = 1 + (1 - lam_) * magnitude + lam_ * Fraction(c_a + c_b)
    return diff >= -Fraction(rtol) * scale, _as_float((1 - lam_) * s_a - lam_ * Fraction(c_a)), \
        _as_float((1 - lam_) * s_b - lam_ * Fraction(c_b))


def _as_float(x: Fraction) -> float:
    try:
        return float(x)
    except OverflowError:
        return math.inf if x > 0 else -math.inf
