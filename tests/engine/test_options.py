"""RerankOptions: frozen, checked once when built; the engine's entry points take it; the
keyword call of rerank_arrays is the same call (docs/design.md §5)."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import scipy.sparse as sp

from rerank import CandidateLists, RerankOptions, rerank_arrays, rerank_lists
from rerank.bench import make_workload
from rerank.engine.divergences import DIVERGENCE_CODES
from rerank.engine.kernel import METHOD_GREEDY, METHOD_PM2, METHOD_QUOTA
from rerank.errors import InputError, InputTypeError


def test_frozen_and_checked_when_built():
    options = RerankOptions(k=5, lam=0.3, divergence="chi2", rank_weights=[3, 2, 1, 1, 1, 9], order="score")
    with pytest.raises(dataclasses.FrozenInstanceError):
        options.k = 6
    assert options.rank_weights == (3.0, 2.0, 1.0, 1.0, 1.0)  # the first k, as floats, immutable
    codes = options.validate()
    assert codes.divergence == DIVERGENCE_CODES["chi2"] and codes.order_by_score and codes.method == METHOD_GREEDY
    assert options.validate() is codes  # computed once
    assert RerankOptions(min_share=0.5).validate().method == METHOD_QUOTA
    assert RerankOptions(method="pm2").validate().method == METHOD_PM2
    assert RerankOptions(min_share=True).validate().rho == 1.0


@pytest.mark.parametrize(
    ("fields", "error", "name"),
    [
        ({"k": 0}, InputError, "k"), ({"k": 2.0}, InputTypeError, "k"), ({"lam": 1.5}, InputError, "lam"),
        ({"alpha": 1.0}, InputError, "alpha"), ({"divergence": "js"}, InputError, "divergence"),
        ({"normalize": "z"}, InputError, "normalize"), ({"order": "x"}, InputError, "order"),
        ({"safeguard": 1}, InputTypeError, "safeguard"), ({"rank_weights": [1.0]}, InputError, "rank_weights"),
        ({"method": "xquad"}, InputError, "method"), ({"pm2_theta": 2}, InputError, "pm2_theta"),
        ({"min_share": 2}, InputError, "min_share"), ({"min_share_threshold": -1}, InputError, "min_share_threshold"),
        ({"min_share": True, "method": "pm2"}, InputError, "min_share"),
        ({"solver": "exact", "method": "pm2"}, InputError, "solver='exact'"),
        ({"solver": "optimal"}, InputError, "solver"), ({"time_limit": 0}, InputError, "time_limit"),
        ({"max_enumerate": -1}, InputError, "max_enumerate"),
        ({"solver": "exact", "rank_weights": "dcg"}, InputError, "uniform rank weights"),
    ],
)
def test_a_bad_field_is_refused_naming_it(fields, error, name):
    with pytest.raises(error, match=name):
        RerankOptions(**fields)
    with pytest.raises(error, match=name):  # replace checks again
        RerankOptions().replace(**fields)


@pytest.fixture(scope="module")
def workload():
    return make_workload(200, 20, 6, seed=4)


@pytest.mark.parametrize(
    "fields",
    [{}, {"divergence": "hellinger", "normalize": "rank", "order": "score"}, {"min_share": True},
     {"method": "pm2", "pm2_theta": 0.2}, {"rank_weights": "dcg", "safeguard": False}],
)
def test_keyword_call_options_call_and_lists_call_agree(workload, fields):
    wl = workload
    by_keywords = rerank_arrays(wl.indptr, wl.items, wl.scores, wl.categories, wl.targets, k=5, lam=0.7, **fields)
    options = RerankOptions(k=5, lam=0.7, **fields)
    by_options = rerank_arrays(wl.indptr, wl.items, wl.scores, wl.categories, wl.targets, options=options)
    by_lists = rerank_lists(CandidateLists(wl.indptr, wl.items, wl.scores), wl.categories, wl.targets, options)
    for other in (by_options, by_lists):
        for field in ("indptr", "positions", "items", "objective", "used_topk"):
            np.testing.assert_array_equal(getattr(by_keywords, field), getattr(other, field))


def test_per_user_lambda_with_options(workload):
    wl = workload
    lam = np.linspace(0, 1, wl.n_users)
    options = RerankOptions(k=4, lam=None)
    with pytest.raises(InputError, match="one value per user"):
        rerank_arrays(wl.indptr, wl.items, wl.scores, wl.categories, wl.targets, options=options)
    got = rerank_arrays(wl.indptr, wl.items, wl.scores, wl.categories, wl.targets, lam=lam, options=options)
    want = rerank_arrays(wl.indptr, wl.items, wl.scores, wl.categories, wl.targets, 4, lam)
    np.testing.assert_array_equal(got.items, want.items)
    with pytest.raises(TypeError, match="not both"):
        rerank_arrays(wl.indptr, wl.items, wl.scores, wl.categories, wl.targets, options=options, k=3)


def test_candidate_lists_check_their_structure_and_normalise_dtypes():
    lists = CandidateLists([0, 2, 3], np.array([4, 1, 0], dtype=np.int32), [0.5, 0.25, 1])
    assert (lists.indptr.dtype, lists.items.dtype, lists.scores.dtype) == (np.int64, np.int64, np.float64)
    assert lists.n_users == 2 and lists.lengths().tolist() == [2, 1] and lists.owners().tolist() == [0, 0, 1]
    with pytest.raises(InputError, match="nondecreasing"):
        CandidateLists([0, 3, 2], [0, 1, 2], [1.0, 1.0, 1.0])
    with pytest.raises(InputError, match="must agree"):
        CandidateLists([0, 2], [0, 1, 2], [1.0, 1.0, 1.0])
    with pytest.raises(InputError, match="whole numbers"):
        CandidateLists([0, 2], [0.5, 1], [1.0, 1.0])
    with pytest.raises(InputTypeError, match="numeric"):
        CandidateLists([0, 2], [0, 1], ["a", "b"])
    # scores and item rows are checked where arrays enter the engine
    with pytest.raises(InputError, match="scores must be finite"):
        rerank_lists(CandidateLists([0, 2], [0, 1], [np.nan, 1.0]), sp.eye(2, format="csr"), np.full((1, 2), 0.5),
                     RerankOptions(k=1))
    with pytest.raises(InputError, match="outside the category matrix"):
        rerank_lists(CandidateLists([0, 2], [0, 5], [0.0, 1.0]), sp.eye(2, format="csr"), np.full((1, 2), 0.5),
                     RerankOptions(k=1))
