"""Hand cases and reference checks for the simulator's per-round metrics."""

import itertools

import numpy as np
import pytest
import scipy.sparse as sp
from budget import examples
from hypothesis import given, settings
from hypothesis import strategies as st
from rerank.simulations.config import SimConfig
from rerank.simulations.metrics import (
    METRIC_COLUMNS,
    RoundInputs,
    exposure_distribution,
    gini_of_exposure,
    jaccard_pairs,
    minority_ratio,
    round_metrics,
)

# items 0..3: category 0, 1, 2, and {0, 1} half/half
CATS = sp.csr_matrix(np.array([[1, 0, 0], [0, 1, 0], [0, 0, 1], [0.5, 0.5, 0]], dtype=float))


def test_exposure_distribution_uses_the_rank_weights():
    q = exposure_distribution(np.array([[0, 1]]), CATS, np.array([1.0, 0.5]))
    np.testing.assert_allclose(q, [[2 / 3, 1 / 3, 0.0]])
    q = exposure_distribution(np.array([[3, 2]]), CATS, np.array([1.0, 1.0]))
    np.testing.assert_allclose(q, [[0.25, 0.25, 0.5]])


def test_minority_ratio_hand_case():
    q = np.array([[0.7, 0.2, 0.1], [1.0, 0.0, 0.0]])
    pi = np.array([[0.5, 0.3, 0.2], [0.6, 0.4, 0.0]])
    mask = np.array([[False, True, True], [False, False, False]])
    ratio = minority_ratio(q, pi, mask)
    assert ratio[0] == pytest.approx(0.3 / 0.5)
    assert np.isnan(ratio[1])  # no minority interest: undefined, not 0


def test_jaccard_and_gini_hand_cases():
    slates = np.array([[1, 2, 3], [2, 3, 4], [5, 6, 7]])
    pairs = np.array([[0, 1], [0, 2], [1, 1]])
    np.testing.assert_allclose(jaccard_pairs(slates, pairs), [2 / 4, 0.0, 1.0])
    # exposures (1, .5, 0, 0): Σ(2i-n-1)x_(i) / (n Σx) = (0.5 + 3) / (4 · 1.5)
    assert gini_of_exposure(np.array([[0, 1]]), np.array([1.0, 0.5]), 4) == pytest.approx(3.5 / 6)


def _two_user_round(**overrides):
    # user 0 (majority): dominant cat 0, minority interest cat 1; user 1 (minority): dominant
    # cat 2, minority interest cat 0.
    base = dict(
        slates=np.array([[0, 3], [2, 1]]),
        clicked=np.array([[True, False], [False, False]]),
        rel=np.array([[0.5, 0.2], [0.4, 0.1]]),
        pi=np.array([[0.7, 0.3, 0.0], [0.2, 0.0, 0.8]]),
        pi0=np.array([[0.6, 0.4, 0.0], [0.25, 0.0, 0.75]]),
        estimate=np.array([[0.5, 0.5, 0.0], [0.2, 0.0, 0.8]]),
        theta=np.array([[0.6, 0.4, 0.0], [0.3, 0.0, 0.7]]),
        theta0=np.array([[0.6, 0.4, 0.0], [0.0, 0.0, 1.0]]),
        minority_mask=np.array([[False, True, False], [True, False, False]]),
        dominant=np.array([0, 2]),
        group=np.array([0, 1], dtype=np.int8),
        categories=CATS,
        exam=np.array([1.0, 0.5]),
        n_available=5,
        pairs={"all": np.array([[0, 1]]), "mainstream": np.zeros((0, 2), int),
               "niche": np.zeros((0, 2), int)},
        collapse_threshold=0.25,
        top_consumed=np.array([0.1, 0.3]),
    )
    base.update(overrides)
    return round_metrics(RoundInputs(**base))


def test_round_metrics_two_user_hand_case():
    metrics, details = _two_user_round()
    assert set(metrics["all"]) == set(METRIC_COLUMNS)
    maj, mino, both = metrics["mainstream"], metrics["niche"], metrics["all"]
    # user 0: q = (1·(1,0,0) + .5·(.5,.5,0)) / 1.5 = (5/6, 1/6, 0); ratio (1/6)/0.3
    assert maj["minority_exposure_ratio"] == pytest.approx((1 / 6) / 0.3)
    # user 1: q = (1·(0,0,1) + .5·(0,1,0)) / 1.5 = (0, 1/3, 2/3); minority cat 0 gets 0
    assert mino["minority_exposure_ratio"] == pytest.approx(0.0)
    assert mino["minority_collapse_rate"] == 1.0 and maj["minority_collapse_rate"] == 0.0
    assert both["minority_collapse_rate"] == 0.5
    # KL(π || q̃) with q̃ = .99 q + .01 π
    q0 = np.array([5 / 6, 1 / 6, 0.0])
    pi0 = np.array([0.7, 0.3, 0.0])
    qs = 0.99 * q0 + 0.01 * pi0
    kl0 = sum(p * np.log(p / s) for p, s in zip(pi0, qs, strict=True) if p > 0)
    assert maj["miscalibration_true"] == pytest.approx(kl0)
    assert maj["true_utility"] == pytest.approx(0.5 + 0.5 * 0.2)
    assert maj["ctr"] == 0.5 and mino["ctr"] == 0.0 and both["ctr"] == 0.25
    assert both["coverage"] == pytest.approx(4 / 5)
    assert maj["coverage"] == pytest.approx(2 / 5)
    assert both["homogenization"] == 0.0
    assert np.isnan(maj["homogenization"])  # no pairs sampled
    assert maj["estimate_error"] == pytest.approx(0.2)
    assert mino["estimate_error"] == 0.0
    assert maj["interest_drift"] == 0.0
    assert mino["interest_drift"] == pytest.approx(0.3)
    assert details["mainstream"]["minority_slot_ratio"] == pytest.approx(0.25 / 0.3)
    assert details["mainstream"]["dominant_exposure_share"] == pytest.approx(5 / 6)


