"""Hypothesis strategies for random reranking instances (several users, CSR layout)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp
from hypothesis import strategies as st


@dataclass
class Instance:
    n_items: int
    n_cat: int
    item_cats: list[dict[int, float]]  # p(g|i) per item (rows sum to 1 or are empty)
    users: list[list[int]]  # candidate items per user (distinct)
    scores: list[list[float]]
    targets: list[list[float]]
    lam: list[float]

    @property
    def matrix(self) -> sp.csr_matrix:
        rows, cols, vals = [], [], []
        for i, cats in enumerate(self.item_cats):
            for g, a in cats.items():
                rows.append(i)
                cols.append(g)
                vals.append(a)
        return sp.csr_matrix((vals, (rows, cols)), shape=(self.n_items, self.n_cat))

    def csr(self):
        indptr = np.concatenate([[0], np.cumsum([len(u) for u in self.users])]).astype(np.int64)
        items = np.array([i for u in self.users for i in u], dtype=np.int64)
        scores = np.array([s for u in self.scores for s in u], dtype=np.float64)
        return indptr, items, scores

    def local_cats(self, u: int) -> list[dict[int, float]]:
        return [self.item_cats[i] for i in self.users[u]]


TIE_SCORES = st.sampled_from([0.0, 0.25, 0.5, 1.0])
# Scores that differ in the input but merge after min-max normalisation (e.g. 0 and -2.34e-84
# between -1 and 1): "top-k" must follow the input scores, not the normalised ones.
NEAR_TIE_SCORES = st.sampled_from([-1.0, 0.0, -2.34e-84, 1e-300, 1.0])
FREE_SCORES = st.floats(-3, 3, allow_nan=False, allow_infinity=False, width=64)


@st.composite
def item_categories(draw, n_items, n_cat, max_cats=3):
    out = []
    for _ in range(n_items):
        cats = draw(st.lists(st.integers(0, n_cat - 1), min_size=0, max_size=max_cats, unique=True))
        if draw(st.booleans()):
            weights = [draw(st.floats(0.1, 5.0)) for _ in cats]
        else:
            weights = [1.0] * len(cats)
        total = sum(weights)
        out.append({g: w / total for g, w in zip(cats, weights, strict=True)})
    return out


@st.composite
def target(draw, n_cat):
    raw = [draw(st.sampled_from([0.0, 0.0, 0.1, 0.3, 1.0, 2.0])) for _ in range(n_cat)]
    if sum(raw) == 0:
        raw[draw(st.integers(0, n_cat - 1))] = 1.0
    total = sum(raw)
    return [x / total for x in raw]


@st.composite
def instances(draw, max_users=4, max_n=8, max_cat=4, ties=None, lam=None):
    n_cat = draw(st.integers(1, max_cat))
    n_items = draw(st.integers(1, 12))
    cats = draw(item_categories(n_items, n_cat))
    n_users = draw(st.integers(1, max_users))
    use_ties = draw(st.booleans()) if ties is None else ties
    if use_ties:
        score_strategy = draw(st.sampled_from([TIE_SCORES, NEAR_TIE_SCORES]))
    else:
        score_strategy = FREE_SCORES
    users, scores, targets, lams = [], [], [], []
    for _ in range(n_users):
        n = draw(st.integers(0, min(max_n, n_items)))
        users.append(draw(st.permutations(range(n_items)))[:n])
        scores.append([draw(score_strategy) for _ in range(n)])
        targets.append(draw(target(n_cat)))
        lams.append(draw(st.sampled_from([0.0, 0.2, 0.5, 0.9, 0.99, 1.0]) | st.floats(0, 1)) if lam is None else lam)
    return Instance(n_items, n_cat, cats, users, scores, targets, lams)


@dataclass
class AttributeInstance(Instance):
    """An instance with several attributes: ``cat_attr[g]`` the attribute of category g,
    ``attr_w`` the (normalised) attribute weights; every item row and target is normalised
    within each attribute."""

    cat_attr: list[int] = None
    attr_w: list[float] = None


def _within(values: dict[int, float] | list[float], cat_attr, n_attr):
    """Normalise a row (dict or list over categories) within each attribute."""
    as_dict = dict(values) if isinstance(values, dict) else dict(enumerate(values))
    sums = [0.0] * n_attr
    for g, v in as_dict.items():
        sums[cat_attr[g]] += v
    out = {g: v / sums[cat_attr[g]] for g, v in as_dict.items() if sums[cat_attr[g]] > 0}
    return out if isinstance(values, dict) else [out.get(g, 0.0) for g in range(len(values))]


@st.composite
def attribute_instances(draw, max_users=3, max_n=7, n_attr=2, lam=None):
    """Several attributes (2 by default), each with 1-3 categories; items with any categories
    of each attribute (possibly none in one), targets per attribute."""
    sizes = [draw(st.integers(1, 3)) for _ in range(n_attr)]
    cat_attr = [a for a, size in enumerate(sizes) for _ in range(size)]
    n_cat = len(cat_attr)
    base = draw(instances(max_users=max_users, max_n=max_n, max_cat=1, lam=lam))
    n_items = base.n_items
    item_cats = []
    for _ in range(n_items):
        cats = draw(st.lists(st.integers(0, n_cat - 1), max_size=4, unique=True))
        weights = {g: draw(st.sampled_from([1.0, 1.0, 0.5, 2.0])) for g in cats}
        item_cats.append(_within(weights, cat_attr, n_attr))
    targets = []
    for _ in base.users:
        raw = [draw(st.sampled_from([0.0, 0.0, 0.1, 0.3, 1.0, 2.0])) for _ in range(n_cat)]
        for a in range(n_attr):  # every attribute's target is a distribution (the engine checks)
            if not any(raw[g] for g in range(n_cat) if cat_attr[g] == a):
                raw[cat_attr.index(a)] = 1.0
        targets.append(_within(raw, cat_attr, n_attr))
    raw_w = [draw(st.sampled_from([0.0, 0.5, 1.0, 3.0])) for _ in range(n_attr)]
    if sum(raw_w) == 0:
        raw_w[0] = 1.0
    attr_w = [w / sum(raw_w) for w in raw_w]
    return AttributeInstance(
        n_items, n_cat, item_cats, base.users, base.scores, targets, base.lam, cat_attr=cat_attr, attr_w=attr_w
    )


# Options and helpers shared by the issue-14 properties (tests/engine/test_shown.py,
# test_explain.py, test_budget.py): KL / χ² (several attributes refuse Hellinger).
BEYOND_OPTIONS = st.fixed_dictionaries(
    {
        "divergence": st.sampled_from(["kl", "chi2"]),
        "rank_weights": st.sampled_from(["uniform", "dcg"]),
        "normalize": st.sampled_from([None, "minmax"]),
        "safeguard": st.booleans(),
    }
)


@st.composite
def shown_prefixes(draw, inst, max_size=4):
    """Per user: a few distinct items shown before (from the whole catalogue, so some are
    candidates and some are not)."""
    return [draw(st.lists(st.integers(0, inst.n_items - 1), max_size=max_size, unique=True)) for _ in inst.users]


def beyond_keywords(inst, shown) -> dict:
    """``rerank_arrays`` keywords for a shown prefix (a list per user) and, for an
    :class:`AttributeInstance`, its attributes."""
    out = {
        "shown_indptr": np.concatenate([[0], np.cumsum([len(s) for s in shown])]).astype(np.int64),
        "shown_items": np.array([i for s in shown for i in s], dtype=np.int64),
    }
    if isinstance(inst, AttributeInstance):
        out.update(category_attribute=np.array(inst.cat_attr), attribute_weights=np.array(inst.attr_w))
    return out


def reference_attributes(inst) -> dict:
    """The reference's ``cat_attr`` / ``attr_w`` keywords (none for one attribute)."""
    return {"cat_attr": inst.cat_attr, "attr_w": inst.attr_w} if isinstance(inst, AttributeInstance) else {}
