"""``solver="exact"`` against brute-force enumeration in pure Python (docs/design.md §4.4)."""

from __future__ import annotations

import os

import numpy as np
import pytest
import scipy.sparse as sp
from budget import examples
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from rerank import rerank_arrays
from rerank.testing import reference as ref
from rerank.testing.strategies import instances

# EXACT_EXAMPLES=1000 runs a longer search locally; CI uses the default.
SETTINGS = settings(
    max_examples=examples(int(os.environ.get("EXACT_EXAMPLES", 60))),
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)


def _solve(inst, k, **options):
    indptr, items, scores = inst.csr()
    return rerank_arrays(
        indptr, items, scores, inst.matrix, np.array(inst.targets), k, np.array(inst.lam),
        **options,
    )


def _check_against_brute_force(inst, k, divergence, normalize, alpha, rel_tol, **options):
    exact = _solve(inst, k, divergence=divergence, normalize=normalize, alpha=alpha, solver="exact", **options)
    greedy = _solve(inst, k, divergence=divergence, normalize=normalize, alpha=alpha)
    for u in range(len(inst.users)):
        chosen_items = list(exact.items[exact.indptr[u] : exact.indptr[u + 1]])
        n = len(inst.users[u])
        assert len(chosen_items) == min(k, n)
        assert len(set(chosen_items)) == len(chosen_items)
        assert set(chosen_items) <= set(inst.users[u])
        if n == 0:
            continue
        s = ref.normalized(inst.scores[u], normalize)
        cats = inst.local_cats(u)
        local = [inst.users[u].index(i) for i in chosen_items]
        weights = [1.0] * k
        got = ref.objective(local, s, cats, inst.targets[u], inst.lam[u], alpha, divergence, weights)
        best = ref.brute_force_best(s, cats, inst.targets[u], k, inst.lam[u], alpha, divergence)
        tol = rel_tol * max(1.0, abs(best))
        assert got <= best + 1e-9 * max(1.0, abs(best))  # sanity of the reference
        assert got >= best - tol, (u, got, best, exact.gap[u])
        assert exact.objective[u] == pytest.approx(got, rel=1e-9, abs=1e-12)
        # docs/design.md §4.4: never below the greedy (with its safeguard) on the same objective
        greedy_local = [inst.users[u].index(i) for i in greedy.items[greedy.indptr[u] : greedy.indptr[u + 1]]]
        greedy_obj = ref.objective(greedy_local, s, cats, inst.targets[u], inst.lam[u], alpha, divergence, weights)
        assert got >= greedy_obj - 1e-12 * max(1.0, abs(greedy_obj))
        assert 0.0 <= exact.gap[u] <= 1e-6


@SETTINGS
@given(
    inst=instances(max_users=3, max_n=8, max_cat=4),
    k=st.integers(1, 5),
    divergence=st.sampled_from(["kl", "chi2", "hellinger"]),
    normalize=st.sampled_from([None, "minmax", "rank"]),
    alpha=st.sampled_from([0.01, 0.2]),
)
def test_enumeration_route_reaches_the_brute_force_optimum(inst, k, divergence, normalize, alpha):
    _check_against_brute_force(inst, k, divergence, normalize, alpha, rel_tol=1e-9)


@SETTINGS
@given(
    inst=instances(max_users=2, max_n=8, max_cat=4),
    k=st.integers(1, 5),
    divergence=st.sampled_from(["kl", "chi2"]),
    normalize=st.sampled_from([None, "minmax"]),
    alpha=st.sampled_from([0.01, 0.2]),
)
def test_milp_route_reaches_the_optimum_within_its_certified_gap(inst, k, divergence, normalize, alpha):
    """max_enumerate=0 forces the outer-approximation MILP on every user that has a choice."""
    _check_against_brute_force(inst, k, divergence, normalize, alpha, rel_tol=2e-6, max_enumerate=0)


def test_milp_certifies_an_optimum_of_zero():
    """Found by an unseeded run: the optimum is 0 (the second item matches the target exactly,
    scores are 0), and HiGHS's absolute tolerance left UB ≈ 1e-10. A relative gap floored at
    1e-9 reported 0.1 for this exact optimum; the gap must certify it."""
    matrix = sp.csr_matrix(np.array([[1.0, 0.0], [0.5, 0.5]]))
    for divergence in ("kl", "chi2"):
        result = rerank_arrays(np.array([0, 2]), np.array([0, 1]), np.zeros(2), matrix, np.array([[0.5, 0.5]]), 1,
                               0.2, divergence=divergence, normalize=None, solver="exact", max_enumerate=0)
        assert list(result.items) == [1] and result.objective[0] == pytest.approx(0.0, abs=1e-12)
        assert result.gap[0] <= 1e-6


def _multi_category_instance(seed: int, n: int, n_cat: int = 6):
    rng = np.random.default_rng(seed)
    rows, cols = [], []
    for i in range(n):
        for g in rng.choice(n_cat, rng.integers(1, 4), replace=False):
            rows.append(i)
            cols.append(int(g))
    matrix = sp.csr_matrix((np.ones(len(rows)), (rows, cols)), shape=(n, n_cat))
    matrix = sp.csr_matrix(matrix.multiply(1.0 / matrix.sum(axis=1)))
    target = rng.dirichlet(np.full(n_cat, 0.5))
    return matrix, rng.random(n), target


@pytest.mark.parametrize("divergence", ["kl", "chi2"])
def test_milp_and_enumeration_agree_on_a_mid_size_instance(divergence):
    """n=16, k=5 (4368 subsets): both routes must find the same optimal value."""
    matrix, scores, target = _multi_category_instance(3, 16)
    args = (np.array([0, 16]), np.arange(16), scores, matrix, target[None, :], 5, 0.9)
    enum = rerank_arrays(*args, divergence=divergence, solver="exact")
    milp = rerank_arrays(*args, divergence=divergence, solver="exact", max_enumerate=0)
    assert enum.gap[0] == 0.0
    assert milp.gap[0] <= 1e-6
    assert milp.objective[0] == pytest.approx(enum.objective[0], rel=2e-6)


def test_order_score_lists_the_optimal_set_by_score():
    matrix, scores, target = _multi_category_instance(5, 12)
    out = rerank_arrays(
        np.array([0, 12]), np.arange(12), scores, matrix, target[None, :], 4, 0.95, solver="exact", order="score"
    ).items
    assert list(scores[out]) == sorted(scores[out], reverse=True)


def test_exact_needs_uniform_rank_weights():
    matrix, scores, target = _multi_category_instance(1, 6)
    with pytest.raises(ValueError, match="uniform rank weights"):
        rerank_arrays(np.array([0, 6]), np.arange(6), scores, matrix, target[None, :], 3, 0.5,
                      rank_weights="dcg", solver="exact")


def test_bad_solver_and_time_limit_are_named():
    matrix, scores, target = _multi_category_instance(1, 6)
    args = (np.array([0, 6]), np.arange(6), scores, matrix, target[None, :], 3, 0.5)
    with pytest.raises(ValueError, match="solver"):
        rerank_arrays(*args, solver="optimal")
    with pytest.raises(ValueError, match="time_limit"):
        rerank_arrays(*args, solver="exact", time_limit=0)


def test_hellinger_beyond_enumeration_is_refused_with_the_user_row():
    matrix, scores, target = _multi_category_instance(2, 10)
    with pytest.raises(ValueError, match="user row 0"):
        rerank_arrays(np.array([0, 10]), np.arange(10), scores, matrix, target[None, :], 3, 0.5,
                      divergence="hellinger", solver="exact", max_enumerate=10)
