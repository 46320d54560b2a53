"""ImplicitAdapter on small real implicit fits: equal to the library's own ``recommend``, and
one test per pitfall (``-FLT_MAX`` fillers, padding, csr_array, row alignment, GPU models)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp

from rerank.testing import reference as ref

implicit = pytest.importorskip("implicit")
from contract import AdapterContract, Subject  # noqa: E402
from implicit.als import AlternatingLeastSquares  # noqa: E402
from implicit.bpr import BayesianPersonalizedRanking  # noqa: E402
from implicit.lmf import LogisticMatrixFactorization  # noqa: E402
from implicit.nearest_neighbours import (  # noqa: E402
    BM25Recommender,
    CosineRecommender,
    ItemItemRecommender,
    TFIDFRecommender,
)
from rerank.adapters import ImplicitAdapter, recommend_calibrated  # noqa: E402

from rerank import CalibratedReranker  # noqa: E402

FLT_MAX = float(np.finfo(np.float32).max)
N_USERS, N_ITEMS = 60, 40


def _training_matrix():
    rng = np.random.default_rng(0)
    dense = (rng.random((N_USERS, N_ITEMS)) < 0.15).astype(np.float32)
    dense[0, :] = 1.0  # user 0 has seen everything but items 5 and 6
    dense[0, [5, 6]] = 0.0
    dense[1, :] = 0.0  # user 1 has seen nothing
    return sp.csr_matrix(dense)


@pytest.fixture(scope="module")
def user_items():
    return _training_matrix()


MF_MODELS = {
    "als": lambda: AlternatingLeastSquares(factors=8, iterations=3, random_state=0, num_threads=1),
    "bpr": lambda: BayesianPersonalizedRanking(factors=8, iterations=5, random_state=0, num_threads=1),
    "lmf": lambda: LogisticMatrixFactorization(factors=8, iterations=5, random_state=0, num_threads=1),
}
KNN_MODELS = {
    "cosine": lambda: CosineRecommender(K=10, num_threads=1),
    "bm25": lambda: BM25Recommender(K=10, num_threads=1),
    "tfidf": lambda: TFIDFRecommender(K=10, num_threads=1),
    "itemitem": lambda: ItemItemRecommender(K=10, num_threads=1),
}


def _fit(make, user_items):
    model = make()
    if type(model) is ItemItemRecommender:  # the plain item-item model wants float64 weights
        user_items = user_items.astype(np.float64)
    model.fit(user_items, show_progress=False)
    return model


@pytest.fixture(scope="module", params=sorted(MF_MODELS))
def mf_model(request, user_items):
    return _fit(MF_MODELS[request.param], user_items)


@pytest.fixture(scope="module", params=sorted(KNN_MODELS))
def knn_model(request, user_items):
    return _fit(KNN_MODELS[request.param], user_items)


class _ImplicitContract(AdapterContract):
    """The contract on one fitted implicit model."""

    model_name = ""

    def make(self):
        user_items = _training_matrix()
        factory = {**MF_MODELS, **KNN_MODELS}[self.model_name]
        model = _fit(factory, user_items)
        if self.model_name in MF_MODELS:  # the factors' dot product, as implicit scores
            full = model.user_factors @ model.item_factors.T

            def score_of(u, i):
                return float(full[u, i])
        else:  # user_items[u] @ similarity: an item no neighbour reaches is not a candidate
            block = (user_items @ sp.csr_matrix(model.similarity)).tocsr()

            def score_of(u, i):
                row = block[u]
                hit = np.flatnonzero(row.indices == i)
                return float(row.data[hit[0]]) if hit.size else None

        def build(batch=None):
            return ImplicitAdapter(model, user_items, batch_size=batch)

        return Subject(build(), score_of, user_items, build)


class TestALSContract(_ImplicitContract):
    model_name, exact_order, rtol = "als", False, 1e-5


class TestBPRContract(_ImplicitContract):
    model_name, exact_order, rtol = "bpr", False, 1e-5


class TestLMFContract(_ImplicitContract):
    model_name, exact_order, rtol = "lmf", False, 1e-5


class TestCosineContract(_ImplicitContract):
    model_name = "cosine"


class TestBM25Contract(_ImplicitContract):
    model_name = "bm25"


class TestItemItemContract(_ImplicitContract):
    model_name = "itemitem"


def library_lists(model, user_items, users, N, *, exclude_seen=True, items=None):
    """The library's own batched recommend, cleaned of fillers/padding/seen items by hand."""
    ids, scores = model.recommend(
        np.asarray(users), user_items[users], N=N, filter_already_liked_items=exclude_seen, items=items
    )
    seen = ref.seen_sets(user_items)
    n_eligible = N_ITEMS if items is None else len(set(items))
    out = {}
    for row, u in enumerate(users):
        kept = []
        for slot, (i, s) in enumerate(zip(ids[row].tolist(), scores[row].tolist(), strict=True)):
            if s <= -FLT_MAX or i < 0 or slot >= n_eligible:
                continue
            if exclude_seen and i in seen[u]:
                continue
            kept.append((i, s))
        out[u] = kept
    return out


