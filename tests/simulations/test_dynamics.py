"""Taste dynamics (rerank.simulations.dynamics) against a slow, obvious per-click reference."""

import numpy as np
from budget import examples
from hypothesis import given, settings
from hypothesis import strategies as st
from rerank.simulations.dynamics import click_drift, exposure_drift

CATS = np.array([[1.0, 0, 0], [0, 1.0, 0], [0, 0, 1.0], [0.5, 0.5, 0], [0, 0.5, 0.5]])


def _reference_drift(theta, slates, attitude, cats, rate):
    """Old taste keeps (1-δ)^n; each of the n attitude-clicked items gets (1-(1-δ)^n)/n."""
    out = []
    for u in range(theta.shape[0]):
        items = [slates[u][r] for r in range(slates.shape[1]) if attitude[u][r]]
        n = len(items)
        keep = (1.0 - rate) ** n
        new = [keep * theta[u][g] for g in range(theta.shape[1])]
        for i in items:
            for g in range(theta.shape[1]):
                new[g] += (1.0 - keep) / n * cats[i][g]
        out.append(new)
    return np.array(out)


def test_one_click_moves_the_taste_by_delta_toward_the_item():
    theta = np.array([[0.6, 0.4, 0.0]])
    out = click_drift(theta, np.array([[2, 0]]), np.array([[True, False]]), CATS, 0.1)
    np.testing.assert_allclose(out, [[0.54, 0.36, 0.1]])


def test_noise_clicks_and_no_clicks_leave_tastes_unchanged():
    theta = np.array([[0.6, 0.4, 0.0], [0.2, 0.3, 0.5]])
    slates = np.array([[2, 1], [0, 3]])
    # user 0 clicked item 2 but on noise (attitude False); user 1 did not click
    out = click_drift(theta, slates, np.zeros((2, 2), dtype=bool), CATS, 0.3)
    np.testing.assert_array_equal(out, theta)
    assert click_drift(theta, slates, np.ones((2, 2), dtype=bool), CATS, 0.0) is theta


@settings(max_examples=examples(40), deadline=None)
@given(st.data())
def test_click_drift_matches_the_reference(data):
    rng = np.random.default_rng(data.draw(st.integers(0, 2**31)))
    n_users, k = data.draw(st.integers(1, 6)), data.draw(st.integers(1, 4))
    rate = data.draw(st.floats(0.0, 1.0))
    theta = rng.dirichlet(np.ones(3), n_users)
    slates = np.array([rng.permutation(len(CATS))[:k] for _ in range(n_users)])
    attitude = rng.random((n_users, k)) < 0.5
    out = click_drift(theta, slates, attitude, CATS, rate)
    np.testing.assert_allclose(out, _reference_drift(theta, slates, attitude, CATS, rate),
                               atol=1e-12)
    np.testing.assert_allclose(out.sum(axis=1), 1.0)
    if rate < 1:  # a category the user had never disappears
        assert (out[theta > 0] > 0).all()


def test_exposure_drift_mixes_in_the_exposure():
    theta = np.array([[0.6, 0.4, 0.0]])
    q = np.array([[0.0, 0.5, 0.5]])
    np.testing.assert_allclose(exposure_drift(theta, q, 0.2), [[0.48, 0.42, 0.1]])
    assert exposure_drift(theta, q, 0.0) is theta
