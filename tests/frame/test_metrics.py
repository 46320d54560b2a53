"""Metric hand checks (docs/design.md §3, §4.7) and metrics against slow references."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
import reference as ref
from budget import examples
from hypothesis import given, settings
from hypothesis import strategies as st

from rerank import metrics
from rerank.engine.divergences import divergence

P = [0.7, 0.3]


@pytest.mark.parametrize(
    ("q", "expected"),
    [([1.0, 0.0], 1.1340), ([0.5, 0.5], 0.0807), ([0.8, 0.2], 0.0275)],
)
def test_kl_hand_checks(q, expected):
    """docs/design.md §3: p = (0.7, 0.3), α = 0.01."""
    assert divergence(P, q, "kl", 0.01) == pytest.approx(expected, abs=5e-5)


def test_hellinger_and_chi2_hand_checks():
    # Hellinger of (0.7, 0.3) vs (1, 0): sqrt((√.7 - 1)² + .3) / √2
    assert divergence(P, [1.0, 0.0], "hellinger") == pytest.approx(
        math.sqrt((math.sqrt(0.7) - 1) ** 2 + 0.3) / math.sqrt(2)
    )
    assert divergence([0.5, 0.5], [0.5, 0.5], "hellinger") == 0.0
    assert divergence([1.0, 0.0], [0.0, 1.0], "hellinger") == pytest.approx(1.0)
    # χ² with q̃ = 0.99 q + 0.01 p: q = (0.5, 0.5) -> q̃ = (0.502, 0.498)
    expected = (0.7 - 0.502) ** 2 / 0.502 + (0.3 - 0.498) ** 2 / 0.498
    assert divergence(P, [0.5, 0.5], "chi2") == pytest.approx(expected)


dist = st.lists(st.floats(0, 1), min_size=1, max_size=6).filter(lambda v: sum(v) > 0).map(
    lambda v: [x / sum(v) for x in v]
)


@settings(max_examples=examples(200), deadline=None)
@given(data=st.data(), kind=st.sampled_from(["kl", "hellinger", "chi2"]), alpha=st.floats(0.001, 0.9))
def test_divergence_matches_reference(data, kind, alpha):
    p = data.draw(dist)
    q = data.draw(st.lists(st.floats(0, 1), min_size=len(p), max_size=len(p)))
    assert divergence(p, q, kind, alpha) == pytest.approx(ref.DIVERGENCES[kind](p, q, alpha), rel=1e-9, abs=1e-12)


def _table():
    cats = pd.DataFrame(
        {"item_id": ["d1", "d2", "d3", "c1", "c2", "x"], "category": ["drama"] * 3 + ["doc"] * 2 + ["drama"]}
    )
    cats = pd.concat([cats, pd.DataFrame({"item_id": ["x"], "category": ["doc"]})])  # x is drama+doc
    targets = pd.DataFrame({"doc": [0.3], "drama": [0.7]}, index=pd.Index(["u"], name="user_id"))
    return cats, targets


def recs_of(items, user="u"):
    return pd.DataFrame({"user_id": user, "item_id": items, "rank": np.arange(1, len(items) + 1)})


def test_miscalibration_of_lists_matches_hand_values():
    cats, targets = _table()
    all_drama = metrics.miscalibration(recs_of(["d1", "d2"]), targets, cats)
    half = metrics.miscalibration(recs_of(["d1", "c1"]), targets, cats)
    assert all_drama["u"] == pytest.approx(1.1340, abs=5e-5)
    assert half["u"] == pytest.approx(0.0807, abs=5e-5)
    # 80/20 from 4 drama + 1 doc
    eighty = pd.DataFrame({"item_id": list("abcde"), "category": ["drama"] * 4 + ["doc"]})
    assert metrics.miscalibration(recs_of(list("abcde")), targets, eighty)["u"] == pytest.approx(0.0275, abs=5e-5)


def test_multi_category_item_splits_its_mass():
    cats, targets = _table()
    # x is half drama, half doc: list [x] has q = (0.5, 0.5)
    assert metrics.miscalibration(recs_of(["x"]), targets, cats)["u"] == pytest.approx(0.0807, abs=5e-5)


def test_minority_share_and_category_coverage():
    cats, targets = _table()
    # one doc in 4 items: q(doc) = 0.25, p(doc) = 0.3 -> 0.8333
    share = metrics.minority_share(recs_of(["d1", "d2", "d3", "c1"]), targets, cats)
    assert share["u"] == pytest.approx(0.25 / 0.3)
    assert metrics.minority_share(recs_of(["d1"]), targets, cats)["u"] == 0.0
    assert metrics.category_coverage(recs_of(["d1"]), targets, cats)["u"] == 0.5
    assert metrics.category_coverage(recs_of(["d1", "c2"]), targets, cats)["u"] == 1.0
    single = pd.DataFrame({"doc": [0.0], "drama": [1.0]}, index=pd.Index(["u"], name="user_id"))
    assert np.isnan(metrics.minority_share(recs_of(["d1"]), single, cats)["u"])


def test_precision_recall_ndcg_hand_case():
    recs = recs_of(["a", "b", "c", "d"])
    held = pd.DataFrame({"user_id": ["u", "u", "u"], "item_id": ["b", "d", "z"]})
    got = metrics.precision_recall_ndcg(recs, held, k=4).loc["u"]
    assert got["precision"] == pytest.approx(2 / 4)
    assert got["recall"] == pytest.approx(2 / 3)
    dcg = 1 / math.log2(3) + 1 / math.log2(5)
    idcg = 1 + 1 / math.log2(3) + 1 / math.log2(4)
    assert got["ndcg"] == pytest.approx(dcg / idcg)
    # only the first k ranks count
    at2 = metrics.precision_recall_ndcg(recs, held, k=2).loc["u"]
    assert at2["precision"] == pytest.approx(0.5)
    assert at2["recall"] == pytest.approx(1 / 3)


def test_user_without_held_out_is_nan_not_zero():
    recs = pd.concat([recs_of(["a"]), recs_of(["a"], user="v")])
    held = pd.DataFrame({"user_id": ["u"], "item_id": ["a"]})
    got = metrics.precision_recall_ndcg(recs, held, k=1)
    assert got.loc["u", "precision"] == 1.0
    assert np.isnan(got.loc["v", "precision"])


def _ild_reference(items, item_cats):
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


@settings(max_examples=examples(100), deadline=None)
@given(
    memberships=st.lists(st.lists(st.integers(0, 3), max_size=3, unique=True), min_size=2, max_size=7),
)
def test_intra_list_diversity_matches_pairwise_reference(memberships):
    items = [f"i{j}" for j in range(len(memberships))]
    rows = [(f"i{j}", f"g{g}") for j, gs in enumerate(memberships) for g in gs]
    cats = pd.DataFrame(rows or [("other", "g0")], columns=["item_id", "category"])
    item_cats = {f"i{j}": {g: 1 / len(gs) for g in gs} for j, gs in enumerate(memberships) if gs}
    got = metrics.intra_list_diversity(recs_of(items), cats)["u"]
    assert got == pytest.approx(_ild_reference(items, item_cats), abs=1e-9)


def test_gini_and_catalogue_coverage():
    assert metrics.gini([1, 1, 1, 1]) == pytest.approx(0.0)
    assert metrics.gini([0, 0, 0, 1]) == pytest.approx(0.75)  # (n-1)/n for one item taking all
    recs = pd.concat([recs_of(["a", "b"]), recs_of(["a", "c"], user="v")])
    assert metrics.catalogue_coverage(recs, 6) == pytest.approx(3 / 6)
    # exposure a=2, b=1, c=1, plus two never-shown catalogue items
    expected = metrics.gini([2, 1, 1, 0, 0])
    assert metrics.exposure_gini(recs, catalogue=["a", "b", "c", "d", "e"]) == pytest.approx(expected)


def test_missing_target_row_names_the_user():
    cats, targets = _table()
    with pytest.raises(ValueError, match="'nobody'"):
        metrics.miscalibration(recs_of(["d1"], user="nobody"), targets, cats)
