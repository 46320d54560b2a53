"""The simulator's ALS candidates equal rerank.adapters.ImplicitAdapter's (same model)."""

import numpy as np
import scipy.sparse as sp
from rerank.adapters import ImplicitAdapter
from rerank.simulations.models import FactorAdapter
from threadpoolctl import threadpool_limits


def test_factor_adapter_gives_the_implicit_adapter_candidates():
    from implicit.cpu.als import AlternatingLeastSquares

    rng = np.random.default_rng(0)
    users, items = 120, 300
    matrix = sp.random(users, items, density=0.05, format="csr", random_state=1, dtype=np.float32)
    matrix.data[:] = 1.0
    with threadpool_limits(1, "blas"):
        model = AlternatingLeastSquares(factors=8, iterations=5, random_state=int(rng.integers(1000)))
        model.fit(matrix, show_progress=False)
    ours = FactorAdapter(model.user_factors, model.item_factors, matrix).candidates(None, n=25)
    theirs = ImplicitAdapter(model, matrix).candidates(None, n=25)
    assert len(ours) == len(theirs) == users * 25
    np.testing.assert_array_equal(ours["user_id"].to_numpy(), theirs["user_id"].to_numpy())
    np.testing.assert_allclose(ours["score"].to_numpy(), theirs["score"].to_numpy(), rtol=1e-4, atol=1e-5)
    same = (ours["item_id"].to_numpy() == theirs["item_id"].to_numpy()).mean()
    assert same > 0.99  # only float32 near-ties may swap places
    seen = matrix.tocoo()
    seen_pairs = set(zip(seen.row.tolist(), seen.col.tolist(), strict=True))
    assert not any((u, i) in seen_pairs for u, i in zip(ours["user_id"], ours["item_id"], strict=True))


def test_epsilon_exploration_replaces_about_epsilon_of_slots_with_fresh_unconsumed_items():
    from rerank.simulations.policies import explore

    rng = np.random.default_rng(3)
    n_users, k, n_items = 2000, 10, 60
    slates = np.array([rng.permutation(n_items)[:k] for _ in range(n_users)])
    consumed = sp.random(n_users, n_items, density=0.3, format="csr", random_state=4)
    consumed.data[:] = 1.0
    out = explore(slates, 0.2, consumed, n_items, np.random.default_rng(5))
    changed = out != slates
    # binomial tolerance: 5 s.d. of the replaced share
    assert abs(changed.mean() - 0.2) < 5 * np.sqrt(0.2 * 0.8 / changed.size)
    assert all(len(set(row)) == k for row in out)  # no duplicates within a slate
    u, r = np.nonzero(changed)
    assert not np.asarray(consumed[u, out[u, r]]).ravel().any()
