"""Quota mode (``min_share``, docs/design.md §4.3) against brute-force enumeration."""

from __future__ import annotations

from fractions import Fraction

import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp
from budget import examples
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from rerank import rerank_arrays
from rerank.engine.feasibility import max_quota_met, quota_matrix
from rerank.testing import reference as ref
from rerank.testing.strategies import Instance, instances, memberships, target

SETTINGS = settings(max_examples=examples(80), deadline=None, suppress_health_check=[HealthCheck.too_slow])
SHARES = st.sampled_from([True, 1.0, 0.5, 0.8])
THRESHOLDS = st.sampled_from([0.0, 0.0, 0.15, 0.3])


@st.composite
def scarce_instances(draw):
    """Few categories carried by few items, large quotas: feasible and infeasible cases both."""
    n_cat = draw(st.integers(1, 4))
    n_items = draw(st.integers(1, 9))
    cats = draw(memberships(n_items, n_cat, max_cats=2))
    n_users = draw(st.integers(1, 3))
    users, scores, targets, lams = [], [], [], []
    for _ in range(n_users):
        n = draw(st.integers(0, n_items))
        users.append(draw(st.permutations(range(n_items)))[:n])
        scores.append([draw(st.floats(-2, 2, allow_nan=False)) for _ in range(n)])
        targets.append(draw(target(n_cat)))
        lams.append(draw(st.sampled_from([0.0, 0.3, 0.9, 1.0])))
    return Instance(n_items, n_cat, cats, users, scores, targets, lams)


def _run(inst, k, **options):
    indptr, items, scores = inst.csr()
    return rerank_arrays(
        indptr, items, scores, inst.matrix, np.array(inst.targets), k, np.array(inst.lam),
        **options,
    )


def _lists(inst, result):
    return [list(result.items[result.indptr[u] : result.indptr[u + 1]]) for u in range(len(inst.users))]


def _local(inst, u, items):
    return [inst.users[u].index(i) for i in items]


@SETTINGS
@given(inst=instances(max_users=3, max_n=8) | scarce_instances(), k=st.integers(1, 6), share=SHARES,
       threshold=THRESHOLDS)
def test_quotas_are_met_whenever_some_subset_meets_them(inst, k, share, threshold):
    """docs/design.md §4.3: met(L) = max over all subsets; all quotas met when feasible; shortfall exact."""
    result = _run(inst, k, min_share=share, min_share_threshold=threshold)
    rho = 1.0 if share is True else share
    for u, chosen in enumerate(_lists(inst, result)):
        n = len(inst.users[u])
        cats = inst.local_cats(u)
        r = ref.quotas(inst.targets[u], k, rho, threshold)
        assert len(chosen) == min(k, n) and len(set(chosen)) == len(chosen)
        assert set(chosen) <= set(inst.users[u])
        best = ref.best_met(n, k, cats, r)
        got = ref.met(_local(inst, u, chosen), cats, r)
        assert got == best
        assert result.quota_shortfall[u] == sum(r) - best
        if best == sum(r):  # feasible: every single quota is met
            counts = [sum(1 for j in _local(inst, u, chosen) if cats[j].get(g, 0) > 0) for g in range(inst.n_cat)]
            assert all(c >= rg for c, rg in zip(counts, r, strict=True))


@SETTINGS
@given(
    inst=instances(max_users=3, max_n=7) | scarce_instances(),
    k=st.integers(1, 5),
    divergence=st.sampled_from(["kl", "hellinger", "chi2"]),
    rank_weights=st.sampled_from(["uniform", "dcg"]),
    normalize=st.sampled_from([None, "minmax"]),
    safeguard=st.booleans(),
)
def test_quota_greedy_equals_the_brute_force_reference(inst, k, divergence, rank_weights, normalize, safeguard):
    """The exact list: Steck's greedy over candidates that keep the best reachable quotas reachable."""
    options = {"divergence": divergence, "rank_weights": rank_weights, "normalize": normalize, "safeguard": safeguard}
    result = _run(inst, k, min_share=True, **options)
    for u, chosen in enumerate(_lists(inst, result)):
        r = ref.quotas(inst.targets[u], k)
        expected, _ = ref.quota_greedy(inst.scores[u], inst.local_cats(u), inst.targets[u], k, inst.lam[u], r,
                                        **options)
        assert chosen == [inst.users[u][j] for j in expected]


