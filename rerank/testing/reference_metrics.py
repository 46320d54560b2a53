"""The reference's targets and list metrics: slow, obviously correct pure Python.

Part of :mod:`rerank.testing.reference` (which re-exports every name here): targets
``p(g|u)`` from history and item-category rows (Steck eq. 1, cold users on the population
mean), and the metrics of one list (intra-list diversity, minority attainment and missing
minority categories). Written from the definitions (docs/design.md §3, docs/evaluation.md),
never from the package's code; it imports nothing.
"""

from __future__ import annotations

import math


# ----------------------------------------------------------------------------- targets from rows
def item_shares(category_rows):
    """``p(g|i)`` from ``(item, category, weight)`` rows: the weights of repeated pairs add up and
    each item's weights are divided by their sum; an item whose weights sum to 0 carries no
    category. Returns ``({item: {category: share}}, categories in first-appearance order)``."""
    weights: dict = {}
    categories: list = []
    for item, category, w in category_rows:
        if category not in categories:
            categories.append(category)
        row = weights.setdefault(item, {})
        row[category] = row.get(category, 0.0) + w
    shares = {}
    for item, row in weights.items():
        total = sum(row.values())
        if total > 0:
            shares[item] = {g: w / total for g, w in row.items() if w > 0}
    return shares, categories


def user_targets(history_rows, shares, categories):
    """Steck eq. 1: ``p(g|u) = Σ_{(u,i,w)} w p(g|i) / Σ_{(u,i,w)} Σ_g w p(g|i)`` from
    ``(user, item, weight)`` rows (items without a category carry no mass), for every user with
    category mass; and the population target ``p̄`` (the mean of those users' targets,
    renormalised; uniform over the categories when no user has mass) that every other user
    (*cold*) gets. Returns ``({user: [p_g in categories order]}, p̄)``."""
    index = {g: n for n, g in enumerate(categories)}
    mass: dict = {}
    for user, item, w in history_rows:
        row = mass.setdefault(user, [0.0] * len(categories))
        for g, a in shares.get(item, {}).items():
            row[index[g]] += w * a
    targets = {}
    for user, row in mass.items():
        total = sum(row)
        if total > 0:
            targets[user] = [x / total for x in row]
    if targets:
        mean = [sum(t[g] for t in targets.values()) / len(targets) for g in range(len(categories))]
        population = [x / sum(mean) for x in mean]
    else:
        population = [1.0 / len(categories)] * len(categories) if categories else []
    return targets, population



# ----------------------------------------------------------------------------- metrics
def intra_list_diversity(items, item_cats):
    """Mean over ordered pairs of distinct positions of ``1 - cos(v_a, v_b)``, ``v`` an item's
    category vector (``item_cats[item]`` a dict; an item without categories is the zero vector,
    at cosine 0 from everything)."""
    vecs = []
    for i in items:
        v = item_cats.get(i, {})
        norm = math.sqrt(sum(x * x for x in v.values()))
        vecs.append({g: x / norm for g, x in v.items()} if norm else {})
    n = len(vecs)
    total = 0.0
    for a in range(n):
        for b in range(n):
            if a != b:
                total += 1 - sum(vecs[a].get(g, 0) * vecs[b].get(g, 0) for g in vecs[a])
    return total / (n * (n - 1))


def minority_attainment_missing(items, memberships, target, categories, weights):
    """``(attainment, missing)`` of one list: ``q`` from the list (each item's categories share its
    mass equally, rank weights ``weights``), ``M_u`` the categories with ``p_g > 0`` other than the
    first largest (in ``categories`` order); attainment ``Σ_{g∈M} min(q_g, p_g) / Σ_{g∈M} p_g``,
    missing the share of ``M`` with ``q_g = 0``; both NaN when ``M`` is empty."""
    q = dict.fromkeys(categories, 0.0)
    for r, item in enumerate(items):
        for g in memberships[item]:
            q[g] += weights[r] / len(memberships[item])
    total = sum(weights[: len(items)])
    q = {g: v / total for g, v in q.items()}
    top = None
    for g in categories:
        if target[g] > 0 and (top is None or target[g] > target[top]):
            top = g
    minority = [g for g in categories if target[g] > 0 and g != top]
    if not minority:
        return math.nan, math.nan
    attained = sum(min(q[g], target[g]) for g in minority) / sum(target[g] for g in minority)
    missing = sum(1 for g in minority if q[g] == 0) / len(minority)
    return attained, missing
