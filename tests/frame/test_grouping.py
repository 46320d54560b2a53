"""rerank.grouping against pandas: DataFrame.duplicated, factorize + stable argsort."""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest
from budget import examples
from hypothesis import given, settings
from hypothesis import strategies as st

from rerank.grouping import duplicated_pairs, user_groups

IDS = st.one_of(st.none(), st.integers(0, 4), st.sampled_from(["a", "b", "c"]))
FLOATS = st.sampled_from([0.0, -0.0, 1.5, 2.0, np.nan, 1e300, -3.0])


def _frame(rows, numeric):
    if numeric:  # float columns, NaN for missing
        code = {"a": 10, "b": 11, "c": 12}
        rows = [tuple(np.nan if v is None else float(code.get(v, v)) for v in row) for row in rows]
    return pd.DataFrame(rows, columns=["user_id", "item_id"])


@settings(max_examples=examples(200), deadline=None)
@given(rows=st.lists(st.tuples(IDS, IDS), max_size=40), numeric=st.booleans(), grouped=st.booleans())
def test_duplicated_pairs_equals_pandas(rows, numeric, grouped):
    frame = _frame(rows, numeric)
    if grouped:  # all rows of a user together (the fast path when ids are numbers)
        codes = pd.factorize(frame["user_id"])[0]
        frame = frame.iloc[np.argsort(np.where(codes < 0, len(codes), codes), kind="stable")].reset_index(drop=True)
    got = duplicated_pairs(frame["user_id"], frame["item_id"])
    assert got.dtype == np.bool_
    assert got.tolist() == frame.duplicated().to_numpy().tolist()


@settings(max_examples=examples(200), deadline=None)
@given(users=st.lists(st.integers(-3, 5), max_size=30), items=st.lists(FLOATS, min_size=30, max_size=30),
       int_items=st.booleans())
def test_duplicated_pairs_grouped_numeric_items(users, items, int_items):
    """Grouped int users, float items with NaN and signed zeros, or int64 items."""
    users = sorted(users, key=abs)  # grouped by value, not sorted
    items = items[: len(users)]
    if int_items:
        items = [int(x) if np.isfinite(x) and abs(x) < 1e18 else 7 for x in items]
    frame = pd.DataFrame({"user_id": np.array(users, dtype=np.int64), "item_id": items})
    got = duplicated_pairs(frame["user_id"], frame["item_id"])
    assert got.tolist() == frame.duplicated().to_numpy().tolist()


@settings(max_examples=examples(200), deadline=None)
@given(keys=st.lists(st.one_of(st.integers(0, 5), st.none()), max_size=40), as_float=st.booleans())
def test_user_groups_equals_factorize_and_stable_argsort(keys, as_float):
    series = pd.Series([np.nan if k is None else float(k) for k in keys]) if as_float else pd.Series(
        [k if k is not None else 0 for k in keys], dtype=np.int64)
    groups = user_groups(series)
    codes, uniques = pd.factorize(series, sort=False)
    assert groups.codes.tolist() == codes.tolist()
    assert list(groups.uniques) == list(uniques)
    order = np.argsort(codes, kind="stable")
    order = order[codes[order] >= 0]
    assert groups.rows.tolist() == order.tolist()
    assert groups.indptr.tolist() == [0, *np.cumsum(np.bincount(codes[codes >= 0], minlength=len(uniques)))]


def test_row_numbers_are_int32_below_two_to_the_31():
    from rerank.grouping import index_dtype

    assert index_dtype(0) is np.int32 and index_dtype(2**31 - 1) is np.int32
    assert index_dtype(2**31) is np.int64  # int32 could not number the last row


def test_first_occurrence_in_input_order_is_kept():
    users = pd.Series([2, 1, 2, 1, 2])
    items = pd.Series([7, 7, 7, 7, 8])
    assert duplicated_pairs(users, items).tolist() == [False, False, True, True, False]
    assert user_groups(pd.Series([5, 5, 3, 3, 3])).order is None  # grouped: no sort needed
    assert user_groups(pd.Series([5, 3, 5])).order.tolist() == [0, 2, 1]


@settings(max_examples=examples(100), deadline=None)
@given(keys=st.lists(st.integers(-5, 5) | st.integers(-(2**62), 2**62), max_size=60), chunks=st.integers(1, 4),
       small_chunks=st.booleans(), index=st.sampled_from([np.int32, np.int64]))
