"""The simulated world, the organic history, the log and the position-aware model."""

import math

import numpy as np
import pytest
from rerank.simulations.clicks import position_based_clicks
from rerank.simulations.config import SimConfig, preset
from rerank.simulations.log import InteractionLog
from rerank.simulations.tower import PositionTower
from rerank.simulations.world import (
    NICHE,
    RoundRelevance,
    make_world,
    sample_organic,
    successive_sample,
    true_share,
)

SMALL = SimConfig(n_users=60, n_items=200, n_rounds=4, n_candidates=50, new_items_per_round=5)


def test_population_groups_and_tastes():
    world = make_world(SMALL)
    cfg = SMALL
    assert (world.group == NICHE).sum() == round(cfg.n_users * cfg.niche_share)
    niche_group = world.group == NICHE
    assert world.niche[world.dominant[niche_group]].all()
    assert not world.niche[world.dominant[~niche_group]].any()
    np.testing.assert_allclose(world.theta0.sum(axis=1), 1.0)
    rows = np.arange(cfg.n_users)
    assert np.all(world.theta0[rows, world.dominant] >= cfg.dominant_weight - 1e-12)
    assert (world.minority_mask.sum(axis=1) == cfg.n_minority_interests).all()
    assert not world.minority_mask[rows, world.dominant].any()
    fifty = make_world(preset("51-49", n_users=60, n_items=200, n_rounds=4, n_candidates=50))
    assert (fifty.group == NICHE).sum() == round(60 * 0.49)


def test_items_have_one_to_three_categories_and_niche_is_scarcer():
    world = make_world(SimConfig(n_items=6000, n_users=10))
    counts = (world.item_categories > 0).sum(axis=1)
    assert counts.min() >= 1 and counts.max() <= 3
    np.testing.assert_allclose(world.item_categories.sum(axis=1), 1.0)
    supply = (world.item_categories > 0).mean(axis=0)
    assert supply[world.niche].max() < supply[~world.niche].min()
    assert world.quality[world.item_categories[:, world.niche].sum(axis=1) == 1].mean() < \
        world.quality[world.item_categories[:, world.niche].sum(axis=1) == 0].mean()


def test_true_share_is_the_organic_consumption_mix_reference_loop():
    world = make_world(SMALL)
    cfg = SMALL
    n = world.n_available(0)
    pi = true_share(RoundRelevance(world, world.theta0, n).organic_mass())
    for u in (0, 7, 33):
        mass = np.zeros(cfg.n_categories)
        for i in range(n):
            a = sum(world.theta0[u, g] * world.item_categories[i, g] for g in range(cfg.n_categories))
            rel = 1 / (1 + math.exp(-(cfg.rel_bias + cfg.rel_pref * a + world.quality[i])))
            mass += rel * world.item_categories[i]
        np.testing.assert_allclose(pi[u], mass / mass.sum(), rtol=1e-5)  # float32 block


def test_items_arrive_each_round():
    world = make_world(SMALL)
    assert world.n_available(0) == SMALL.n_items
    assert world.n_available(3) == SMALL.n_items + 3 * SMALL.new_items_per_round
    assert (world.arrival[: SMALL.n_items] == 0).all()
    assert world.arrival[SMALL.n_items] == 1


def test_organic_history_is_distinct_items_drawn_toward_relevance():
    cfg = SimConfig(n_users=400, n_items=300, n_candidates=50, organic_per_user=10)
    world = make_world(cfg)
    users, items = sample_organic(world, world.theta0, 10, 300)
    assert users.size == 4000
    for u in range(0, 400, 37):
        assert np.unique(items[users == u]).size == 10
    rel = world.relevance_pairs(world.theta0, users, items)
    all_rel = world.relevance_block(world.theta0, 300)
    assert rel.mean() > all_rel.mean() * 1.5


def _successive_law(weights, k):
    """Exact probability of every ordered k-tuple under successive sampling (slow, obvious)."""
    import itertools

    out = {}
    for combo in itertools.permutations(range(len(weights)), k):
        p, left = 1.0, float(sum(weights))
        for j in combo:
            p *= weights[j] / left
            left -= weights[j]
        if p > 0:
            out[combo] = p
    return out


def test_successive_sample_has_the_law_of_drawing_without_replacement():
    weights = np.array([4.0, 0.0, 1.0, 2.0, 0.5])
    n = 60_000
    draws = successive_sample(np.tile(weights, (n, 1)), 2, np.random.default_rng(3))
    law = _successive_law(weights, 2)
    counts = {}
    for row in map(tuple, draws.tolist()):
        counts[row] = counts.get(row, 0) + 1
    assert set(counts) <= set(law)  # never the zero-weight item, never a repeat
    for combo, p in law.items():
        assert abs(counts.get(combo, 0) / n - p) <= 5 * math.sqrt(p * (1 - p) / n)


def test_successive_sample_refuses_rows_without_enough_positive_weights():
    with pytest.raises(ValueError, match="fewer than 3"):
        successive_sample(np.array([[1.0, 0.0, 2.0, 0.0]]), 3, np.random.default_rng(0))


def test_log_keeps_impressions_non_clicks_positions_and_propensities():
    log = InteractionLog()
    log.add_organic(np.array([0, 1]), np.array([5, 6]))
    slates = np.array([[1, 2, 3], [4, 5, 6]])
    clicked = np.array([[True, False, False], [False, False, True]])
    prop = np.array([[1.0, 0.5, 1 / 3]] * 2)
    log.add_round(0, slates, clicked, prop)
    cols = log.columns()
    assert len(log) == 8
    assert cols["position"].tolist() == [0, 0, 1, 2, 3, 1, 2, 3]
    assert cols["clicked"].sum() == 4  # 2 organic + 2 clicks; non-clicks kept
    users, items, w = log.clicks("ips", clip=2.0)
    assert sorted(zip(users.tolist(), items.tolist(), w.tolist(), strict=True)) == [
        (0, 1, 1.0), (0, 5, 1.0), (1, 6, 1.0), (1, 6, 2.0)]
    consumed = log.consumed(2, 8).toarray()
    assert consumed[1, 6] == 1.0 and consumed[0, 2] == 0.0


def test_position_tower_learns_decreasing_position_effects_and_ranks_by_relevance():
    rng = np.random.default_rng(0)
    n_users, n_items, k = 300, 40, 5
    item_rel = np.linspace(0.05, 0.6, n_items)
    log = InteractionLog()
    for t in range(30):
        slates = np.array([rng.permutation(n_items)[:k] for _ in range(n_users)])
        clicked, prop, _ = position_based_clicks(item_rel[slates], 1.0, rng)
        log.add_round(t, slates, clicked, prop)
    tower = PositionTower(n_users, n_items, k, factors=4, epochs=3, learning_rate=0.05, seed=1)
    tower.fit(log, n_items, 0)
    effects = tower.position_effects()
    assert np.all(np.diff(effects) < 0)
    # the learned effect of the last slot is near the true log-odds shift of 1/5 examination
    assert effects[-1] < -1.0
    scores = tower.serving_scores(np.arange(n_users), n_items).mean(axis=0)
    assert np.corrcoef(scores, item_rel)[0, 1] > 0.9


def test_tower_refuses_ips_training():
    with pytest.raises(ValueError, match="position-tower"):
        SimConfig(model="position-tower", train="ips")

