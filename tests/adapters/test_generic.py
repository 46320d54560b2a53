"""ScoreMatrixAdapter / CallableAdapter and the shared contract, against a pure-Python top-n."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp
from budget import examples
from contract import AdapterContract, Subject
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from rerank.adapters import (
    CallableAdapter,
    ScoreMatrixAdapter,
    interaction_matrix,
    recommend_calibrated,
)

from rerank import CalibratedReranker
from rerank.testing import reference as ref

SETTINGS = settings(max_examples=examples(60), deadline=None, suppress_health_check=[HealthCheck.too_slow])


# ----------------------------------------------------------------------------- the contract
RNG = np.random.default_rng(21)
SCORES = RNG.integers(-3, 4, (6, 11)).astype(np.float64)  # few values: ties everywhere
STORED = RNG.random(SCORES.shape) < 0.6
SEEN = sp.csr_matrix((RNG.random(SCORES.shape) < 0.3).astype(np.float32))


class TestDenseScoreMatrix(AdapterContract):
    def make(self):
        def build(batch=None):
            return ScoreMatrixAdapter(SCORES, user_items=SEEN, batch_size=batch)

        return Subject(build(), lambda u, i: SCORES[u, i], SEEN, build)


class TestSparseScoreMatrix(AdapterContract):
    def make(self):
        matrix = sp.csr_matrix((SCORES[STORED], np.nonzero(STORED)), shape=SCORES.shape)

        def build(batch=None):
            return ScoreMatrixAdapter(matrix, user_items=SEEN, batch_size=batch)

        return Subject(build(), lambda u, i: SCORES[u, i] if STORED[u, i] else None, SEEN, build)


class TestCallable(AdapterContract):
    def make(self):
        def build(batch=None):
            return CallableAdapter(lambda u, i: SCORES[u, i], n_users=6, n_items=11, user_items=SEEN,
                                   batch_size=batch)

        return Subject(build(), lambda u, i: SCORES[u, i], SEEN, build)


# ----------------------------------------------------------------------------- properties
@st.composite
def problems(draw):
    n_users = draw(st.integers(1, 6))
    n_items = draw(st.integers(1, 9))
    # Few distinct values: plenty of ties to exercise the tie rule.
    scores = np.array(
        draw(st.lists(st.integers(-3, 3), min_size=n_users * n_items, max_size=n_users * n_items)),
        dtype=np.float64,
    ).reshape(n_users, n_items)
    seen = np.array(
        draw(st.lists(st.booleans(), min_size=n_users * n_items, max_size=n_users * n_items))
    ).reshape(n_users, n_items)
    n = draw(st.integers(1, 12))
    items = draw(st.none() | st.lists(st.integers(0, n_items - 1), min_size=1, max_size=n_items))
    users = draw(st.lists(st.integers(0, n_users - 1), min_size=1, max_size=n_users, unique=True))
    batch = draw(st.none() | st.integers(1, 4))
    return scores, sp.csr_matrix(seen.astype(np.float32)), n, items, users, batch


@SETTINGS
@given(problems(), st.booleans())
def test_dense_matrix_matches_reference(problem, exclude_seen):
    scores, seen, n, items, users, batch = problem
    adapter = ScoreMatrixAdapter(scores, user_items=seen, batch_size=batch)
    got = ref.frame_lists(adapter.candidates(users, n=n, exclude_seen=exclude_seen, items=items), users)
    want = ref.top_n(
        lambda u, i: scores[u, i], users, scores.shape[1], n,
        seen=ref.seen_sets(seen) if exclude_seen else None, items=items,
    )
    assert got == want


@SETTINGS
@given(problems(), st.booleans(), st.floats(0.2, 0.9))
def test_sparse_matrix_only_stored_entries_are_candidates(problem, exclude_seen, density):
    scores, seen, n, items, users, batch = problem
    rng = np.random.default_rng(int(abs(scores).sum() * 7 + n))
    stored = rng.random(scores.shape) < density
    matrix = sp.csr_matrix((scores[stored], np.nonzero(stored)), shape=scores.shape)
    adapter = ScoreMatrixAdapter(matrix, user_items=seen, batch_size=batch)
    got = ref.frame_lists(adapter.candidates(users, n=n, exclude_seen=exclude_seen, items=items), users)
    want = ref.top_n(
        lambda u, i: scores[u, i] if stored[u, i] else None, users, scores.shape[1], n,
        seen=ref.seen_sets(seen) if exclude_seen else None, items=items,
    )
    assert got == want


@SETTINGS
@given(problems(), st.booleans())
def test_callable_matches_reference(problem, exclude_seen):
    scores, seen, n, items, users, batch = problem
    calls = []

    def score_fn(u, i):
        calls.append(len(u))
        return scores[u, i]

    adapter = CallableAdapter(
        score_fn, n_users=scores.shape[0], n_items=scores.shape[1], user_items=seen, batch_size=batch
    )
    got = ref.frame_lists(adapter.candidates(users, n=n, exclude_seen=exclude_seen, items=items), users)
    want = ref.top_n(
        lambda u, i: scores[u, i], users, scores.shape[1], n,
        seen=ref.seen_sets(seen) if exclude_seen else None, items=items,
    )
    assert got == want
    # One call per block of users, never one per user (unless a block holds one user).
    step = batch or len(users)
    assert len(calls) == -(-len(users) // step)


def test_external_ids_round_trip():
    scores = np.array([[0.1, 0.9, 0.5], [0.7, 0.2, 0.3]])
    adapter = ScoreMatrixAdapter(scores, user_ids=["ann", "bob"], item_ids=[10, 20, 30])
    out = adapter.candidates(["bob", "ann"], n=2, exclude_seen=False, items=[30, 10, 20])
    assert out["user_id"].tolist() == ["bob", "bob", "ann", "ann"]
    assert out["item_id"].tolist() == [10, 30, 20, 30]
    assert list(out.columns) == ["user_id", "item_id", "score"]
    assert out["score"].dtype == np.float64


def test_errors_name_the_culprit():
    adapter = ScoreMatrixAdapter(np.zeros((2, 3)), user_ids=["a", "b"], item_ids=["x", "y", "z"])
    with pytest.raises(ValueError, match="unknown user 'c'"):
        adapter.candidates(["a", "c"], exclude_seen=False)
    with pytest.raises(ValueError, match="unknown item 'w'"):
        adapter.candidates(["a"], exclude_seen=False, items=["w"])
    with pytest.raises(ValueError, match="exclude_seen=True needs user_items"):
        adapter.candidates(["a"])
    with pytest.raises(ValueError, match="n must be >= 1"):
        adapter.candidates(["a"], n=0, exclude_seen=False)
    with pytest.raises(ValueError, match="user_items has shape"):
        ScoreMatrixAdapter(np.zeros((2, 3)), user_items=sp.csr_matrix((3, 3)))
    with pytest.raises(ValueError, match="item_ids has 2 ids"):
        ScoreMatrixAdapter(np.zeros((2, 3)), item_ids=["x", "y"])
    with pytest.raises(ValueError, match="non-finite score"):
        ScoreMatrixAdapter(np.array([[np.nan, 1.0]])).candidates([0], exclude_seen=False)
    with pytest.raises(ValueError, match="score_fn returned shape"):
        CallableAdapter(lambda u, i: np.zeros(1), n_users=2, n_items=3).candidates(exclude_seen=False)


def test_interaction_matrix_sums_repeats_and_keeps_order():
    frame = pd.DataFrame({"user_id": ["b", "a", "b", "b"], "item_id": [3, 1, 3, 2], "w": [1.0, 2.0, 0.5, 4.0]})
    inter = interaction_matrix(frame, weight="w")
    assert inter.user_ids.tolist() == ["b", "a"]
    assert inter.item_ids.tolist() == [3, 1, 2]
    assert inter.matrix.toarray().tolist() == [[1.5, 0.0, 4.0], [0.0, 2.0, 0.0]]
    with pytest.raises(ValueError, match="interactions item 2 is not in the given items"):
        interaction_matrix(frame, items=[3, 1])


def test_recommend_calibrated_equals_rerank_of_candidates():
    rng = np.random.default_rng(3)
    scores = rng.random((5, 12))
    seen = sp.csr_matrix(rng.random((5, 12)) < 0.3, dtype=np.float32)
    adapter = ScoreMatrixAdapter(scores, user_items=seen)
    cats = pd.DataFrame({"item_id": np.arange(12), "category": np.arange(12) % 3})
    coo = seen.tocoo()
    history = pd.DataFrame({"user_id": coo.row, "item_id": coo.col})
    for lam in (0.0, 0.7):
        reranker = CalibratedReranker(k=4, lam=lam)
        out = recommend_calibrated(adapter, reranker, n=8, history=history, item_categories=cats)
        expected = CalibratedReranker(k=4, lam=lam).fit(history, cats).rerank(adapter.candidates(n=8))
        pd.testing.assert_frame_equal(out, expected)
        if lam == 0.0:  # λ = 0 is plain top-k of the candidates
            top = adapter.candidates(n=4)
            assert out[["user_id", "item_id"]].values.tolist() == top[["user_id", "item_id"]].values.tolist()
    with pytest.raises(ValueError, match="not fitted"):
        recommend_calibrated(adapter, CalibratedReranker(k=4))


def test_import_works_without_implicit_and_lightfm():
    import subprocess
    import sys

    code = (
        "import sys; sys.modules['implicit'] = None; sys.modules['lightfm'] = None\n"
        "import numpy as np\n"
        "from rerank.adapters import ScoreMatrixAdapter, ImplicitAdapter\n"
        "print(len(ScoreMatrixAdapter(np.eye(3)).candidates(n=2, exclude_seen=False)))\n"
        "try:\n"
        "    ImplicitAdapter(object())\n"
        "except ImportError as e:\n"
        "    print('ImportError', 'calibrated-rerank[implicit]' in str(e))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["6", "ImportError", "True"]


@pytest.mark.parametrize("seed", range(5))
def test_compiled_sparse_top_n_matches_reference_for_any_thread_count(seed):
    import numba

    from rerank.engine.topn import csr_top_n

    rng = np.random.default_rng(seed)
    n_users, n_items = 7, 15
    stored = rng.random((n_users, n_items)) < 0.5
    values = rng.integers(-2, 3, (n_users, n_items)).astype(np.float64)  # many ties
    matrix = sp.csr_matrix((values[stored], np.nonzero(stored)), shape=(n_users, n_items))
    seen = sp.csr_matrix(rng.random((n_users, n_items)) < 0.2)
    allowed = rng.random(n_items) < 0.8
    want = ref.top_n(
        lambda u, i: values[u, i] if stored[u, i] else None, range(n_users), n_items, 4,
        seen=ref.seen_sets(seen), items=np.flatnonzero(allowed).tolist(),
    )
    for threads in sorted({1, numba.config.NUMBA_NUM_THREADS}):
        numba.set_num_threads(threads)
        r, c, v = csr_top_n(matrix, 4, seen=seen, allowed=allowed)
        got = {u: [] for u in range(n_users)}
        for u, i, s in zip(r.tolist(), c.tolist(), v.tolist(), strict=True):
            got[u].append((i, s))
        assert got == want
    numba.set_num_threads(numba.config.NUMBA_NUM_THREADS)


def test_sparse_adapter_with_seen_and_items():
    rng = np.random.default_rng(11)
    n_users, n_items = 9, 20
    stored = rng.random((n_users, n_items)) < 0.6
    values = rng.integers(-3, 4, (n_users, n_items)).astype(np.float64)
    matrix = sp.csr_matrix((values[stored], np.nonzero(stored)), shape=(n_users, n_items))
    seen = sp.csr_matrix((rng.random((n_users, n_items)) < 0.3).astype(np.float32))
    items = [1, 3, 4, 8, 9, 12, 15, 19]
    adapter = ScoreMatrixAdapter(matrix, user_items=seen, batch_size=4)
    users = list(range(n_users))
    got = ref.frame_lists(adapter.candidates(users, n=3, items=items), users)
    want = ref.top_n(
        lambda u, i: values[u, i] if stored[u, i] else None, users, n_items, 3,
        seen=ref.seen_sets(seen), items=items,
    )
    assert got == want
