"""The pure-Python reference for the issue-14 features (docs/design.md §9): several attributes
in one objective, a shown prefix, explanations, λ from a budget, and popularity groups.

Written from the docs, never from the package's code; like :mod:`rerank.testing.reference`
(which it extends and imports from) it is slow and obviously correct, for hypothesis
properties and for users testing their own reranker.
"""

from __future__ import annotations

from rerank.testing.reference import DIVERGENCES, TIE_RTOL, _better, normalized, rank_weight_list

# ----------------------------------------------------------------------------- popularity groups

def popularity_labels(item_rows, head=0.2, tail=0.2):
    """Abdollahpouri's head / mid / tail from a list of interacted item ids (one per row).

    Lay the interactions end to end, most popular item first; an item covers the stretch
    after every item with a strictly larger count. Head: it reaches into the first head·T;
    tail: it reaches into the last tail·T (counted from the other end the same way); head wins.
    """
    counts = {}
    for item in item_rows:
        counts[item] = counts.get(item, 0) + 1
    total = sum(counts.values())
    out = {}
    for item, c in counts.items():
        before = sum(other for other in counts.values() if other > c)
        after = sum(other for other in counts.values() if other < c)
        if before < head * total:
            out[item] = "head"
        elif after < tail * total:
            out[item] = "tail"
        else:
            out[item] = "mid"
    return out


# ----------------------------------------------------------------------------- beyond Steck (issue 14)
# Several attributes, a shown prefix, explanations: written from docs/design.md §3 / §9 only.

def attribute_divergence(p, q, alpha, divergence, cat_attr=None, attr_w=None):
    """Σ_a w_a C(p_a, q_a): each attribute's categories taken on their own (one attribute:
    the plain divergence)."""
    if cat_attr is None:
        return DIVERGENCES[divergence](p, q, alpha)
    total = 0.0
    for a, w in enumerate(attr_w):
        cols = [g for g in range(len(p)) if cat_attr[g] == a]
        total += w * DIVERGENCES[divergence]([p[g] for g in cols], [q[g] for g in cols], alpha)
    return total


def general_objective(chosen, scores, item_cats, p, lam, alpha, divergence, weights,
                      cat_attr=None, attr_w=None, shown_cats=()):
    """(1-λ) Σ_{chosen} s - λ Σ_a w_a C(p_a, q_a(shown + chosen)): the shown items fill the
    first positions of q with their rank weights; only the chosen items' scores count."""
    cats = list(shown_cats) + [item_cats[j] for j in chosen]
    q = [0.0] * len(p)
    total = sum(weights[: len(cats)])
    for r, c in enumerate(cats):
        for g, a in c.items():
            q[g] += weights[r] * a
    q = [x / total for x in q] if total > 0 else q
    return (1 - lam) * sum(scores[j] for j in chosen) - lam * attribute_divergence(
        p, q, alpha, divergence, cat_attr, attr_w
    )


def general_greedy(scores, item_cats, p, k, lam, alpha=0.01, divergence="kl", rank_weights="uniform",
                   normalize=None, safeguard=True, cat_attr=None, attr_w=None, shown_cats=(), excluded=()):
    """The greedy of :func:`greedy` with several attributes and a shown prefix: candidates in
    ``excluded`` (already shown) cannot be picked; ``shown_cats`` (their categories, in shown
    order) occupy the first positions of q. Returns the chosen local positions."""
    s = normalized(scores, normalize)
    n = len(s)
    allowed = [j for j in range(n) if j not in set(excluded)]
    kk = min(k, len(allowed))
    m = len(shown_cats)
    weights = rank_weight_list(rank_weights, m + k)
    extra = dict(cat_attr=cat_attr, attr_w=attr_w, shown_cats=shown_cats)

    def top():
        return sorted(allowed, key=lambda j: (-scores[j], j))[:kk]

    chosen = top() if lam == 0 else []
    for _ in range(kk - len(chosen)):
        best = None
        base = (1 - lam) * sum(s[j] for j in chosen)
        for j in allowed:
            if j in chosen:
                continue
            obj = general_objective(chosen + [j], s, item_cats, p, lam, alpha, divergence, weights, **extra) - base
            cand = (obj, s[j], j)
            if best is None or _better(cand, best):
                best = cand
        chosen.append(best[2])
    if safeguard and lam != 0 and kk:
        t = top()
        g_obj = general_objective(chosen, s, item_cats, p, lam, alpha, divergence, weights, **extra)
        t_obj = general_objective(t, s, item_cats, p, lam, alpha, divergence, weights, **extra)
        if t_obj > g_obj + TIE_RTOL * (1 + max(abs(g_obj), abs(t_obj))):
            chosen = t
    return chosen


