"""The pandas API: column contract, fallbacks, per-user λ, equality with the reference."""

from __future__ import annotations

import inspect
from itertools import repeat

import numpy as np
import pandas as pd
import pytest
from budget import examples
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from rerank import CalibratedReranker, RerankOptions
from rerank.distributions import item_categories_from_frame, target_distributions
from rerank.testing import reference as ref
from rerank.testing.strategies import rerank_inputs

CATS = pd.DataFrame(
    {
        "item_id": ["m1", "m2", "m3", "m4", "m5", "m6", "m6"],
        "category": ["drama", "drama", "doc", "doc", "comedy", "drama", "doc"],
    }
)
HISTORY = pd.DataFrame(
    {"user_id": ["ann"] * 10 + ["bob"] * 2, "item_id": ["m1"] * 7 + ["m3"] * 3 + ["m5", "m5"]}
)


def candidates(user, items, scores):
    return pd.DataFrame({"user_id": user, "item_id": items, "score": scores})


def test_output_contract_and_order():
    cand = pd.concat(
        [candidates("bob", ["m1", "m5"], [0.2, 0.1]), candidates("ann", ["m1", "m2", "m3", "m4"], [4, 3, 2, 1])]
    )
    out = CalibratedReranker(k=3, lam=0.0).fit(HISTORY, CATS).rerank(cand)
    assert list(out.columns) == ["user_id", "item_id", "score", "rank"]
    assert list(out["user_id"]) == ["bob", "bob", "ann", "ann", "ann"]  # first-appearance order
    assert list(out["rank"]) == [1, 2, 1, 2, 3]
    assert list(out["item_id"]) == ["m1", "m5", "m1", "m2", "m3"]
    assert list(out["score"]) == [0.2, 0.1, 4, 3, 2]


def test_calibration_gives_the_minority_interest_its_share():
    # ann: 70% drama, 30% doc; candidates: 8 dramas on top, then docs
    items = [f"d{i}" for i in range(8)] + [f"c{i}" for i in range(4)]
    cats = pd.DataFrame({"item_id": items, "category": ["drama"] * 8 + ["doc"] * 4})
    hist = pd.DataFrame({"user_id": "ann", "item_id": ["d0"] * 7 + ["c0"] * 3})
    cand = candidates("ann", items, np.linspace(1.0, 0.9, len(items)))
    plain = CalibratedReranker(k=10, lam=0.0, normalize=None).fit(hist, cats).rerank(cand)
    calibrated = CalibratedReranker(k=10, lam=0.9, normalize=None).fit(hist, cats).rerank(cand)
    assert plain["item_id"].str.startswith("c").sum() == 2
    assert calibrated["item_id"].str.startswith("c").sum() == 3  # 30% of 10


def test_cold_user_gets_population_target_and_is_reported():
    reranker = CalibratedReranker(k=2, lam=0.5).fit(HISTORY, CATS)
    reranker.rerank(candidates("carl", ["m1", "m3", "m5"], [1, 1, 1]))
    assert list(reranker.report_.cold_users) == ["carl"]
    warm = reranker.target_distributions(["ann", "bob"]).to_numpy()
    cold = reranker.target_distributions(["carl"]).to_numpy()[0]
    np.testing.assert_allclose(cold, warm.mean(axis=0))
    assert cold.sum() == pytest.approx(1.0)


def test_items_without_categories_add_no_mass():
    """An unknown item behaves exactly like an item with an empty category row."""
    hist = pd.DataFrame({"user_id": "ann", "item_id": ["m1", "m3"]})
    cand = candidates("ann", ["m1", "mystery", "m3", "m2"], [0.9, 0.85, 0.5, 0.4])
    out = CalibratedReranker(k=2, lam=0.9).fit(hist, CATS).rerank(cand)
    # target 50/50 drama/doc: mystery adds nothing, m1 + m3 is perfectly calibrated
    assert list(out["item_id"]) == ["m1", "m3"]
    # the target ignores history items that have no category
    hist2 = pd.concat([hist, pd.DataFrame({"user_id": ["ann"], "item_id": ["mystery"]})])
    reranker = CalibratedReranker(k=2).fit(hist2, CATS)
    np.testing.assert_allclose(reranker.target_distributions(["ann"]).loc["ann", ["doc", "drama"]], [0.5, 0.5])