@SETTINGS
@given(inst=instances(max_users=3, max_n=8), k=st.integers(1, 6), safeguard=st.booleans())
def test_without_active_quotas_it_is_the_plain_greedy(inst, k, safeguard):
    """A threshold above every share protects nothing: the output is Steck's greedy."""
    quota = _run(inst, k, min_share=True, min_share_threshold=1.0, safeguard=safeguard)
    plain = _run(inst, k, safeguard=safeguard)
    exact_one = [u for u in range(len(inst.users)) if 1.0 not in inst.targets[u]]  # p_g = 1 stays protected
    for u in exact_one:
        assert _lists(inst, quota)[u] == _lists(inst, plain)[u]
        assert quota.quota_shortfall[u] == 0


@SETTINGS
@given(inst=instances(max_users=3, max_n=8) | scarce_instances(), k=st.integers(1, 6), threshold=THRESHOLDS)
def test_feasibility_flow_brackets_and_exact_maximum(inst, k, threshold):
    indptr, items, _ = inst.csr()
    quotas = quota_matrix(np.array(inst.targets), k, 1.0, threshold)
    result = max_quota_met(indptr, items, inst.matrix, quotas, np.arange(len(inst.users)), k)
    for u in range(len(inst.users)):
        r = ref.quotas(inst.targets[u], k, 1.0, threshold)
        assert list(quotas[u]) == r
        best = ref.best_met(len(inst.users[u]), k, inst.local_cats(u), r)
        assert result.met[u] == best
        assert result.flow[u] <= best <= result.upper[u]
        assert result.required[u] == sum(r)
        assert bool(result.feasible[u]) == (best == sum(r))


def _two_category_item_case():
    """k=2, p=(1/2, 1/2): one item carries both categories, the other none."""
    matrix = sp.csr_matrix(np.array([[0.5, 0.5], [0.0, 0.0], [0.0, 0.0]]))
    return np.array([0, 3]), np.arange(3), np.array([0.1, 0.9, 0.8]), matrix, np.array([[0.5, 0.5]])


def test_an_item_with_two_categories_counts_for_both_quotas():
    """The slot-to-item matching says 1 unit; membership makes both quotas feasible."""
    indptr, items, scores, matrix, targets = _two_category_item_case()
    feas = max_quota_met(indptr, items, matrix, quota_matrix(targets, 2, 1.0), np.array([0]), 2)
    assert feas.flow[0] == 1 and feas.met[0] == 2 and feas.feasible[0]
    result = rerank_arrays(indptr, items, scores, matrix, targets, 2, 0.0, min_share=True)
    assert 0 in result.items  # λ=0 would pick items 1, 2; the quota forces the two-category item
    assert result.quota_shortfall[0] == 0


def test_infeasible_quotas_report_the_shortfall():
    """p = (0.5, 0.5), k = 4: quotas (2, 2) but only one candidate carries category 1."""
    matrix = sp.csr_matrix(np.array([[1.0, 0.0], [1.0, 0.0], [1.0, 0.0], [0.0, 1.0], [1.0, 0.0]]))
    result = rerank_arrays(np.array([0, 5]), np.arange(5), np.array([5.0, 4, 3, 0, 2]), matrix,
                           np.array([[0.5, 0.5]]), 4, 0.0, min_share=True)
    assert result.quota_shortfall[0] == 1
    assert 3 in result.items


