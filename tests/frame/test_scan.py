"""rerank.scan (chunked passes), rerank.directindex (direct-address lookup) and the grouped
duplicate check, each against the plain numpy / pandas expression it replaces, with chunks small
enough that every boundary case (a run, a bad value, an out-of-range id at a chunk edge) occurs."""

from __future__ import annotations

from contextlib import contextmanager

import numpy as np
import pandas as pd
from budget import examples
from hypothesis import given, settings
from hypothesis import strategies as st

import rerank.scan as scan
from rerank.directindex import DirectIndex, cached_direct_rows
from rerank.grouping import duplicated_within


@contextmanager
def chunks_of(size: int):
    previous, scan.CHUNK = scan.CHUNK, size
    try:
        yield
    finally:
        scan.CHUNK = previous


floats = st.floats(allow_nan=True, allow_infinity=True, width=64)


@settings(max_examples=examples(100), deadline=None)
@given(values=st.lists(st.sampled_from([0.0, 1.5, -2.0, np.nan, np.inf, -np.inf]) | floats, max_size=40))
def test_count_nonfinite_is_the_numpy_mask(values):
    arr = np.asarray(values, dtype=np.float64)
    bad = np.flatnonzero(~np.isfinite(arr))
    for chunk in (3, scan.CHUNK):
        with chunks_of(chunk):
            got = scan.count_nonfinite(arr)
        assert got == (bad.size, int(bad[0]) if bad.size else -1)


@settings(max_examples=examples(100), deadline=None)
@given(values=st.lists(st.integers(0, 3), max_size=40), limit=st.none() | st.integers(1, 10))
def test_run_starts_are_the_neighbour_changes(values, limit):
    arr = np.asarray(values, dtype=np.int64)
    expected = np.r_[0, np.flatnonzero(arr[1:] != arr[:-1]) + 1] if arr.size else np.zeros(0, dtype=np.int64)
    with chunks_of(3):
        got = scan.run_starts(arr, limit=limit)
    if limit is not None and expected.size > limit:
        assert got is None
    else:
        assert got.tolist() == expected.tolist()


@settings(max_examples=examples(100), deadline=None)
@given(fitted=st.lists(st.integers(-20, 20), unique=True, max_size=15),
       asked=st.lists(st.integers(-30, 30), max_size=40), missing=st.integers(50, 60))
def test_direct_rows_are_get_indexer(fitted, asked, missing):
    """Exactly ``Index.get_indexer`` with ``-1`` replaced by ``missing``: ids below, above and
    inside the fitted range, holes in it, repeats."""
    index = pd.Index(np.asarray(fitted, dtype=np.int64))
    ids = np.asarray(asked, dtype=np.int64)
    expected = index.get_indexer(ids)
    expected[expected < 0] = missing
    direct = DirectIndex.of(index)
    if not fitted:
        assert direct is None
        return
    with chunks_of(3):
        assert direct.rows_for(ids, missing).tolist() == expected.tolist()
        rows, n_missing = scan.direct_rows(ids, direct.table, direct.lo, missing)
    assert rows.tolist() == expected.tolist()
    assert n_missing == int((index.get_indexer(ids) < 0).sum())


@settings(max_examples=examples(100), deadline=None)
@given(fitted=st.lists(st.integers(-20, 20), unique=True, min_size=1, max_size=15),
       asked=st.lists(st.integers(-30, 30) | st.sampled_from([-(2**63), 2**63 - 1]), max_size=40),
       seed=st.integers(0, 2**16), order_dtype=st.sampled_from([np.int32, np.int64]),
       one_chunk_rows=st.booleans())
def test_gathered_rows_are_get_indexer_of_the_ids_in_that_order(fitted, asked, seed, order_dtype, one_chunk_rows):
    """``gathered_rows(ids, order, missing, scores)`` is ``get_indexer(ids[order])`` (``-1`` ->
    ``missing``), ``scores[order]`` and the missing count, for any order (repeats, a subset),
    int32 or int64, on one chunk or several."""
    import rerank.grouping as grouping

    index = pd.Index(np.asarray(fitted, dtype=np.int64))
    ids = np.asarray(asked, dtype=np.int64)
    rng = np.random.default_rng(seed)
    order = rng.integers(0, len(ids), rng.integers(0, 2 * len(ids) + 1)).astype(order_dtype) if len(ids) else \
        np.zeros(0, dtype=order_dtype)
    expected = index.get_indexer(ids[order])
    scores = rng.normal(size=len(ids))
    previous = grouping.SORT_CHUNK_ROWS
    grouping.SORT_CHUNK_ROWS = 10**9 if one_chunk_rows else 1
    try:
        rows, gathered, n_missing = DirectIndex.of(index).gathered_rows(ids, order, 99, scores)
    finally:
        grouping.SORT_CHUNK_ROWS = previous
    assert rows.tolist() == np.where(expected < 0, 99, expected).tolist()
    assert gathered.dtype == np.float64 and gathered.tolist() == scores[order].tolist()
    assert n_missing == int((expected < 0).sum())
    assert DirectIndex.of(index).gathered_rows(ids.astype(np.float64), order, 99, scores) is None  # int64 only


