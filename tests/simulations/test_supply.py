"""Supply that does not run out: depletion accounting, the organic share over consumable items,
fresh slots, organic slates and the calibration targets (issue 11, items 1 and 7)."""

import math

import numpy as np
import pytest
import scipy.sparse as sp
from rerank.simulations.config import SimConfig
from rerank.simulations.log import InteractionLog
from rerank.simulations.policies import (
    POLICY_SPECS,
    add_fresh,
    anchored_targets,
    history_targets,
    organic_slates,
    policy_targets,
)
from rerank.simulations.run import consumption_report, organic_share, run_policy, top_unconsumable
from rerank.simulations.world import RoundRelevance, make_world, sample_organic

CFG = SimConfig(n_users=40, n_items=120, n_rounds=4, n_candidates=30, organic_per_user=5,
                new_items_per_round=5, fresh_pool=20)


def _consumed(n_users, n_items, pairs):
    rows, cols = zip(*pairs, strict=True)
    return sp.csr_matrix((np.ones(len(rows)), (rows, cols)), shape=(n_users, n_items))


def _rel(world, u, i, theta):
    cfg = world.config
    a = sum(theta[u, g] * world.item_categories[i, g] for g in range(cfg.n_categories))
    return 1 / (1 + math.exp(-(cfg.rel_bias + cfg.rel_pref * a + world.quality[i])))


def test_top_unconsumable_counts_the_consumed_share_of_the_most_relevant_items():
    world = make_world(CFG)
    n = 100
    relevance = RoundRelevance(world, world.theta0, n)
    order = [sorted(range(n), key=lambda i: -_rel(world, u, i, world.theta0)) for u in range(3)]
    # user 0 consumed its best 2 and a poor item; user 1 its 10th best; user 2 nothing
    consumed = _consumed(40, n, [(0, order[0][0]), (0, order[0][1]), (0, order[0][-1]),
                                 (1, order[1][9])])
    share = top_unconsumable(relevance, consumed, top=10)
    assert share[0] == pytest.approx(0.2) and share[1] == pytest.approx(0.1) and share[2] == 0
    assert (top_unconsumable(relevance, None, top=10) == 0).all()  # re-consumption on


def test_organic_share_leaves_out_consumed_items_only_when_reconsumption_is_off():
    world = make_world(CFG)
    n = 100
    relevance = RoundRelevance(world, world.theta0, n)
    consumed = _consumed(40, n, [(0, 3), (0, 17), (5, 40)])
    pi_all = organic_share(relevance, None)
    pi_left = organic_share(relevance, consumed)
    for u, gone in ((0, {3, 17}), (5, {40}), (7, set())):
        mass = np.zeros(CFG.n_categories)
        for i in range(n):
            if i not in gone:
                mass += _rel(world, u, i, world.theta0) * world.item_categories[i]
        np.testing.assert_allclose(pi_left[u], mass / mass.sum(), rtol=1e-5)
    np.testing.assert_allclose(pi_all[7], pi_left[7])
    assert not np.allclose(pi_all[0], pi_left[0])


def test_without_reconsumption_consumed_items_never_return_and_depletion_is_reported():
    cfg = CFG.with_(reconsume=False, n_rounds=4)
    world = make_world(cfg)
    organic = sample_organic(world, world.theta0, cfg.organic_per_user, world.n_available(0))
    run = run_policy(world, "oracle", organic, {"all": np.zeros((0, 2), int)})
    last = [r for r in run.metrics if r["round"] == 3 and r["group"] == "all"][0]
    assert last["top50_consumed"] > 0  # the oracle eats its users' favourites
    for group in run.consumption.values():
        assert group["top50_consumed"] == group["top50_ever_consumed"] > 0


def test_with_reconsumption_nothing_is_depleted_by_construction():
    world = make_world(CFG)
    organic = sample_organic(world, world.theta0, CFG.organic_per_user, world.n_available(0))
    run = run_policy(world, "oracle", organic, {"all": np.zeros((0, 2), int)})
    assert all(r["top50_consumed"] == 0 for r in run.metrics)
    report = run.consumption["all"]
    assert report["top50_consumed"] == 0 and report["top50_ever_consumed"] > 0


def test_consumption_report_hand_case():
    world = make_world(CFG)
    log = InteractionLog()
    dom = world.dominant[0]
    items = np.flatnonzero(world.item_categories[:100, dom] == 1.0)[:3]
    log.add_organic(np.zeros(3, int), items)
    report = consumption_report(log, world, world.theta0, 100, top=10, reconsume=True)
    supply = world.item_categories[:100, dom].sum()
    users_in_group = (world.group == world.group[0]).sum()
    group = "niche" if world.niche[dom] else "mainstream"
    assert report[group]["dominant_consumed"] == pytest.approx(3 / supply / users_in_group, abs=1e-6)


def test_fresh_slots_show_new_items_not_on_the_slate_nor_consumed():
    rng = np.random.default_rng(0)
    slates = np.array([[95, 96, 1], [2, 3, 4]])
    exclude = _consumed(2, 100, [(0, 97), (1, 98)])
    for _ in range(50):
        out = add_fresh(slates, 2, 5, exclude, 100, rng)  # pool: items 95..99
        assert out.shape == (2, 5)
        np.testing.assert_array_equal(out[:, :3], slates)
        assert set(out[0, 3:]) == {98, 99}  # 95, 96 on the slate, 97 consumed
        assert set(out[1, 3:]) <= {95, 96, 97, 99} and out[1, 3] != out[1, 4]
    with pytest.raises(ValueError, match="fresh"):
        add_fresh(np.array([[95, 96, 97, 98]]), 2, 5, None, 100, rng)


def test_organic_slates_are_distinct_skip_excluded_items_and_follow_relevance():
    world = make_world(CFG)
    relevance = RoundRelevance(world, world.theta0, 100)
    exclude = _consumed(40, 100, [(u, i) for u in range(40) for i in range(0, 100, 2)])
    out = organic_slates(relevance, 6, exclude, np.random.default_rng(1))
    assert all(len(set(row)) == 6 for row in out)
    assert (out % 2 == 1).all()
    many = np.concatenate([organic_slates(relevance, 6, None, np.random.default_rng(s))
                           for s in range(30)])
    shown = np.bincount(many.ravel(), minlength=100)
    rel = relevance.rows(slice(None)).mean(axis=0)
    assert np.corrcoef(shown, rel)[0, 1] > 0.5


def test_targets_logged_anchored_and_blend():
    world = make_world(CFG)
    log = InteractionLog()
    organic = sample_organic(world, world.theta0, CFG.organic_per_user, 100)
    log.add_organic(*organic)
    anchored = anchored_targets(log, CFG.n_users, world.item_csr)
    np.testing.assert_allclose(anchored, history_targets(log, CFG.n_users, world.item_csr,
                                                         "naive", 10.0))
    slates = np.tile(np.arange(3), (CFG.n_users, 1))
    log.add_round(0, slates, np.ones_like(slates, dtype=bool), np.ones(slates.shape))
    logged = history_targets(log, CFG.n_users, world.item_csr, "naive", 10.0)
    assert not np.allclose(logged, anchored)
    np.testing.assert_array_equal(anchored_targets(log, CFG.n_users, world.item_csr), anchored)
    blend = policy_targets(POLICY_SPECS["calibrated-blend"], log, CFG.n_users, world.item_csr,
                           CFG.with_(blend_weight=0.3), anchored)
    np.testing.assert_allclose(blend, 0.3 * anchored + 0.7 * logged)
    np.testing.assert_allclose(blend.sum(axis=1), 1.0)