def test_per_user_lambda_in_quota_mode_matches_reference():
    rng = np.random.default_rng(7)
    cats = [{0: 1.0}, {1: 1.0}, {0: 0.5, 2: 0.5}, {2: 1.0}, {1: 0.5, 2: 0.5}, {0: 1.0}, {}, {1: 1.0}]
    users = [list(rng.permutation(8)[:6]) for _ in range(4)]
    scores = [list(rng.normal(size=6)) for _ in range(4)]
    targets = [[0.6, 0.2, 0.2], [0.1, 0.1, 0.8], [0.34, 0.33, 0.33], [0.5, 0.5, 0.0]]
    lam = [0.0, 0.4, 0.9, 1.0]
    inst = Instance(8, 3, cats, users, scores, targets, lam)
    result = _run(inst, 5, min_share=True, normalize=None)
    for u, chosen in enumerate(_lists(inst, result)):
        r = ref.quotas(targets[u], 5)
        expected, _ = ref.quota_greedy(scores[u], inst.local_cats(u), targets[u], 5, lam[u], r)
        assert chosen == [users[u][j] for j in expected]


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"min_share": 1.5}, "min_share"),
        ({"min_share": "yes"}, "min_share"),
        ({"min_share": True, "min_share_threshold": 2.0}, "min_share_threshold"),
        ({"min_share": True, "method": "pm2"}, "pm2"),
        ({"min_share": True, "solver": "exact"}, "exact"),
    ],
)
def test_bad_quota_options_are_named(options, message):
    indptr, items, scores, matrix, targets = _two_category_item_case()
    with pytest.raises(ValueError, match=message):
        rerank_arrays(indptr, items, scores, matrix, targets, 2, 0.5, **options)



def _frames():
    import pandas as pd

    item_categories = pd.DataFrame(
        {"item_id": [1, 2, 3, 4, 5, 6, 6], "category": ["drama", "drama", "drama", "docu", "drama", "docu", "drama"]}
    )
    # user "a": 70% drama, 30% docu; user "b": only drama history
    history = pd.DataFrame({"user_id": ["a"] * 10 + ["b"] * 2, "item_id": [1] * 7 + [4] * 3 + [1, 2]})
    candidates = pd.DataFrame(
        {
            "user_id": ["a"] * 6 + ["b"] * 3,
            "item_id": [1, 2, 3, 5, 4, 6, 1, 2, 4],
            "score": [0.9, 0.8, 0.7, 0.6, 0.1, 0.05, 0.9, 0.5, 0.4],
        }
    )
    return history, item_categories, candidates


def test_calibrated_reranker_quota_mode_and_shortfall_report():
    from rerank import CalibratedReranker

    history, item_categories, candidates = _frames()
    reranker = CalibratedReranker(k=5, lam=0.0, min_share=True).fit(history, item_categories)
    out = reranker.rerank(candidates)
    a = out[out["user_id"] == "a"]
    # p(docu|a) = 0.3 → quota ⌊5 · 0.3⌋ = 1 docu item although λ=0 ranks by score alone
    assert a["item_id"].isin([4, 6]).sum() >= 1
    shortfall = reranker.report_.quota_shortfall
    assert shortfall.index.name == "user_id"
    # user b: p(drama) = 1 → quota 5, but only 3 candidates, 2 of them drama → 3 units short
    assert shortfall.to_dict() == {"a": 0, "b": 3}
    plain = CalibratedReranker(k=5, lam=0.0).fit(history, item_categories)
    plain.rerank(candidates)
    assert plain.report_.quota_shortfall is None


def test_calibrated_reranker_reports_infeasible_quota():
    from rerank import CalibratedReranker

    history, item_categories, candidates = _frames()
    candidates = candidates[~candidates["item_id"].isin([4, 6]) | (candidates["user_id"] == "b")]
    reranker = CalibratedReranker(k=4, lam=0.5, min_share=True).fit(history, item_categories)
    reranker.rerank(candidates)
    # user a: ⌊4·0.7⌋ = 2 drama, ⌊4·0.3⌋ = 1 docu, no docu candidate left → 1 unit short
    assert reranker.report_.quota_shortfall["a"] == 1


