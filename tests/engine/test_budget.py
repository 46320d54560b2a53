"""λ from a budget (docs/design.md §9.5): lam="auto", max_miscalibration=τ against the
reference's grid search, with two attributes and shown prefixes."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp
from budget import examples
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from rerank import RerankOptions, rerank_arrays
from rerank.engine.options import AUTO_LAMBDAS
from rerank.errors import InputError
from rerank.testing import reference_beyond as bref
from rerank.testing.strategies import (
    BEYOND_OPTIONS,
    attribute_instances,
    beyond_keywords,
    instances,
    reference_attributes,
    shown_prefixes,
)

SETTINGS = settings(max_examples=examples(100), deadline=None, suppress_health_check=[HealthCheck.too_slow])


def test_grid_is_the_documented_one():
    assert AUTO_LAMBDAS == bref.AUTO_LAMBDAS


@SETTINGS
@given(data=st.data(), k=st.integers(1, 4), options=BEYOND_OPTIONS, two=st.booleans(),
       budget=st.sampled_from([0.0, 0.02, 0.1, 0.3, 1.0]))
def test_auto_lambda_equals_the_reference_and_meets_the_budget(data, k, options, two, budget):
    inst = data.draw(attribute_instances() if two else instances())
    shown = data.draw(shown_prefixes(inst, max_size=3))
    indptr, items, scores = inst.csr()
    result = rerank_arrays(indptr, items, scores, inst.matrix, np.array(inst.targets), k, "auto",
                           max_miscalibration=budget, **beyond_keywords(inst, shown), **options)
    attrs = reference_attributes(inst)
    for u in range(len(inst.users)):
        left = [j for j, item in enumerate(inst.users[u]) if item not in shown[u]]
        lam, chosen, c, seen = bref.auto_lambda(
            [inst.scores[u][j] for j in left], [inst.local_cats(u)[j] for j in left], inst.targets[u], k, budget,
            shown_cats=[inst.item_cats[i] for i in shown[u]], **attrs, **options,
        )
        assume(all(abs(x - budget) > 1e-9 for x in seen))  # no float tie at the budget's edge
        assert result.lam[u] == lam
        lo, hi = result.indptr[u], result.indptr[u + 1]
        assert result.items[lo:hi].tolist() == [inst.users[u][left[j]] for j in chosen]
        assert result.miscalibration[u] == pytest.approx(c, rel=1e-9, abs=1e-12)
        assert result.miscalibration[u] <= budget or result.lam[u] == 1.0  # the budget, or λ = 1


def test_auto_equals_a_plain_run_with_the_chosen_lambdas():
    rng = np.random.default_rng(0)
    n_users, n, n_items = 40, 12, 30
    matrix = sp.random(n_items, 4, density=0.5, random_state=1, format="csr")
    targets = rng.dirichlet(np.ones(4), n_users)
    indptr = np.arange(n_users + 1) * n
    items = np.concatenate([rng.choice(n_items, n, replace=False) for _ in range(n_users)])
    scores = rng.random(n_users * n)
    auto = rerank_arrays(indptr, items, scores, matrix, targets, k=5, lam="auto", max_miscalibration=0.2,
                         normalize="minmax")
    plain = rerank_arrays(indptr, items, scores, matrix, targets, k=5, lam=auto.lam, normalize="minmax")
    assert np.array_equal(auto.positions, plain.positions)
    assert len(set(auto.lam.tolist())) > 2  # users do differ


@pytest.mark.parametrize(
    ("fields", "message"),
    [({"lam": "auto"}, "needs max_miscalibration"), ({"lam": 0.5, "max_miscalibration": 0.1}, "lam='auto'"),
     ({"lam": "auto", "max_miscalibration": -1.0}, ">= 0"),
     ({"lam": "auto", "max_miscalibration": 0.1, "solver": "exact"}, "exact")],
)
def test_bad_budget_options(fields, message):
    with pytest.raises(InputError, match=message):
        RerankOptions(**fields)
