"""Hypothesis strategies for reranking inputs (needs ``hypothesis``: ``pip install
'calibrated-rerank[testing]'``).

Two levels, for two kinds of tests:

* **Frames** — what :class:`rerank.CalibratedReranker` and any frame-level reranker take.
  :func:`rerank_inputs` draws a consistent ``(history, item_categories, candidates)`` triple
  (a :class:`RerankInputs`); :func:`histories`, :func:`item_category_frames` and
  :func:`candidate_frames` draw each frame alone, with the same knobs:

  - ``min_users`` / ``max_users`` (users with candidates), ``min_candidates`` /
    ``max_candidates`` (per user), ``min_categories`` / ``max_categories`` (categories in the
    table) and ``max_categories_per_item`` (1: single-category items; more: items carrying
    several);
  - ``id_kinds``: the id kinds to draw from, per id column (users and items independently,
    the same kind and dtype in every frame): ``"int"`` (int64), ``"str"`` (pandas' default
    string dtype; awkward text such as ``"007"``, ``" 7"``, ``"NA"``), ``"nullable"``
    (``Int64``, ``string``, ``string[pyarrow]``, ``int64[pyarrow]``, holding no nulls) and
    ``"huge"`` (int64 / uint64 ids near ±2⁶³ and 2⁶⁴, which a float cast corrupts);
  - ``ties``: ``True`` draws each user's scores from four values, ``False`` makes them
    distinct within a user, ``None`` (default) either; ``extreme_scores`` mixes in ±1.8e308,
    ±1e308 and subnormals; ``scores`` replaces the score strategy;
  - ``cold_users``: some users have no history (or only uncategorised items in it), and users
    who appear only in the history set the population target; ``uncategorised_items``: some
    items have no category or are unknown to the item table;
  - ``grouped``: ``True`` keeps each user's candidate rows together, ``False`` interleaves
    them, ``None`` either.

  Ids are never null, scores always finite, ``(user, item)`` candidate pairs distinct: every
  draw is a *valid* input (docs/inputs.md). Hostile inputs are the tests' business
  (``tests/hostile.py``).

* **Lists** — :func:`instances` draws per-user candidate lists at the level of
  :mod:`rerank.testing.reference` (scores, item shares ``{category: p(g|i)}``, targets, λ) with
  their CSR arrays (:class:`Instance`), for comparing an array-level implementation with the
  reference greedy (``rerank.rerank_arrays`` in the project's engine tests).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple

import numpy as np
import pandas as pd
import scipy.sparse as sp
from hypothesis import strategies as st

__all__ = [
    "EXTREME_SCORES", "ID_KINDS", "Instance", "RerankInputs", "candidate_frames", "histories", "instances",
    "item_category_frames", "lams", "memberships", "rerank_inputs", "target", "tie_free_scores",
    # several attributes and a shown prefix (issue 14)
    "AttributeInstance", "BEYOND_OPTIONS", "attribute_instances", "beyond_keywords", "shown_prefixes",
]

ID_KINDS = ("int", "str", "nullable", "huge")
MAX_FLOAT = float(np.finfo(np.float64).max)
#: Finite scores that break naive arithmetic: overflow of sums and spans, subnormals.
EXTREME_SCORES = (MAX_FLOAT, -MAX_FLOAT, 1e308, -1e308, 5e-324, -5e-324, 1e-300)
TIE_SCORES = st.sampled_from([0.0, 0.25, 0.5, 1.0])
FREE_SCORES = st.floats(-3, 3, allow_nan=False, allow_infinity=False, width=64)
AWKWARD_TEXT = ("007", "7", " 7", "7 ", "NA", "null", "nan", "None", "1e3", "-0", "é", "ü", "日本", "a,b", 'q"')
TEXT_IDS = st.sampled_from(AWKWARD_TEXT) | st.text(
    alphabet=st.characters(codec="utf-8", exclude_categories=("Cs", "Cc")), min_size=1, max_size=5
)
HUGE_SIGNED = (2**63 - 1, -(2**63), 2**53 + 1, -(2**53) - 1, 2**62 + 1)
HUGE_UNSIGNED = (2**64 - 1, 2**63, 2**63 + 1, 2**53 + 1)


def lams() -> st.SearchStrategy[float]:
    """λ in [0, 1]: the ends and a few usual values often, any float in between too."""
    return st.sampled_from([0.0, 0.1, 0.5, 0.9, 0.99, 1.0]) | st.floats(0, 1)


def tie_free_scores() -> st.SearchStrategy[float]:
    """Scores on the grid ``m / 16``, ``|m| ≤ 64``: distinct values stay distinct (and their order
    exact) under min-max normalisation and under ``a·s + b`` for the small dyadic ``a, b`` the
    ``score-affine`` guarantee uses, so a tie never appears by rounding."""
    return st.integers(-64, 64).map(lambda m: m / 16)


class RerankInputs(NamedTuple):
    """The three frames a reranker takes (docs/design.md §5)."""

    history: pd.DataFrame
    item_categories: pd.DataFrame
    candidates: pd.DataFrame


# --------------------------------------------------------------------------- ids
@st.composite
def _ids(draw, n: int, kind: str) -> pd.Series:
    """``n`` distinct ids of one kind, as a Series of that kind's dtype."""
    if kind == "int":
        values = draw(st.lists(st.integers(-(10**6), 10**6), min_size=n, max_size=n, unique=True))
        return pd.Series(values, dtype=np.int64)
    if kind == "str":
        return pd.Series(draw(st.lists(TEXT_IDS, min_size=n, max_size=n, unique=True)), dtype=str)
    if kind == "nullable":
        dtype = draw(st.sampled_from(["Int64", "string", "string[pyarrow]", "int64[pyarrow]"]))
        if dtype.startswith("string"):
            values = draw(st.lists(TEXT_IDS, min_size=n, max_size=n, unique=True))
        else:
            values = draw(st.lists(st.integers(-(2**63), 2**63 - 1), min_size=n, max_size=n, unique=True))
        return pd.Series(values, dtype=dtype)
    if kind == "huge":
        unsigned = draw(st.booleans())
        pool = HUGE_UNSIGNED if unsigned else HUGE_SIGNED
        lo, hi = (2**63, 2**64 - 1) if unsigned else (-(2**63), 2**63 - 1)
        values = draw(st.lists(st.sampled_from(pool) | st.integers(lo, hi), min_size=n, max_size=n, unique=True))
        return pd.Series(values, dtype=np.uint64 if unsigned else np.int64)
    raise ValueError(f"unknown id kind {kind!r}; choose from {ID_KINDS}")