def test_calibrated_reranker_rejects_bad_options():
    from rerank import CalibratedReranker

    with pytest.raises(ValueError, match="min_share"):
        CalibratedReranker(min_share=2).build_options()
    with pytest.raises(ValueError, match="method"):
        CalibratedReranker(method="xquad").build_options()
    with pytest.raises(ValueError, match="uniform rank weights"):
        CalibratedReranker(solver="exact", rank_weights="dcg").build_options()


@pytest.mark.parametrize("options", [{"min_share": True}, {"min_share": 0.5, "min_share_threshold": 0.2},
                                     {"method": "pm2"}])
def test_quota_and_pm2_do_not_depend_on_the_thread_count(options):
    import numba

    rng = np.random.default_rng(11)
    n_items, n_cat, n_users, n = 300, 8, 300, 30
    member = rng.random((n_items, n_cat)) < 0.25
    matrix = sp.csr_matrix(member / np.maximum(member.sum(axis=1, keepdims=True), 1))
    indptr = np.arange(n_users + 1) * n
    items = np.concatenate([rng.choice(n_items, n, replace=False) for _ in range(n_users)])
    scores = rng.random(items.size)
    targets = rng.dirichlet(np.ones(n_cat), n_users)
    lam = rng.random(n_users)
    runs = [
        rerank_arrays(indptr, items, scores, matrix, targets, 10, lam, n_threads=t, **options)
        for t in sorted({1, numba.config.NUMBA_NUM_THREADS})
    ]
    for other in runs[1:]:
        assert np.array_equal(runs[0].items, other.items)
        if runs[0].quota_shortfall is not None:
            assert np.array_equal(runs[0].quota_shortfall, other.quota_shortfall)


@settings(max_examples=examples(200), deadline=None)
@given(share=st.fractions(min_value=0, max_value=1, max_denominator=100), k=st.integers(1, 100),
       rho_num=st.integers(1, 4))
@example(share=Fraction(29, 100), k=100, rho_num=4)  # 0.29 * 100 = 28.999999999999996
@example(share=Fraction(15, 22), k=22, rho_num=4)
@example(share=Fraction(13, 23), k=23, rho_num=4)
def test_quotas_are_floors_in_exact_arithmetic(share, k, rho_num):
    """``r_g = ⌊ρ k p_g⌋`` computed on the rationals the float shares stand for: a share like
    29/100 (float 0.29, and 0.29 × 100 = 28.999999999999996) still gets its 29 slots."""
    rho = Fraction(rho_num, 4)
    got = quota_matrix(np.array([[float(share)]]), k, float(rho))[0, 0]
    assert got == (rho * k * share).__floor__()


def test_a_share_whose_float_falls_just_below_an_integer_gets_its_full_quota():
    """History of 29 items of category 0 and 71 of category 1, k = 100: 29 and 71 slots."""
    from rerank import CalibratedReranker

    items = [f"i{j}" for j in range(200)]
    cats = pd.DataFrame({"item_id": items, "category": ["a"] * 100 + ["b"] * 100})
    history = pd.DataFrame({"user_id": "u", "item_id": items[:29] + items[100:171]})
    # candidates: category b scores higher, so without quotas b would take more than 71 slots
    candidates = pd.DataFrame({"user_id": "u", "item_id": items, "score": [0.0] * 100 + [1.0] * 100})
    out = CalibratedReranker(k=100, lam=0.0, min_share=True).fit(history, cats).rerank(candidates)
    counts = out["item_id"].map(dict(zip(cats["item_id"], cats["category"], strict=True))).value_counts()
    assert counts["a"] == 29 and counts["b"] == 71