def test_reference_metrics_two_user_hand_case():
    metrics, _ = _two_user_round()
    main, niche, both = metrics["mainstream"], metrics["niche"], metrics["all"]
    # user 0: q = (5/6, 1/6, 0) against π⁰ = (.6, .4, 0)
    q0, p0 = np.array([5 / 6, 1 / 6, 0.0]), np.array([0.6, 0.4, 0.0])
    kl = sum(p * np.log(p / (0.99 * q + 0.01 * p)) for p, q in zip(p0, q0, strict=True) if p > 0)
    assert main["ref_miscalibration"] == pytest.approx(kl)
    assert main["ref_minority_ratio"] == pytest.approx((1 / 6) / 0.4)
    # user 1 (niche group, dominant cat 2): q = (0, 1/3, 2/3); π⁰(2) = .75
    assert niche["distinct_interest_ratio"] == pytest.approx((2 / 3) / 0.75)
    assert np.isnan(main["distinct_interest_ratio"])  # defined for the niche group only
    assert both["distinct_interest_ratio"] == pytest.approx((2 / 3) / 0.75)
    assert niche["ref_minority_ratio"] == pytest.approx(0.0)  # minority cat 0 gets nothing
    # tastes: user 0 unchanged; user 1 θ⁰ = (0,0,1) → θ = (.3, 0, .7)
    assert main["taste_shift"] == pytest.approx(0.0, abs=1e-12)
    assert niche["taste_shift"] == pytest.approx(np.log(1 / (0.99 * 0.7 + 0.01)))
    assert main["taste_entropy"] == pytest.approx(-(0.6 * np.log(0.6) + 0.4 * np.log(0.4)))
    assert niche["taste_entropy"] == pytest.approx(-(0.3 * np.log(0.3) + 0.7 * np.log(0.7)))
    assert main["top50_consumed"] == 0.1 and both["top50_consumed"] == pytest.approx(0.2)


def test_miscalibration_true_matches_the_design_hand_check():
    # docs/design.md §3: p = (0.7, 0.3), list all in the first category -> KL 1.1340
    metrics, _ = _two_user_round(
        slates=np.array([[0, 0], [0, 0]]),
        pi=np.array([[0.7, 0.3, 0.0], [0.7, 0.3, 0.0]]),
    )
    assert metrics["all"]["miscalibration_true"] == pytest.approx(1.1340, abs=5e-5)


# ---------------------------------------------------------------- reference (hypothesis)
def _reference_ratio_and_jaccard(slates, cats, exam, pi, mask, pairs):
    """Slow, obvious loops."""
    ratios = []
    for u, slate in enumerate(slates):
        q = [0.0] * cats.shape[1]
        for r, item in enumerate(slate):
            for g in range(cats.shape[1]):
                q[g] += exam[r] * cats[item, g]
        total = sum(exam[: len(slate)])
        q = [v / total for v in q]
        num = sum(q[g] for g in range(len(q)) if mask[u][g])
        den = sum(pi[u][g] for g in range(len(q)) if mask[u][g])
        ratios.append(num / den if den > 0 else float("nan"))
    jac = []
    for a, b in pairs:
        sa, sb = set(slates[a]), set(slates[b])
        jac.append(len(sa & sb) / len(sa | sb))
    return np.array(ratios), np.array(jac)


@settings(max_examples=examples(60), deadline=None)
@given(st.data())
def test_ratio_and_jaccard_match_reference(data):
    n_items, n_cat, k = 8, 3, 3
    n_users = data.draw(st.integers(2, 5))
    rng = np.random.default_rng(data.draw(st.integers(0, 2**31)))
    cats = rng.random((n_items, n_cat)) * (rng.random((n_items, n_cat)) < 0.6)
    cats[cats.sum(axis=1) == 0, 0] = 1.0
    cats /= cats.sum(axis=1, keepdims=True)
    slates = np.array([rng.permutation(n_items)[:k] for _ in range(n_users)])
    exam = rng.random(k) + 0.1
    pi = rng.dirichlet(np.ones(n_cat), n_users)
    mask = rng.random((n_users, n_cat)) < 0.5
    pairs = np.array(list(itertools.combinations(range(n_users), 2)))
    ref_ratio, ref_jac = _reference_ratio_and_jaccard(slates, cats, exam, pi, mask, pairs)
    q = exposure_distribution(slates, sp.csr_matrix(cats), exam)
    np.testing.assert_allclose(minority_ratio(q, pi, mask), ref_ratio, rtol=1e-10)
    np.testing.assert_allclose(jaccard_pairs(slates, pairs), ref_jac)


def test_config_rejects_bad_values_by_name():
    with pytest.raises(ValueError, match="niche_share"):
        SimConfig(niche_share=1.5)
    with pytest.raises(ValueError, match="fresh_slots"):
        SimConfig(fresh_slots=10, slate_size=10)
    with pytest.raises(ValueError, match="n_items"):
        SimConfig(reconsume=False, n_items=500, n_rounds=100)
    with pytest.raises(ValueError, match="n_candidates"):
        SimConfig(n_candidates=5, slate_size=10)
    with pytest.raises(ValueError, match="position-tower"):
        SimConfig(model="position-tower", train="ips")
    with pytest.raises(ValueError, match="unknown simulation parameter"):
        SimConfig().with_(colour="red")
