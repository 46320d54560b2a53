"""``refine="swap"`` (issue 13) against the pure-Python reference and brute force over swaps."""

from __future__ import annotations

import numba
import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp
from budget import examples
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from test_quota import scarce_instances

from rerank import CalibratedReranker, RerankOptions, rerank_arrays
from rerank.distributions import normalize_rows
from rerank.testing import reference as ref
from rerank.testing.strategies import instances

SETTINGS = settings(max_examples=examples(120), deadline=None, suppress_health_check=[HealthCheck.too_slow])
CUSTOM_WEIGHTS = [3.0, 1.0, 2.0, 0.5, 1.5, 0.7, 1.1, 0.2]
OPTIONS = st.fixed_dictionaries(
    {
        "divergence": st.sampled_from(["kl", "hellinger", "chi2"]),
        "rank_weights": st.sampled_from(["uniform", "dcg", CUSTOM_WEIGHTS]),
        "normalize": st.sampled_from([None, "minmax", "rank"]),
        "safeguard": st.booleans(),
        "alpha": st.sampled_from([0.01, 0.1, 0.5]),
    }
)
CAPS = st.sampled_from([None, None, 0, 1, 2])


def _run(inst, k, **options):
    options.setdefault("normalize", None)  # the reference takes the scores as given
    indptr, items, scores = inst.csr()
    return rerank_arrays(indptr, items, scores, inst.matrix, np.array(inst.targets), k, np.array(inst.lam), **options)


def _lists(inst, result):
    return [list(result.items[result.indptr[u] : result.indptr[u + 1]]) for u in range(len(inst.users))]


def _local(inst, u, items):
    return [inst.users[u].index(i) for i in items]


def _objective(inst, u, local, k, options):
    if not local:
        return 0.0  # an empty list (no candidates)
    s = ref.normalized(inst.scores[u], options.get("normalize"))
    weights = ref.rank_weight_list(options.get("rank_weights", "uniform"), k)
    return ref.objective(local, s, inst.local_cats(u), inst.targets[u], inst.lam[u], options.get("alpha", 0.01),
                         options.get("divergence", "kl"), weights)


def _start(inst, u, k, options):
    """The reference's starting list: the better of Steck's greedy and top-k."""
    plain = {key: v for key, v in options.items() if key != "safeguard"}
    return ref.greedy(inst.scores[u], inst.local_cats(u), inst.targets[u], k, inst.lam[u], safeguard=True, **plain)


@SETTINGS
@given(inst=instances(), k=st.integers(1, 6), options=OPTIONS, max_swaps=CAPS)
def test_refined_lists_swaps_and_cap_equal_the_reference(inst, k, options, max_swaps):
    result = _run(inst, k, refine="swap", max_swaps=max_swaps, **options)
    lists = _lists(inst, result)
    weights = ref.rank_weight_list(options["rank_weights"], k)
    for u in range(len(inst.users)):
        s = ref.normalized(inst.scores[u], options["normalize"])
        start = _start(inst, u, k, options)
        expected, swaps, cap_hit = start, 0, False
        if inst.lam[u] != 0:
            expected, swaps, cap_hit = ref.refine_swaps(
                start, s, inst.local_cats(u), inst.targets[u], inst.lam[u], options["alpha"],
                options["divergence"], weights, max_swaps,
            )
        assert lists[u] == [inst.users[u][j] for j in expected]
        assert (result.swaps[u], bool(result.swap_cap_hit[u])) == (swaps, cap_hit)
        assert result.objective[u] == pytest.approx(_objective(inst, u, expected, k, options), rel=1e-9, abs=1e-9)
        if result.used_topk[u]:  # the output is plain top-k
            assert expected == ref.top_k(inst.scores[u], len(expected)) and swaps == 0


@SETTINGS
@given(inst=instances(), k=st.integers(1, 6), options=OPTIONS, max_swaps=CAPS)
def test_refined_objective_is_at_least_the_greedys_and_top_ks(inst, k, options, max_swaps):
    refined = _lists(inst, _run(inst, k, refine="swap", max_swaps=max_swaps, **options))
    plain = {key: v for key, v in options.items() if key != "safeguard"}
    for u in range(len(inst.users)):
        got = _objective(inst, u, _local(inst, u, refined[u]), k, options)
        steck = ref.greedy(inst.scores[u], inst.local_cats(u), inst.targets[u], k, inst.lam[u], safeguard=False,
                           **plain)
        top = ref.top_k(inst.scores[u], k)
        assert got >= _objective(inst, u, steck, k, options) - 1e-9
        assert got >= _objective(inst, u, top, k, options) - 1e-9


