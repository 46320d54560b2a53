"""Metric hand checks (docs/design.md §3, §4.8) and metrics against slow references."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from budget import examples
from hypothesis import given, settings
from hypothesis import strategies as st

from rerank import metrics
from rerank.engine.divergences import divergence
from rerank.testing import reference as ref

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


@pytest.mark.parametrize("kind", ["kl", "hellinger", "chi2"])
@pytest.mark.parametrize("alpha", [0.01, 0.5])
def test_subnormal_target_mass_against_an_empty_list(kind, alpha):
    """p = (1, 5e-324), q = (0, 0): the smoothed q̃ = αp underflows to 0 in floats; the value is
    still finite and equals the exact one (KL: p log(1/α) for that term), not an error."""
    got = divergence([1.0, 5e-324], [0.0, 0.0], kind, alpha)
    assert math.isfinite(got)
    assert got == pytest.approx(divergence([1.0, 0.0], [0.0, 0.0], kind, alpha), rel=1e-12)


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
    assert got == pytest.approx(ref.intra_list_diversity(items, item_cats), abs=1e-9)


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


# ------------------------------------------------------------------ minority interests
def _four_genres():
    """Items a1 (a), b1, b2 (b), c1 (c), ab (half a, half b); targets of three users."""
    cats = pd.DataFrame(
        {"item_id": ["a1", "b1", "b2", "c1", "ab", "ab"], "category": ["a", "b", "b", "c", "a", "b"]}
    )
    targets = pd.DataFrame(
        {
            "a": [0.5, 0.4, 1.0],
            "b": [0.3, 0.4, 0.0],
            "c": [0.15, 0.2, 0.0],
            "d": [0.05, 0.0, 0.0],
        },
        index=pd.Index(["u", "tie", "single"], name="user_id"),
    )
    cats = pd.concat([cats, pd.DataFrame({"item_id": ["d1"], "category": ["d"]})])
    return cats, targets


def test_minority_attainment_and_missing_by_hand():
    cats, targets = _four_genres()
    # u: top a; M = {b, c, d}, Σ p_M = 0.5. List a1, b1, b2, ab (uniform weights):
    # q = (a 1.5/4, b 2.5/4, c 0, d 0) = (0.375, 0.625, 0, 0).
    recs = recs_of(["a1", "b1", "b2", "ab"])
    attainment = metrics.minority_attainment(recs, targets, cats)["u"]
    assert attainment == pytest.approx((0.3 + 0.0 + 0.0) / 0.5)  # b capped at its 0.3
    assert metrics.minority_missing(recs, targets, cats)["u"] == pytest.approx(2 / 3)  # c and d left out
    # The old ratio calls this over-served (0.625 / 0.5), which is the blind spot.
    assert metrics.minority_share(recs, targets, cats)["u"] == pytest.approx(0.625 / 0.5)
    # b1, c1, d1, a1 -> q = 0.25 each: b gets 0.25 of its 0.3, c and d their full share, and
    # nothing is left out: (0.25 + 0.15 + 0.05) / 0.5.
    full = recs_of(["b1", "c1", "d1", "a1"])
    assert metrics.minority_attainment(full, targets, cats)["u"] == pytest.approx(0.45 / 0.5)
    assert metrics.minority_missing(full, targets, cats)["u"] == 0.0
    # Over-serving cannot push attainment past 1: b1, b2, c1, d1 -> q_b 0.5, q_c 0.25, q_d 0.25.
    over = recs_of(["b1", "b2", "c1", "d1"])
    assert metrics.minority_attainment(over, targets, cats)["u"] == pytest.approx(1.0)


def test_top_category_tie_goes_to_the_first_in_category_order():
    cats, targets = _four_genres()
    # tie: p = (a 0.4, b 0.4, c 0.2). Top = a (first); M = {b, c}, Σ p_M = 0.6.
    # List a1, c1: q = (a 0.5, c 0.5) -> (min(0, 0.4) + min(0.5, 0.2)) / 0.6 = 1/3.
    # (Were b the top, M = {a, c} and attainment would be (0.4 + 0.2) / 0.6 = 1.)
    recs = recs_of(["a1", "c1"], user="tie")
    assert metrics.minority_attainment(recs, targets, cats)["tie"] == pytest.approx(0.2 / 0.6)
    assert metrics.minority_missing(recs, targets, cats)["tie"] == pytest.approx(1 / 2)
    # The category order is the item table's (sorted names), not the targets' column order.
    shuffled = targets[["d", "c", "b", "a"]]
    assert metrics.minority_attainment(recs, shuffled, cats)["tie"] == pytest.approx(0.2 / 0.6)


def test_minority_metrics_use_the_rank_weights():
    cats = pd.DataFrame({"item_id": ["a1", "c1"], "category": ["a", "c"]})
    targets = pd.DataFrame({"a": [0.6], "c": [0.4]}, index=pd.Index(["u"], name="user_id"))
    recs = recs_of(["a1", "c1"])
    # uniform: q_c = 0.5 >= 0.4 -> 1. DCG: w = (1, 1/log2 3), q_c = 0.6309 / 1.6309 = 0.3869.
    assert metrics.minority_attainment(recs, targets, cats)["u"] == pytest.approx(1.0)
    w2 = 1 / math.log2(3)
    dcg = metrics.minority_attainment(recs, targets, cats, rank_weights="dcg")["u"]
    assert dcg == pytest.approx((w2 / (1 + w2)) / 0.4)
    assert dcg == pytest.approx(0.9671, abs=5e-5)


def test_no_minority_interest_is_nan_and_skipped_in_the_mean():
    cats, targets = _four_genres()
    recs = pd.concat([recs_of(["a1", "b1", "b2", "ab"]), recs_of(["a1"], user="single")])
    attainment = metrics.minority_attainment(recs, targets, cats)
    missing = metrics.minority_missing(recs, targets, cats)
    assert np.isnan(attainment["single"]) and np.isnan(missing["single"])
    empty = pd.DataFrame({"a": [0.0]}, index=pd.Index(["single"], name="user_id"))
    assert np.isnan(metrics.minority_attainment(recs_of(["a1"], user="single"), empty, cats)["single"])
    summary = metrics.summarize(recs, targets, cats)
    assert summary["minority_attainment"] == pytest.approx(0.6)  # u only
    assert summary["minority_missing"] == pytest.approx(2 / 3)
    assert summary["users_without_minority"] == 1


def test_user_metrics_agree_with_the_single_metric_functions():
    cats, targets = _four_genres()
    recs = pd.concat([recs_of(["a1", "b1", "b2", "ab"]), recs_of(["c1", "a1"], user="tie"),
                      recs_of(["a1"], user="single")])
    held = pd.DataFrame({"user_id": ["u", "tie"], "item_id": ["b1", "d1"]})
    frame = metrics.user_metrics(recs, targets, cats, held_out=held, k=2)
    for name, fn in [("minority_attainment", metrics.minority_attainment),
                     ("minority_missing", metrics.minority_missing),
                     ("minority_share", metrics.minority_share),
                     ("category_coverage", metrics.category_coverage)]:
        pd.testing.assert_series_equal(frame[name], fn(recs, targets, cats), check_names=False)
    pd.testing.assert_series_equal(frame["miscalibration_kl"], metrics.miscalibration(recs, targets, cats),
                                   check_names=False)
    assert frame.loc["u", "precision"] == 0.5 and frame.loc["tie", "precision"] == 0.0
    assert np.isnan(frame.loc["single", "precision"])


@settings(max_examples=examples(150), deadline=None)
@given(data=st.data(), spec=st.sampled_from(["uniform", "dcg"]))
def test_minority_metrics_match_pure_python_reference(data, spec):
    n_cat = data.draw(st.integers(1, 5), label="n_cat")
    categories = [f"g{j}" for j in range(n_cat)]
    n_items = data.draw(st.integers(1, 8), label="n_items")
    memberships = {
        f"i{j}": data.draw(st.lists(st.sampled_from(categories), max_size=3, unique=True), label=f"i{j}")
        for j in range(n_items)
    }
    rows = [(i, g) for i, gs in memberships.items() for g in gs] + [("anchor", g) for g in categories]
    cats = pd.DataFrame(rows, columns=["item_id", "category"])
    memberships["anchor"] = categories
    n_users = data.draw(st.integers(1, 4), label="n_users")
    frames, targets, expected = [], {}, {}
    for u in range(n_users):
        counts = data.draw(st.lists(st.integers(0, 3), min_size=n_cat, max_size=n_cat), label=f"p{u}")
        total = sum(counts)
        target = {g: (c / total if total else 0.0) for g, c in zip(categories, counts, strict=True)}
        items = data.draw(st.lists(st.sampled_from(list(memberships)[:n_items]), min_size=1, unique=True),
                          label=f"list{u}")
        frames.append(recs_of(items, user=f"u{u}"))
        targets[f"u{u}"] = target
        expected[f"u{u}"] = ref.minority_attainment_missing(items, memberships, target, categories,
                                                ref.rank_weight_list(spec, len(items)))
    recs = pd.concat(frames, ignore_index=True)
    target_frame = pd.DataFrame.from_dict(targets, orient="index")
    target_frame.index.name = "user_id"
    attained = metrics.minority_attainment(recs, target_frame, cats, rank_weights=spec)
    missing = metrics.minority_missing(recs, target_frame, cats, rank_weights=spec)
    for user, (want_attained, want_missing) in expected.items():
        if math.isnan(want_attained):
            assert np.isnan(attained[user]) and np.isnan(missing[user])
        else:
            assert attained[user] == pytest.approx(want_attained, abs=1e-12)
            assert 0.0 <= attained[user] <= 1.0
            assert missing[user] == pytest.approx(want_missing, abs=1e-12)


def test_demo_table_reports_the_minority_metrics():
    """``rerank demo``'s λ sweep carries attainment, missing and the safeguard share, equal to the
    metric functions on the same lists, and calibration raises attainment on the synthetic users."""
    from rerank.cli.demo import lambda_sweep
    from rerank.reranker import CalibratedReranker
    from rerank.synthetic import make_synthetic

    data = make_synthetic(n_users=150, seed=3)
    table = lambda_sweep(data, [0.0, 0.9], k=10, normalize="minmax").set_index("lam")
    assert table.loc[0.9, "minority_attainment"] > table.loc[0.0, "minority_attainment"] + 0.1
    assert table.loc[0.9, "minority_missing"] < table.loc[0.0, "minority_missing"]
    assert table.loc[0.0, "topk_kept"] == 0.0 and 0.0 <= table.loc[0.9, "topk_kept"] <= 1.0
    reranker = CalibratedReranker(k=10, lam=0.9, normalize="minmax").fit(data.history, data.item_categories)
    recs = reranker.rerank(data.candidates)
    targets = reranker.target_distributions(recs["user_id"].unique())
    assert table.loc[0.9, "minority_attainment"] == pytest.approx(
        metrics.minority_attainment(recs, targets, data.item_categories).mean())
    assert table.loc[0.9, "topk_kept"] == pytest.approx(len(reranker.report_.topk_users) / recs["user_id"].nunique())


def test_precision_divides_by_k_even_for_a_short_list():
    """A list shorter than k (fewer candidates than k) still has k slots: precision = hits / k."""
    recs = recs_of(["a", "b", "c"])  # 3 items, k = 10
    held = pd.DataFrame({"user_id": ["u", "u"], "item_id": ["a", "c"]})
    got = metrics.precision_recall_ndcg(recs, held, k=10).loc["u"]
    assert got["precision"] == pytest.approx(2 / 10)
    assert got["recall"] == pytest.approx(2 / 2)
    assert metrics.summarize(recs, pd.DataFrame({"x": [1.0]}, index=pd.Index(["u"], name="user_id")),
                             pd.DataFrame({"item_id": ["a", "b", "c"], "category": ["x"] * 3}),
                             held_out=held, k=10)["precision"] == pytest.approx(0.2)