def explain_reference(scores, item_cats, p, lam, chosen, used_topk, alpha=0.01, divergence="kl",
                      rank_weights="uniform", normalize=None, cat_attr=None, attr_w=None, shown_cats=(), excluded=()):
    """Why each item of ``chosen`` (pick order) is there, from docs/design.md §9.4 only:
    [(input_rank, score_gain, calibration_gain, reason)] recomputed from the candidates."""
    s = normalized(scores, normalize)
    allowed = [j for j in range(len(scores)) if j not in set(excluded)]
    kk = len(chosen)
    m = len(shown_cats)
    weights = rank_weight_list(rank_weights, m + kk)

    def c_of(prefix_items):
        cats = list(shown_cats) + [item_cats[j] for j in prefix_items]
        if not cats:
            return 0.0
        total = sum(weights[: len(cats)])
        q = [0.0] * len(p)
        for r, c in enumerate(cats):
            for g, a in c.items():
                q[g] += weights[r] * a
        return attribute_divergence(p, [x / total for x in q], alpha, divergence, cat_attr, attr_w)

    out = []
    for r, j in enumerate(chosen):
        rank = 1 + sum(1 for i in allowed if (-scores[i], i) < (-scores[j], j))
        score_gain = 0.0 if lam == 1 else (1 - lam) * s[j]
        calibration_gain = 0.0 if lam == 0 else -lam * (c_of(chosen[: r + 1]) - c_of(chosen[:r]))
        reason = "safeguard" if used_topk else ("score" if rank <= kk else "calibration")
        out.append((rank, score_gain, calibration_gain, reason))
    return out


# λ from a budget (docs/design.md §9.5): the documented grid, smallest first
AUTO_LAMBDAS = (0.0, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.85, 0.9, 0.95, 0.98, 0.99, 1.0)


def list_divergence(chosen, item_cats, p, alpha, divergence, rank_weights, cat_attr=None, attr_w=None, shown_cats=()):
    """C(P ∪ L) of a list as returned (after its shown prefix)."""
    cats = list(shown_cats) + [item_cats[j] for j in chosen]
    if not cats:
        return 0.0
    weights = rank_weight_list(rank_weights, len(cats))
    total = sum(weights)
    q = [0.0] * len(p)
    for r, c in enumerate(cats):
        for g, a in c.items():
            q[g] += weights[r] * a
    return attribute_divergence(p, [x / total for x in q], alpha, divergence, cat_attr, attr_w)


def auto_lambda(scores, item_cats, p, k, budget, alpha=0.01, divergence="kl", rank_weights="uniform",
                cat_attr=None, attr_w=None, shown_cats=(), **options):
    """The smallest grid λ whose reference-greedy list has C ≤ budget, else 1: (λ, list, C, all C)."""
    seen = []
    for lam in AUTO_LAMBDAS:
        chosen = general_greedy(scores, item_cats, p, k, lam, alpha=alpha, divergence=divergence,
                                rank_weights=rank_weights, cat_attr=cat_attr, attr_w=attr_w, shown_cats=shown_cats,
                                **options)
        c = list_divergence(chosen, item_cats, p, alpha, divergence, rank_weights, cat_attr, attr_w, shown_cats)
        seen.append(c)
        if c <= budget or lam == 1.0:
            return lam, chosen, c, seen