@SETTINGS
@given(inst=instances(), k=st.integers(1, 6), options=OPTIONS)
def test_without_a_cap_no_single_swap_improves_the_output(inst, k, options):
    """Brute force over every (position, outside candidate) swap, objectives from scratch."""
    result = _run(inst, k, refine="swap", max_swaps=None, **options)
    for u, chosen in enumerate(_lists(inst, result)):
        local = _local(inst, u, chosen)
        current = _objective(inst, u, local, k, options)
        assert not result.swap_cap_hit[u]
        for r in range(len(local)):
            for c in range(len(inst.users[u])):
                if c not in local:
                    swapped = local[:r] + [c] + local[r + 1 :]
                    assert _objective(inst, u, swapped, k, options) <= current + 1e-9 * (1 + abs(current))


@SETTINGS
@given(inst=instances(), k=st.integers(1, 8), options=OPTIONS, order=st.sampled_from(["greedy", "score"]))
def test_refine_none_is_todays_output(inst, k, options, order):
    """``refine=None`` (the default) is the greedy with its safeguard, exactly as before issue 13."""
    default = _run(inst, k, order=order, **options)
    off = _run(inst, k, order=order, refine=None, **options)
    assert _lists(inst, default) == _lists(inst, off)
    np.testing.assert_array_equal(default.objective, off.objective)
    assert off.swaps is None and off.swap_cap_hit is None
    for u in range(len(inst.users)):
        expected = ref.greedy(inst.scores[u], inst.local_cats(u), inst.targets[u], k, inst.lam[u], order=order,
                              **options)
        assert _lists(inst, off)[u] == [inst.users[u][j] for j in expected]


@SETTINGS
@given(inst=instances(), k=st.integers(1, 6), options=OPTIONS)
def test_order_score_resorts_the_refined_set(inst, k, options):
    by_pick = _lists(inst, _run(inst, k, refine="swap", **options))
    by_score = _lists(inst, _run(inst, k, refine="swap", order="score", **options))
    for u in range(len(inst.users)):
        local = _local(inst, u, by_pick[u])
        expected = sorted(local, key=lambda j, u=u: (-inst.scores[u][j], j))
        assert by_score[u] == [inst.users[u][j] for j in expected]


@settings(max_examples=examples(60), deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    inst=instances(max_users=3, max_n=7) | scarce_instances(),
    k=st.integers(1, 5),
    divergence=st.sampled_from(["kl", "hellinger", "chi2"]),
    rank_weights=st.sampled_from(["uniform", "dcg"]),
    max_swaps=CAPS,
)
def test_quota_mode_swaps_keep_the_best_reachable_quota_units(inst, k, divergence, rank_weights, max_swaps):
    options = {"divergence": divergence, "rank_weights": rank_weights}
    result = _run(inst, k, min_share=True, refine="swap", max_swaps=max_swaps, **options)
    plain = _run(inst, k, min_share=True, **options)
    for u, chosen in enumerate(_lists(inst, result)):
        r = ref.quotas(inst.targets[u], k)
        cats = inst.local_cats(u)
        expected, best = ref.quota_greedy(inst.scores[u], cats, inst.targets[u], k, inst.lam[u], r,
                                           refine="swap", max_swaps=max_swaps, **options)
        assert chosen == [inst.users[u][j] for j in expected]
        assert ref.met(_local(inst, u, chosen), cats, r) == best
        assert result.quota_shortfall[u] == plain.quota_shortfall[u]
        assert result.objective[u] >= plain.objective[u] - 1e-9 * (1 + abs(plain.objective[u]))


def _large_case(seed, n_users=2000, n=30, n_items=400, n_cat=12):
    rng = np.random.default_rng(seed)
    cats = normalize_rows(sp.random(n_items, n_cat, density=0.15, random_state=seed, format="csr"))
    indptr = np.arange(n_users + 1) * n
    items = np.concatenate([rng.choice(n_items, n, replace=False) for _ in range(n_users)])
    scores = rng.integers(0, 5, n_users * n).astype(float)  # many ties
    targets = rng.dirichlet(np.ones(n_cat), n_users)
    return indptr, items, scores, cats, targets, rng.random(n_users)