def test_fewer_candidates_than_k_returns_all_ranked():
    reranker = CalibratedReranker(k=10, lam=0.5).fit(HISTORY, CATS)
    out = reranker.rerank(candidates("ann", ["m4", "m2", "m6"], [0.1, 0.3, 0.2]))
    assert sorted(out["item_id"]) == ["m2", "m4", "m6"]
    assert list(out["rank"]) == [1, 2, 3]
    assert list(reranker.report_.short_users) == ["ann"]


def test_order_score_resorts_the_chosen_set():
    cand = candidates("ann", ["m1", "m2", "m5", "m3", "m4"], [5, 4, 3, 2, 1])
    greedy = CalibratedReranker(k=3, lam=0.9).fit(HISTORY, CATS).rerank(cand)
    by_score = CalibratedReranker(k=3, lam=0.9, order="score").fit(HISTORY, CATS).rerank(cand)
    assert set(greedy["item_id"]) == set(by_score["item_id"])
    assert list(by_score["score"]) == sorted(by_score["score"], reverse=True)


def test_per_user_lambda_from_column_and_mapping():
    cand = pd.concat(
        [candidates("ann", ["m1", "m2", "m3"], [3, 2, 1]), candidates("bob", ["m1", "m2", "m5"], [3, 2, 1])]
    )
    with_col = cand.assign(lam=np.where(cand["user_id"] == "ann", 0.0, 1.0))
    by_column = CalibratedReranker(k=1, lam="lam").fit(HISTORY, CATS).rerank(with_col)
    by_mapping = CalibratedReranker(k=1, lam={"ann": 0.0, "bob": 1.0}).fit(HISTORY, CATS).rerank(cand)
    pd.testing.assert_frame_equal(by_column, by_mapping)
    assert list(by_column["item_id"]) == ["m1", "m5"]  # ann: top score; bob: pure calibration (comedy)
    with pytest.raises(ValueError, match="constant per user"):
        CalibratedReranker(k=1, lam="lam").fit(HISTORY, CATS).rerank(cand.assign(lam=[0.1, 0.2, 0.1, 0, 0, 0]))
    with pytest.raises(ValueError, match="'bob'"):
        CalibratedReranker(k=1, lam={"ann": 0.5}).fit(HISTORY, CATS).rerank(cand)


def test_weights_and_recency_half_life():
    hist = pd.DataFrame(
        {"user_id": "ann", "item_id": ["m1", "m3"], "weight": [3.0, 1.0], "timestamp": [0.0, 10.0]}
    )
    weighted = CalibratedReranker().fit(hist, CATS).target_distributions(["ann"]).loc["ann"]
    assert weighted["drama"] == pytest.approx(0.75)
    # half-life 10: the older m1 counts 3 * 0.5 = 1.5 against 1.0
    recent = CalibratedReranker(half_life=10).fit(hist, CATS).target_distributions(["ann"]).loc["ann"]
    assert recent["drama"] == pytest.approx(1.5 / 2.5)


def test_item_category_weights_are_normalised_per_item():
    frame = pd.DataFrame({"item_id": ["a", "a", "b"], "category": ["x", "y", "x"], "weight": [3.0, 1.0, 5.0]})
    table = item_categories_from_frame(frame)
    dense = pd.DataFrame(table.matrix.toarray(), index=table.items, columns=table.categories)
    assert dense.loc["a", "x"] == pytest.approx(0.75)
    assert dense.loc["b"].tolist() == [1.0, 0.0]
    targets, has_mass = target_distributions(
        np.array([0, 0]), np.array([0, 1]), np.array([1.0, 1.0]), 1, table.matrix
    )
    np.testing.assert_allclose(targets[0], [(0.75 + 1) / 2, 0.25 / 2])
    assert has_mass.all()