def assert_lists_close(got, want):
    assert got.keys() == want.keys()
    for u in want:
        assert [i for i, _ in got[u]] == [i for i, _ in want[u]], f"user {u}"
        np.testing.assert_allclose([s for _, s in got[u]], [s for _, s in want[u]], rtol=1e-6, atol=1e-7)


USERS = [7, 3, 15, 0, 1, 42]


@pytest.mark.parametrize("n", [5, 25])
def test_mf_equals_library_recommend(mf_model, user_items, n):
    adapter = ImplicitAdapter(mf_model, user_items)
    got = ref.frame_lists(adapter.candidates(USERS, n=n), USERS)
    assert_lists_close(got, library_lists(mf_model, user_items, USERS, n))


def test_drops_flt_max_fillers_when_candidates_run_out(mf_model, user_items):
    # User 0 has seen all items but 5 and 6: implicit fills the other slots with -FLT_MAX.
    _, lib_scores = mf_model.recommend(0, user_items[0], N=10)
    assert (lib_scores <= -FLT_MAX).sum() == 8
    out = ImplicitAdapter(mf_model, user_items).candidates([0], n=10)
    assert sorted(out["item_id"]) == [5, 6]
    assert (out["score"] > -FLT_MAX).all()


def test_drops_padding_when_n_exceeds_item_count(mf_model, user_items):
    lib_ids, lib_scores = mf_model.recommend(
        np.array([1]), user_items[[1]], N=N_ITEMS + 20, filter_already_liked_items=False
    )
    assert (lib_ids[0, N_ITEMS:] == 0).all() and (lib_scores[0, N_ITEMS:] == 0).all()  # the padding
    out = ImplicitAdapter(mf_model, user_items).candidates([1, 3], n=N_ITEMS + 20)
    seen = ref.seen_sets(user_items)
    for u in (1, 3):
        items = out.loc[out["user_id"] == u, "item_id"].tolist()
        assert len(items) == len(set(items)) == N_ITEMS - len(seen[u])
    no_filter = ImplicitAdapter(mf_model, user_items).candidates([1], n=500, exclude_seen=False)
    assert sorted(no_filter["item_id"]) == list(range(N_ITEMS))


def test_csr_array_accepted(mf_model, user_items):
    as_array = sp.csr_array(user_items)
    with pytest.raises(ValueError, match="CSR"):  # the library itself refuses csr_array
        mf_model.recommend(np.array([3]), as_array[[3]], N=5)
    a = ImplicitAdapter(mf_model, as_array).candidates(USERS, n=8)
    b = ImplicitAdapter(mf_model, user_items).candidates(USERS, n=8)
    pd.testing.assert_frame_equal(a, b)
    c = ImplicitAdapter(mf_model, user_items.tocoo()).candidates(USERS, n=8)
    pd.testing.assert_frame_equal(c, b)


def test_user_items_rows_follow_requested_users(mf_model, user_items):
    users = [42, 5, 17]
    with pytest.raises(ValueError, match="1 row for every user"):  # full matrix: misaligned
        mf_model.recommend(np.array(users), user_items, N=5)
    out = ImplicitAdapter(mf_model, user_items).candidates(users, n=N_ITEMS)
    dense = user_items.toarray()
    assert (dense[out["user_id"], out["item_id"]] == 0).all()  # never a user's own seen item
    for u in users:
        got = set(out.loc[out["user_id"] == u, "item_id"])
        assert got == set(np.flatnonzero(dense[u] == 0))


def test_items_restriction(mf_model, user_items):
    items = [3, 9, 11, 20, 21, 5]
    adapter = ImplicitAdapter(mf_model, user_items)
    got = ref.frame_lists(adapter.candidates(USERS, n=4, items=items), USERS)
    assert_lists_close(got, library_lists(mf_model, user_items, USERS, 4, items=items))
    assert all(i in items for u in got for i, _ in got[u])


def test_external_ids(mf_model, user_items):
    user_ids = [f"u{u}" for u in range(N_USERS)]
    item_ids = [1000 + i for i in range(N_ITEMS)]
    named = ImplicitAdapter(mf_model, user_items, user_ids=user_ids, item_ids=item_ids)
    plain = ImplicitAdapter(mf_model, user_items)
    a = named.candidates(["u3", "u7"], n=6, items=[1003, 1009, 1011, 1020])
    b = plain.candidates([3, 7], n=6, items=[3, 9, 11, 20])
    assert a["user_id"].tolist() == [f"u{u}" for u in b["user_id"]]
    assert a["item_id"].tolist() == [1000 + i for i in b["item_id"]]
    np.testing.assert_array_equal(a["score"], b["score"])
    with pytest.raises(ValueError, match="unknown user 'u999'"):
        named.candidates(["u999"])