@settings(max_examples=examples(100), deadline=None)
@given(values=st.lists(st.integers(-3, 3), max_size=40), value=st.integers(-3, 3))
def test_count_equal_is_the_numpy_count(values, value):
    arr = np.asarray(values, dtype=np.int64)
    with chunks_of(3):
        assert scan.count_equal(arr, value) == int(np.count_nonzero(arr == value))


def test_direct_index_applies_only_to_plain_dense_int64():
    assert DirectIndex.of(pd.Index(["a", "b"])) is None
    assert DirectIndex.of(pd.Index([1.0, 2.0])) is None
    assert DirectIndex.of(pd.Index([1, 2], dtype="Int64")).rows_for(pd.Index([2]), 9).tolist() == [1]
    assert DirectIndex.of(pd.Index(np.array([0, 10**12], dtype=np.int64))) is None  # too sparse
    assert DirectIndex.of(pd.Index([3, 3])) is None  # repeated fitted ids
    direct = DirectIndex.of(pd.Index([7, 5]))
    assert direct.rows_for(np.array([5, 7, 6], dtype=np.uint64), 9) is None  # not int64: not answered here
    assert direct.rows_for(pd.Index([5, 7, 6, 2**62]), 9).tolist() == [1, 0, 9, 9]


def test_the_cached_index_is_rebuilt_for_a_new_fit():
    class Owner:
        pass

    owner, first, second = Owner(), pd.Index([1, 2, 3]), pd.Index([3, 2, 1])
    assert cached_direct_rows(owner, "item_id", first, pd.Index([3]), -9).tolist() == [2]
    assert cached_direct_rows(owner, "item_id", second, pd.Index([3]), -9).tolist() == [0]
    assert cached_direct_rows(owner, "item_id", pd.Index(["a"]), pd.Index(["a"]), -9) is None


@settings(max_examples=examples(100), deadline=None)
@given(sizes=st.lists(st.integers(0, 6), max_size=8), seed=st.integers(0, 2**16),
       kind=st.sampled_from(["int", "float", "str"]))
def test_duplicated_within_groups_is_pandas_duplicated(sizes, seed, kind):
    rng = np.random.default_rng(seed)
    indptr = np.r_[0, np.cumsum(sizes)].astype(np.int64)
    values = rng.integers(0, 4, int(indptr[-1]))
    if kind == "float":
        values = np.array([0.0, -0.0, 1.0, np.nan])[values]  # 0.0 and -0.0 are one value, NaN is one value
    elif kind == "str":
        values = values.astype(str).astype(object)
    group = np.repeat(np.arange(len(sizes)), sizes)
    expected = pd.DataFrame({"g": group, "v": values}).duplicated().to_numpy()
    assert duplicated_within(indptr, values).tolist() == expected.tolist()


def test_a_pickled_reranker_leaves_its_lookup_caches_behind_and_reranks_the_same():
    import pickle
    import warnings

    from rerank import CalibratedReranker

    cats = pd.DataFrame({"item_id": [10, 11, 12, 13], "category": ["a", "b", "a", "b"]})
    history = pd.DataFrame({"user_id": [1, 1, 2], "item_id": [10, 11, 12]})
    candidates = pd.DataFrame({"user_id": [1, 1, 1, 3, 3], "item_id": [10, 12, 99, 11, 13],
                               "score": [0.9, 0.8, 0.7, 0.6, 0.5]})
    reranker = CalibratedReranker(k=2).fit(history, cats)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # a cold user and an unknown item (the hints get built)
        first = reranker.rerank(candidates)
        assert "_direct_index" in reranker.__dict__  # int64 ids on both sides: the table was used
        copy = pickle.loads(pickle.dumps(reranker))
        assert "_direct_index" not in copy.__dict__ and "_near_miss" not in copy.__dict__
        assert set(copy.__dict__) == set(reranker.__dict__) - {"_direct_index", "_near_miss"}
        pd.testing.assert_frame_equal(copy.rerank(candidates), first)