def _check_kinds(id_kinds) -> tuple[str, ...]:
    kinds = tuple(id_kinds)
    unknown = [k for k in kinds if k not in ID_KINDS]
    if not kinds or unknown:
        raise ValueError(f"id_kinds must be a nonempty subset of {ID_KINDS}; got {kinds}")
    return kinds


# --------------------------------------------------------------------------- scores
@st.composite
def _user_scores(draw, n: int, ties, extreme_scores: bool, scores) -> list[float]:
    with_ties = draw(st.booleans()) if ties is None else ties
    if scores is not None:
        element = scores
    elif with_ties:
        element = TIE_SCORES
    else:
        element = FREE_SCORES
    if extreme_scores and draw(st.integers(0, 3)) == 0:
        element = element | st.sampled_from(EXTREME_SCORES)
    return draw(st.lists(element, min_size=n, max_size=n, unique=not with_ties))


# --------------------------------------------------------------------------- frames
@st.composite
def rerank_inputs(
    draw,
    *,
    min_users: int = 1,
    max_users: int = 4,
    min_candidates: int = 1,
    max_candidates: int = 8,
    min_categories: int = 1,
    max_categories: int = 4,
    max_categories_per_item: int = 3,
    id_kinds=ID_KINDS,
    ties: bool | None = None,
    extreme_scores: bool = True,
    scores: st.SearchStrategy[float] | None = None,
    cold_users: bool = True,
    uncategorised_items: bool = True,
    grouped: bool | None = None,
    max_history: int = 5,
) -> RerankInputs:
    """A consistent ``(history, item_categories, candidates)`` triple (see the module docstring
    for the knobs)."""
    kinds = _check_kinds(id_kinds)
    if not 0 <= min_users <= max_users or not 1 <= min_candidates <= max_candidates:
        raise ValueError("need 0 <= min_users <= max_users and 1 <= min_candidates <= max_candidates")
    n_users = draw(st.integers(min_users, max_users), label="users")
    n_items = draw(st.integers(min_candidates, max_candidates + 3), label="items")
    n_cat = draw(st.integers(max(1, min_categories), max(1, min_categories, max_categories)), label="categories")
    per_item = max(1, min(max_categories_per_item, n_cat))
    least = 0 if uncategorised_items else 1
    cats = [
        draw(st.lists(st.integers(0, n_cat - 1), min_size=least, max_size=per_item, unique=True))
        for _ in range(n_items)
    ]
    if not cold_users and not any(cats):
        cats[0] = [0]
    categorised = [i for i in range(n_items) if cats[i]]
    # History: candidate users (some cold), then a few users found only in the history.
    n_history_only = draw(st.integers(0, 2), label="history-only users")
    history_rows = []
    for u in range(n_users + n_history_only):
        cold = cold_users and u < n_users and draw(st.booleans())
        if cold:
            continue
        items = draw(st.lists(st.integers(0, n_items - 1), min_size=1, max_size=max_history))
        if not cold_users and not any(cats[i] for i in items):
            items.append(draw(st.sampled_from(categorised)))
        history_rows += [(u, i) for i in items]
    candidate_rows = []
    for u in range(n_users):
        n = draw(st.integers(min_candidates, min(max_candidates, n_items)), label="candidates")
        items = draw(st.permutations(range(n_items)))[:n]
        user_scores = draw(_user_scores(n, ties, extreme_scores, scores))
        candidate_rows += [(u, i, s) for i, s in zip(items, user_scores, strict=True)]
    if grouped is False or (grouped is None and draw(st.booleans())):
        order = draw(st.permutations(range(len(candidate_rows))))
        candidate_rows = [candidate_rows[j] for j in order]
    user_ids = draw(_ids(n_users + n_history_only, draw(st.sampled_from(kinds), label="user id kind")))
    item_ids = draw(_ids(n_items, draw(st.sampled_from(kinds), label="item id kind")))
    category_ids = draw(_ids(n_cat, draw(st.sampled_from(["str", "int"]))))
    category_rows = [(i, g) for i in range(n_items) for g in cats[i]]
    return RerankInputs(
        _frame({"user_id": (user_ids, [u for u, _ in history_rows]),
                "item_id": (item_ids, [i for _, i in history_rows])}),
        _frame({"item_id": (item_ids, [i for i, _ in category_rows]),
                "category": (category_ids, [g for _, g in category_rows])}),
        _frame({"user_id": (user_ids, [u for u, _, _ in candidate_rows]),
                "item_id": (item_ids, [i for _, i, _ in candidate_rows]),
                "score": (None, [s for _, _, s in candidate_rows])}),
    )


