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
