"""Click models and inverse-propensity weighting of the simulator (rerank.simulations.clicks).

Statistical checks use seeded draws and a tolerance of 5 binomial standard deviations,
``5 · sqrt(p (1 - p) / n)``, so a correct model fails with probability < 1e-6 per check.
"""

import numpy as np
import pytest
from rerank.simulations.clicks import (
    cascade_clicks,
    examination_curve,
    ips_weights,
    position_based_clicks,
)

N = 200_000
K = 10


def _tol(p, n):
    return 5.0 * np.sqrt(p * (1.0 - p) / n)


@pytest.mark.parametrize("eta", [0.5, 1.0, 2.0])
def test_position_based_click_frequencies_follow_one_over_rank_to_the_eta(eta):
    rng = np.random.default_rng(1)
    rel = np.ones((N, K))
    clicked, propensity, _ = position_based_clicks(rel, eta, rng)
    expected = (1.0 / np.arange(1, K + 1)) ** eta
    freq = clicked.mean(axis=0)
    assert np.all(np.abs(freq - expected) <= _tol(expected, N) + 1e-12)
    np.testing.assert_allclose(propensity[0], expected)


def test_position_based_clicks_scale_with_relevance_and_noise():
    rng = np.random.default_rng(2)
    rel = np.full((N, K), 0.4)
    noise, kappa = 0.2, 0.5
    clicked, _, _ = position_based_clicks(rel, 1.0, rng, noise, kappa)
    expected = (1.0 / np.arange(1, K + 1)) * ((1 - noise) * 0.4 + noise * kappa)
    assert np.all(np.abs(clicked.mean(axis=0) - expected) <= _tol(expected, N))


@pytest.mark.parametrize("model", ["position", "cascade"])
def test_attitude_and_noise_clicks_split_the_click_probability(model):
    # an examined slot is an attitude click w.p. (1-ν) rel and a noise click w.p. ν κ
    rng = np.random.default_rng(7)
    rel = np.full((N, K), 0.3)
    noise, kappa = 0.4, 0.5
    if model == "position":
        clicks = position_based_clicks(rel, 0.0, rng, noise, kappa)  # every slot examined
        slot, n = 0, N
    else:
        clicks = cascade_clicks(rel, rng, noise, kappa)  # slot 1 is always examined
        slot, n = 0, N
    assert not (clicks.attitude & ~clicks.clicked).any()
    attitude = clicks.attitude[:, slot].mean()
    noisy = (clicks.clicked & ~clicks.attitude)[:, slot].mean()
    assert abs(attitude - (1 - noise) * 0.3) <= _tol((1 - noise) * 0.3, n)
    assert abs(noisy - noise * kappa) <= _tol(noise * kappa, n)


def test_no_noise_means_every_click_is_an_attitude_click():
    clicks = position_based_clicks(np.full((2000, K), 0.5), 1.0, np.random.default_rng(8))
    np.testing.assert_array_equal(clicks.attitude, clicks.clicked)


def test_only_shown_items_can_be_clicked_irrelevant_items_are_never_clicked_without_noise():
    rng = np.random.default_rng(3)
    rel = np.zeros((5000, K))
    rel[:, 3] = 1.0
    clicked, _, _ = position_based_clicks(rel, 0.0, rng)
    assert clicked[:, 3].all()
    assert not np.delete(clicked, 3, axis=1).any()


def test_cascade_clicks_at_most_once_with_geometric_examination():
    rng = np.random.default_rng(4)
    c = 0.3
    rel = np.full((N, K), c)
    clicked, propensity, _ = cascade_clicks(rel, rng)
    assert clicked.sum(axis=1).max() == 1
    exam = (1 - c) ** np.arange(K)
    np.testing.assert_allclose(propensity[0], exam)
    expected = exam * c
    assert np.all(np.abs(clicked.mean(axis=0) - expected) <= _tol(expected, N))


def _random_placements(rng, rel_items, n_slates):
    """Each slate shows a random permutation of the K items (so every item visits every slot)."""
    order = np.argsort(rng.random((n_slates, K)), axis=1)
    return order, rel_items[order]


@pytest.mark.parametrize("model", ["position", "cascade"])
def test_ips_weighted_click_counts_are_unbiased_for_relevance(model):
    rng = np.random.default_rng(5)
    rel_items = np.linspace(0.05, 0.9, K)
    items, rel = _random_placements(rng, rel_items, N)
    if model == "position":
        clicked, propensity, _ = position_based_clicks(rel, 1.0, rng)
    else:
        clicked, propensity, _ = cascade_clicks(rel, rng)
    weights = ips_weights(propensity, clip=1e9) * clicked
    flat_items = items.ravel()
    n_shown = np.bincount(flat_items, minlength=K)
    ips = np.bincount(flat_items, weights=weights.ravel(), minlength=K) / n_shown
    naive = np.bincount(flat_items, weights=clicked.ravel().astype(float), minlength=K) / n_shown
    # sd of click/p per impression: E[(click/p)^2] - rel^2 = rel · E[1/p] - rel^2 (PBM),
    # estimated from the draws for both models.
    second = np.bincount(flat_items, weights=(weights**2).ravel(), minlength=K) / n_shown
    sd = np.sqrt(np.maximum(second - ips**2, 1e-12) / n_shown)
    assert np.all(np.abs(ips - rel_items) <= 5 * sd)
    # the naive click rate is biased low by the examination probability
    assert np.all(naive < rel_items)
    assert (rel_items - naive).max() > 10 * sd.max()


def test_clipping_caps_the_weights_and_biases_the_estimate_down():
    rng = np.random.default_rng(6)
    rel_items = np.full(K, 0.5)
    items, rel = _random_placements(rng, rel_items, N)
    clicked, propensity, _ = position_based_clicks(rel, 1.0, rng)
    weights = ips_weights(propensity, clip=3.0)
    assert weights.max() == 3.0
    np.testing.assert_allclose(weights[propensity >= 1 / 3], 1 / propensity[propensity >= 1 / 3])
    estimate = (weights * clicked).sum() / clicked.size
    # E[min(1/p, 3) · click] = rel · mean_r(min(1/p_r, 3) p_r) < rel
    exam = examination_curve(1.0, K)
    expected = 0.5 * np.mean(np.minimum(1 / exam, 3.0) * exam)
    assert expected < 0.5
    assert abs(estimate - expected) < 0.01