def _frame(columns: dict) -> pd.DataFrame:
    """Columns given as ``(ids, codes)``: ``ids.iloc[codes]`` keeps the ids' dtype; ``(None,
    values)`` is a float64 column."""
    data = {}
    for name, (ids, codes) in columns.items():
        if ids is None:
            data[name] = pd.Series(codes, dtype=np.float64)
        else:
            data[name] = ids.iloc[np.asarray(codes, dtype=np.int64)].reset_index(drop=True)
    return pd.DataFrame(data)


def histories(**knobs) -> st.SearchStrategy[pd.DataFrame]:
    """The history frame of :func:`rerank_inputs` alone (``user_id, item_id``)."""
    return rerank_inputs(**knobs).map(lambda inputs: inputs.history)


def item_category_frames(**knobs) -> st.SearchStrategy[pd.DataFrame]:
    """The item-categories frame of :func:`rerank_inputs` alone (``item_id, category``)."""
    return rerank_inputs(**knobs).map(lambda inputs: inputs.item_categories)


def candidate_frames(**knobs) -> st.SearchStrategy[pd.DataFrame]:
    """The candidates frame of :func:`rerank_inputs` alone (``user_id, item_id, score``)."""
    return rerank_inputs(**knobs).map(lambda inputs: inputs.candidates)