@pytest.mark.parametrize(
    "options",
    [{"divergence": "kl"}, {"divergence": "hellinger", "rank_weights": "dcg"}, {"divergence": "chi2"},
     {"min_share": True}, {"max_swaps": 1}],
)
def test_refined_lists_do_not_depend_on_the_thread_count(options):
    if numba.config.NUMBA_NUM_THREADS < 2:
        pytest.skip("machine has a single numba thread")
    args = _large_case(3)
    runs = [rerank_arrays(*args[:5], 10, args[5], refine="swap", n_threads=t, **options)
            for t in (1, 2)]
    np.testing.assert_array_equal(runs[0].items, runs[1].items)
    np.testing.assert_array_equal(runs[0].objective, runs[1].objective)
    np.testing.assert_array_equal(runs[0].swaps, runs[1].swaps)
    np.testing.assert_array_equal(runs[0].swap_cap_hit, runs[1].swap_cap_hit)
    assert runs[0].swaps.sum() > 0  # the case exercises the refinement


def test_refinement_improves_many_users_of_a_random_workload_and_reports_cap_hits():
    args = _large_case(5)
    plain = rerank_arrays(*args[:5], 10, args[5])
    refined = rerank_arrays(*args[:5], 10, args[5], refine="swap", max_swaps=None)
    capped = rerank_arrays(*args[:5], 10, args[5], refine="swap", max_swaps=1)
    assert np.all(refined.objective >= plain.objective - 1e-12 * (1 + np.abs(plain.objective)))
    assert np.mean(refined.objective > plain.objective) > 0.1
    assert not refined.swap_cap_hit.any()
    assert capped.swaps.max() <= 1
    np.testing.assert_array_equal(capped.swap_cap_hit, refined.swaps > 1)


def _frames():
    item_categories = pd.DataFrame(
        {"item_id": ["m1", "m2", "m3", "m4", "m5", "m6"], "category": ["drama", "drama", "drama", "docu", "docu",
                                                                        "comedy"]}
    )
    history = pd.DataFrame({"user_id": ["a"] * 4 + ["b"] * 2, "item_id": ["m1", "m4", "m5", "m6", "m1", "m2"]})
    candidates = pd.DataFrame(
        {
            "user_id": ["a"] * 6 + ["b"] * 3,
            "item_id": ["m1", "m2", "m3", "m4", "m5", "m6", "m1", "m2", "m4"],
            "score": [0.9, 0.8, 0.7, 0.6, 0.1, 0.05, 0.9, 0.5, 0.4],
        }
    )
    return history, item_categories, candidates


def test_the_frame_api_reports_swaps_and_cap_hits_per_user():
    history, item_categories, candidates = _frames()
    reranker = CalibratedReranker(k=3, lam=0.9, refine="swap", max_swaps=None).fit(history, item_categories)
    out = reranker.rerank(candidates)
    swaps = reranker.report_.swaps
    assert swaps.index.name == "user_id" and list(swaps.index) == ["a", "b"]
    assert reranker.report_.swap_cap_hit.to_dict() == {"a": False, "b": False}
    capped = CalibratedReranker(k=3, lam=0.9, refine="swap", max_swaps=0).fit(history, item_categories)
    capped.rerank(candidates)
    assert capped.report_.swaps.to_dict() == {"a": 0, "b": 0}
    assert capped.report_.swap_cap_hit.to_dict() == {u: bool(swaps[u] > 0) for u in swaps.index}
    # the same lists as the array entry point
    arrays = rerank_arrays(
        np.array([0, 6, 9]), reranker.item_rows(candidates["item_id"]), candidates["score"].to_numpy(),
        reranker.category_matrix_, reranker.targets_, 3, 0.9, target_rows=reranker.target_rows(["a", "b"])[0],
        refine="swap", max_swaps=None,
    )
    assert list(out["item_id"]) == list(candidates["item_id"].to_numpy()[arrays.positions])
    assert swaps.tolist() == arrays.swaps.tolist()
    plain = CalibratedReranker(k=3, lam=0.9).fit(history, item_categories)
    plain.rerank(candidates)
    assert plain.report_.swaps is None and plain.report_.swap_cap_hit is None


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"refine": "2opt"}, "refine must be None or 'swap'"),
        ({"refine": "swap", "max_swaps": -1}, "max_swaps"),
        ({"refine": "swap", "max_swaps": 2.5}, "max_swaps"),
        ({"refine": "swap", "max_swaps": True}, "max_swaps"),
        ({"refine": "swap", "method": "pm2"}, "use refine=None with method='pm2'"),
    ],
)
def test_bad_refine_options_are_refused_in_one_line(options, message):
    with pytest.raises(ValueError, match=message) as info:
        rerank_arrays(np.array([0, 2]), np.array([0, 1]), np.array([1.0, 0.5]), sp.csr_matrix(np.eye(2)),
                      np.array([[0.5, 0.5]]), 1, 0.5, **options)
    assert "\n" not in str(info.value)
    with pytest.raises(ValueError, match=message):
        CalibratedReranker(**options).build_options()
    with pytest.raises(ValueError, match=message):
        RerankOptions(**options)
