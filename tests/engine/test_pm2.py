"""``method="pm2"`` (PM-2, Dang & Croft 2012, with a relevance term) against a pure-Python reference."""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp
from budget import examples
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from rerank import rerank_arrays
from rerank.testing import reference as ref
from rerank.testing.strategies import instances

SETTINGS = settings(max_examples=examples(100), deadline=None, suppress_health_check=[HealthCheck.too_slow])


def _lists(inst, k, **options):
    indptr, items, scores = inst.csr()
    result = rerank_arrays(
        indptr, items, scores, inst.matrix, np.array(inst.targets), k, np.array(inst.lam), method="pm2", **options
    )
    return [list(result.items[result.indptr[u] : result.indptr[u + 1]]) for u in range(len(inst.users))]


@SETTINGS
@given(
    inst=instances(max_users=3, max_n=8),
    k=st.integers(1, 8),
    theta=st.sampled_from([0.5, 0.0, 0.8, 1.0]),
    rank_weights=st.sampled_from(["uniform", "dcg"]),
    normalize=st.sampled_from([None, "minmax", "rank"]),
)
def test_pm2_equals_reference(inst, k, theta, rank_weights, normalize):
    got = _lists(inst, k, pm2_theta=theta, rank_weights=rank_weights, normalize=normalize)
    for u, chosen in enumerate(got):
        expected = ref.pm2(inst.scores[u], inst.local_cats(u), inst.targets[u], k, inst.lam[u], theta,
                            rank_weights, normalize)
        assert chosen == [inst.users[u][j] for j in expected]


@SETTINGS
@given(inst=instances(max_users=3, max_n=8, lam=0.0), k=st.integers(1, 8))
def test_pm2_with_lambda_zero_is_top_k(inst, k):
    for u, chosen in enumerate(_lists(inst, k, normalize=None)):
        assert chosen == [inst.users[u][j] for j in ref.top_k(inst.scores[u], k)]


@settings(max_examples=examples(100), deadline=None)
@given(
    votes=st.lists(st.integers(1, 20), min_size=2, max_size=5),
    k=st.integers(1, 12),
    seed=st.integers(0, 2**16),
)
def test_pure_pm2_apportions_seats_by_sainte_lague(votes, k, seed):
    """λ=1, θ=1, single-category items, k of each: the category counts are a Sainte-Laguë
    apportionment of k seats, i.e. max_g v_g/(2c_g+1) ≤ min_{h: c_h>0} v_h/(2c_h-1)."""
    n_cat = len(votes)
    p = np.array(votes, dtype=float) / sum(votes)
    n = k * n_cat
    cat_of = np.repeat(np.arange(n_cat), k)
    matrix = sp.csr_matrix((np.ones(n), (np.arange(n), cat_of)), shape=(n, n_cat))
    scores = np.random.default_rng(seed).random(n)
    out = rerank_arrays(np.array([0, n]), np.arange(n), scores, matrix, p[None, :], k, 1.0, method="pm2",
                        pm2_theta=1.0).items
    counts = np.bincount(cat_of[out], minlength=n_cat)
    assert counts.sum() == k
    next_quotient = max(p[g] / (2 * counts[g] + 1) for g in range(n_cat))
    last_quotient = min(p[h] / (2 * counts[h] - 1) for h in range(n_cat) if counts[h] > 0)
    assert next_quotient <= last_quotient * (1 + 1e-12)


def test_pm2_output_is_a_subset_of_length_min_k_n():
    rng = np.random.default_rng(0)
    matrix = sp.csr_matrix(rng.random((20, 4)) * (rng.random((20, 4)) < 0.4))
    indptr = np.array([0, 3, 13])
    items = np.concatenate([rng.choice(20, 3, replace=False), rng.choice(20, 10, replace=False)])
    result = rerank_arrays(indptr, items, rng.random(13), matrix, rng.dirichlet(np.ones(4), 2), 5,
                           [0.3, 0.9], method="pm2")
    out_indptr, out = result.indptr, result.items
    assert list(np.diff(out_indptr)) == [3, 5]
    assert set(out[:3]) == set(items[:3])
    assert len(set(out[3:])) == 5 and set(out[3:]) <= set(items[3:])