# --------------------------------------------------------------------------- lists (reference level)
@dataclass
class Instance:
    """Users' candidate lists at the level of :mod:`rerank.testing.reference`: user ``u``'s
    candidates are the items ``users[u]`` with ``scores[u]``; ``item_cats[i]`` is item ``i``'s
    ``{category: p(g|i)}`` (empty, or summing to 1); ``targets[u]`` is ``p(·|u)``."""

    n_items: int
    n_cat: int
    item_cats: list[dict[int, float]]
    users: list[list[int]]  # candidate items per user (distinct)
    scores: list[list[float]]
    targets: list[list[float]]
    lam: list[float]

    @property
    def matrix(self) -> sp.csr_matrix:
        """The items × categories matrix ``A`` of ``p(g|i)``."""
        rows, cols, vals = [], [], []
        for i, cats in enumerate(self.item_cats):
            for g, a in cats.items():
                rows.append(i)
                cols.append(g)
                vals.append(a)
        return sp.csr_matrix((vals, (rows, cols)), shape=(self.n_items, self.n_cat))

    def csr(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """``(indptr, items, scores)``: the candidates as CSR arrays (``rerank.rerank_arrays``)."""
        indptr = np.concatenate([[0], np.cumsum([len(u) for u in self.users])]).astype(np.int64)
        items = np.array([i for u in self.users for i in u], dtype=np.int64)
        scores = np.array([s for u in self.scores for s in u], dtype=np.float64)
        return indptr, items, scores

    def local_cats(self, u: int) -> list[dict[int, float]]:
        """``item_cats`` of user ``u``'s candidates, by local position (the reference's input)."""
        return [self.item_cats[i] for i in self.users[u]]


# Scores that differ in the input but merge after min-max normalisation (e.g. 0 and -2.34e-84
# between -1 and 1): "top-k" must follow the input scores, not the normalised ones.
NEAR_TIE_SCORES = st.sampled_from([-1.0, 0.0, -2.34e-84, 1e-300, 1.0])


@st.composite
def memberships(draw, n_items: int, n_cat: int, max_cats: int = 3) -> list[dict[int, float]]:
    """``p(g|i)`` per item: up to ``max_cats`` categories, equal or random weights, normalised."""
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
def target(draw, n_cat: int) -> list[float]:
    """A target ``p(·|u)`` over ``n_cat`` categories, often with zero shares."""
    raw = [draw(st.sampled_from([0.0, 0.0, 0.1, 0.3, 1.0, 2.0])) for _ in range(n_cat)]
    if sum(raw) == 0:
        raw[draw(st.integers(0, n_cat - 1))] = 1.0
    total = sum(raw)
    return [x / total for x in raw]


@st.composite
def instances(draw, max_users: int = 4, max_n: int = 8, max_cat: int = 4, ties: bool | None = None,
              lam: float | None = None) -> Instance:
    """Up to ``max_users`` users with up to ``max_n`` candidates each (possibly none), items with
    0-3 of up to ``max_cat`` categories; ``ties`` as in :func:`rerank_inputs` (ties drawn from
    four values or from near-ties that merge under min-max); ``lam`` fixes λ for everyone."""
    n_cat = draw(st.integers(1, max_cat))
    n_items = draw(st.integers(1, 12))
    cats = draw(memberships(n_items, n_cat))
    n_users = draw(st.integers(1, max_users))
    use_ties = draw(st.booleans()) if ties is None else ties
    if use_ties:
        score_strategy = draw(st.sampled_from([TIE_SCORES, NEAR_TIE_SCORES]))
    else:
        score_strategy = FREE_SCORES
    users, scores, targets, lams_ = [], [], [], []
    for _ in range(n_users):
        n = draw(st.integers(0, min(max_n, n_items)))
        users.append(draw(st.permutations(range(n_items)))[:n])
        scores.append([draw(score_strategy) for _ in range(n)])
        targets.append(draw(target(n_cat)))
        lams_.append(draw(lams()) if lam is None else lam)
    return Instance(n_items, n_cat, cats, users, scores, targets, lams_)


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