def test_interleaved_integer_keys_group_like_factorize(keys, chunks, small_chunks, index):
    """Direct-address numbering (small spans) or factorize (wide spans), counting sort in any
    number of chunks, int32 or int64 row numbers: the same groups as factorize + a stable
    argsort. Small chunks also send a frame whose first chunk looks interleaved to the general
    path early (the same groups)."""
    import rerank.grouping as grouping

    series = pd.Series(keys, dtype=np.int64)
    previous = grouping.SORT_CHUNK_ROWS, grouping.CHUNK
    if small_chunks:
        grouping.SORT_CHUNK_ROWS, grouping.CHUNK = 1, 4
    try:
        groups = user_groups(series)
    finally:
        grouping.SORT_CHUNK_ROWS, grouping.CHUNK = previous
    codes, uniques = pd.factorize(series, sort=False)
    assert list(groups.uniques) == list(uniques)
    assert groups.rows.tolist() == np.argsort(codes, kind="stable").tolist()
    assert groups.codes.tolist() == codes.tolist()  # the group of each input row
    if len(keys):
        expected = np.argsort(codes, kind="stable").tolist()
        table = np.arange(-1, len(uniques), dtype=index)  # code c is read at slot c + 1
        order, indptr = grouping._counting_sort(codes.astype(np.int64), -1, table, len(uniques), chunks)
        assert order.dtype == index and order.tolist() == expected
        assert indptr.tolist() == groups.indptr.tolist()
        lo = int(series.min())  # the same sort with the groups read through a direct-address table
        span = int(series.max()) - lo + 1
        if span <= 10_000:
            code_of = np.full(span, -1, dtype=index)
            code_of[uniques.to_numpy() - lo] = np.arange(len(uniques))
            order, indptr = grouping._counting_sort(series.to_numpy(), lo, code_of, len(uniques), chunks)
            assert order.dtype == index and order.tolist() == expected
            assert indptr.tolist() == groups.indptr.tolist()


@settings(max_examples=examples(60), deadline=None)
@given(n_users=st.integers(1, 6), n_items=st.integers(1, 6), seed=st.integers(0, 2**16), string_ids=st.booleans(),
       lam_column=st.booleans(), n_unknown=st.integers(0, 2))
def test_an_interleaved_frame_reranks_like_the_same_frame_grouped(n_users, n_items, seed, string_ids, lam_column,
                                                                  n_unknown):
    """Regrouping keeps every user's rows in input order, so the output equals the output of
    the frame sorted by user (stable), ties included; so do the counts of unknown items (the
    interleaved frame looks its items up through the user order)."""
    from rerank import CalibratedReranker

    rng = np.random.default_rng(seed)
    rows = [(u, i, float(rng.choice([0.1, 0.5, rng.random()]))) for u in range(n_users) for i in range(n_items)
            if rng.random() < 0.8]
    frame = pd.DataFrame(rows, columns=["user_id", "item_id", "score"]).sample(frac=1.0, random_state=seed)
    frame.index = pd.RangeIndex(5, 5 + 2 * len(frame), 2)
    if string_ids:
        frame["user_id"] = "u" + frame["user_id"].astype(str)
    frame["lam"] = frame["user_id"].map(lambda u: 0.3 if str(u).endswith("1") else 0.8)
    codes = pd.factorize(frame["user_id"])[0]
    grouped = frame.iloc[np.argsort(codes, kind="stable")]
    known = max(n_items - n_unknown, 1)  # items from `known` on are not in item_categories
    cats = pd.DataFrame({"item_id": range(known), "category": [i % 3 for i in range(known)]})
    history = pd.DataFrame({"user_id": frame["user_id"].iloc[:3], "item_id": frame["item_id"].iloc[:3]})
    reranker = CalibratedReranker(k=3, lam="lam" if lam_column else 0.7).fit(history, cats)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # unknown items warn
        (out, report), (expected, expected_report) = (reranker.rerank(f, return_report=True) for f in (frame, grouped))
    pd.testing.assert_frame_equal(out, expected)
    assert report.n_rows_unknown_item == expected_report.n_rows_unknown_item == int((frame["item_id"] >= known).sum())


def test_errors_in_an_interleaved_frame_name_the_first_bad_row_in_input_order():
    import pytest

    from rerank import CalibratedReranker
    from rerank.errors import InputError

    frame = pd.DataFrame({"user_id": [1, 2, 1, 2, 1], "item_id": [1, 2, 3, 2, 1], "score": [0.1] * 5})
    cats = pd.DataFrame({"item_id": [1, 2, 3], "category": ["a", "b", "a"]})
    reranker = CalibratedReranker(k=2).fit(frame.iloc[:0][["user_id", "item_id"]], cats)
    with pytest.raises(InputError, match=r"user 2(\.0)?, item 2(\.0)? \(row 3;"):  # row 4 (user 1) comes later
        reranker.rerank(frame)


@pytest.mark.parametrize("unknown", [False, True])
def test_a_repeated_item_in_an_interleaved_frame_is_refused_whether_or_not_it_is_known(unknown):
    """Known items are checked for repeats through their category rows, unknown ones (which
    all share the empty row) through their ids: a repeat is refused either way, and distinct
    unknown items are not mistaken for repeats."""
    from rerank import CalibratedReranker
    from rerank.errors import InputError

    item, other = (9, 10) if unknown else (2, 8)  # 9 and 10 are not in item_categories
    frame = pd.DataFrame({"user_id": [1, 2, 1, 2, 1, 2], "item_id": [7, item, 3, other, 1, item], "score": [0.1] * 6})
    cats = pd.DataFrame({"item_id": [1, 2, 3, 7, 8], "category": ["a", "b", "a", "b", "a"]})
    reranker = CalibratedReranker(k=3).fit(frame.iloc[:0][["user_id", "item_id"]], cats)
    with pytest.raises(InputError, match=rf"user 2, item {item} \(row 5;"):
        reranker.rerank(frame)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # unknown items warn
        out = reranker.rerank(frame.drop(index=5))  # no repeat left (user 2: 9 and 10, distinct unknown items)
    assert sorted(out["item_id"].tolist()) == sorted([7, other, 1, item, 3])