@settings(max_examples=examples(60), deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(inputs=rerank_inputs(max_candidates=8, extreme_scores=False), k=st.integers(1, 5), lam=st.floats(0, 1))
def test_frame_api_equals_reference_per_user(inputs, k, lam):
    """Every user's list is the reference greedy's on targets the reference computes itself from
    the frames (Steck eq. 1, cold users on the population mean), whatever the id kinds."""
    history, cats, cand = inputs
    out = CalibratedReranker(k=k, lam=lam, normalize=None).fit(history, cats).rerank(cand)
    shares, categories = ref.item_shares(zip(cats["item_id"].tolist(), cats["category"].tolist(), repeat(1.0)))
    targets, population = ref.user_targets(
        zip(history["user_id"].tolist(), history["item_id"].tolist(), repeat(1.0)), shares, categories
    )
    index = {g: n for n, g in enumerate(categories)}
    lists = {}
    for user, item in zip(out["user_id"].tolist(), out["item_id"].tolist(), strict=True):
        lists.setdefault(user, []).append(item)
    users = cand["user_id"].tolist()
    for user in dict.fromkeys(users):
        rows = [j for j, u in enumerate(users) if u == user]
        items = [cand["item_id"].iloc[j] for j in rows]
        item_cats = [{index[g]: a for g, a in shares.get(i, {}).items()} for i in items]
        chosen = ref.greedy([cand["score"].iloc[j] for j in rows], item_cats, targets.get(user, population), k, lam)
        assert lists[user] == [items[j] for j in chosen]


# ----------------------------------------------------------------------------- parameters (scikit-learn's rules)
def test_init_only_stores_fit_checks_and_builds_options(tiny):
    lam = {1: 0.2, 2: 0.9, 3: 0.5}
    reranker = CalibratedReranker(k="ten", lam=lam, rank_weights=[1.0])  # nothing is checked yet
    assert reranker.k == "ten" and reranker.lam is lam and reranker.rank_weights == [1.0]
    with pytest.raises(TypeError, match="k must be a whole number"):
        reranker.fit(tiny.history, tiny.item_categories)
    reranker.k = 1
    reranker.fit(tiny.history, tiny.item_categories)
    assert reranker.options_ == RerankOptions(k=1, lam=None, rank_weights=(1.0,))  # λ per user: None
    out = reranker.rerank(tiny.candidates)
    assert out.groupby("user_id").size().tolist() == [1, 1, 1]


def test_repr_and_get_params_show_every_parameter():
    params = inspect.signature(CalibratedReranker).parameters
    reranker = CalibratedReranker(k=7, lam="lam_u", min_share=0.5, solver="greedy", max_enumerate=9)
    assert list(reranker.get_params()) == list(params)
    text = repr(reranker)
    assert all(f"{name}=" in text for name in params)
    assert eval(text, {"CalibratedReranker": CalibratedReranker}).get_params() == reranker.get_params()


def test_from_options_round_trips(tiny):
    options = RerankOptions(k=2, lam=0.4, divergence="hellinger", rank_weights="dcg", min_share=True, order="score")
    reranker = CalibratedReranker.from_options(options, half_life=None)
    assert reranker.fit(tiny.history, tiny.item_categories).options_ == options
    by_hand = CalibratedReranker(k=2, lam=0.4, divergence="hellinger", rank_weights="dcg", min_share=True,
                                 order="score").fit(tiny.history, tiny.item_categories)
    pd.testing.assert_frame_equal(reranker.rerank(tiny.candidates), by_hand.rerank(tiny.candidates))