def test_knn_equals_library_recommend(knn_model, user_items):
    adapter = ImplicitAdapter(knn_model, user_items)
    got = ref.frame_lists(adapter.candidates(USERS, n=N_ITEMS), USERS)
    want = library_lists(knn_model, user_items, USERS, N_ITEMS)
    assert got.keys() == want.keys()
    for u in USERS:  # same (item, score) pairs; within equal scores the order is ours
        g, w = sorted(got[u]), sorted(want[u])
        assert [i for i, _ in g] == [i for i, _ in w], f"user {u}"
        np.testing.assert_allclose([s for _, s in g], [s for _, s in w], rtol=1e-9)
        scores = [s for _, s in got[u]]
        assert scores == sorted(scores, reverse=True)


def test_knn_top_n_equals_library_top_n_scores(knn_model, user_items):
    adapter = ImplicitAdapter(knn_model, user_items)
    got = ref.frame_lists(adapter.candidates(USERS, n=5), USERS)
    want = library_lists(knn_model, user_items, USERS, N_ITEMS)
    for u in USERS:
        np.testing.assert_allclose([s for _, s in got[u]], [s for _, s in want[u]][:5], rtol=1e-9)


def test_knn_seen_items_are_removed(knn_model, user_items):
    # With a large N, implicit returns the user's own items with score 0.
    ids, scores = knn_model.recommend(7, user_items[7], N=N_ITEMS)
    seen = ref.seen_sets(user_items)[7]
    assert seen & set(ids.tolist())
    out = ImplicitAdapter(knn_model, user_items).candidates([7], n=N_ITEMS)
    assert not seen & set(out["item_id"])


def test_knn_items_restriction_drops_dbl_max(knn_model, user_items):
    items = [2, 4, 8, 16, 32]
    ids, scores = knn_model.recommend(7, user_items[7], N=10, items=items)
    adapter = ImplicitAdapter(knn_model, user_items)
    out = adapter.candidates([7], n=10, items=items)
    assert set(out["item_id"]) <= set(items)
    assert (out["score"] > -FLT_MAX).all()
    reachable = {i for i, s in zip(ids.tolist(), scores.tolist(), strict=True) if s > -FLT_MAX}
    assert set(out["item_id"]) == reachable - ref.seen_sets(user_items)[7]


def test_unfitted_and_unsupported_models(user_items):
    with pytest.raises(ValueError, match="not fitted"):
        ImplicitAdapter(AlternatingLeastSquares(factors=4, use_gpu=False), user_items)
    with pytest.raises(TypeError, match="ALS, BPR, LMF"):
        ImplicitAdapter(object(), user_items)
    model = _fit(KNN_MODELS["cosine"], user_items)
    with pytest.raises(ValueError, match="item-item models score from user_items"):
        ImplicitAdapter(model)


@pytest.mark.skipif(not implicit.gpu.HAS_CUDA, reason="implicit was built without CUDA / no GPU here")
def test_gpu_model_is_moved_to_cpu(user_items):  # pragma: no cover - needs a GPU
    gpu = AlternatingLeastSquares(factors=8, iterations=3, random_state=0, use_gpu=True)
    gpu.fit(user_items, show_progress=False)
    adapter = ImplicitAdapter(gpu, user_items)
    assert isinstance(adapter.model, implicit.cpu.als.AlternatingLeastSquares)
    cpu = gpu.to_cpu()
    got = ref.frame_lists(adapter.candidates(USERS, n=10), USERS)
    assert_lists_close(got, library_lists(cpu, user_items, USERS, 10))


def test_one_call_helper_with_real_model(user_items):
    model = _fit(MF_MODELS["als"], user_items)
    adapter = ImplicitAdapter(model, user_items)
    coo = user_items.tocoo()
    history = pd.DataFrame({"user_id": coo.row, "item_id": coo.col})
    cats = pd.DataFrame({"item_id": np.arange(N_ITEMS), "category": np.arange(N_ITEMS) % 4})
    users = [3, 7, 15]
    top = recommend_calibrated(
        adapter, CalibratedReranker(k=5, lam=0.0), users, n=20, history=history, item_categories=cats
    )
    plain = adapter.candidates(users, n=5)
    assert top[["user_id", "item_id"]].values.tolist() == plain[["user_id", "item_id"]].values.tolist()
    calibrated = recommend_calibrated(
        adapter, CalibratedReranker(k=5, lam=0.9), users, n=20, history=history, item_categories=cats
    )
    candidates = adapter.candidates(users, n=20)
    assert set(map(tuple, calibrated[["user_id", "item_id"]].values)) <= set(
        map(tuple, candidates[["user_id", "item_id"]].values)
    )


def test_thread_count_does_not_change_candidates(user_items):
    model = _fit(MF_MODELS["als"], user_items)
    model.num_threads = 1
    one = ImplicitAdapter(model, user_items).candidates(n=12)
    model.num_threads = 2
    two = ImplicitAdapter(model, user_items).candidates(n=12)
    pd.testing.assert_frame_equal(one, two)
