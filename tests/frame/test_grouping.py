"""rerank.grouping against pandas: DataFrame.duplicated, factorize + stable argsort."""

from __future__ import annotations

import numpy as np
import pandas as pd
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


def test_first_occurrence_in_input_order_is_kept():
    users = pd.Series([2, 1, 2, 1, 2])
    items = pd.Series([7, 7, 7, 7, 8])
    assert duplicated_pairs(users, items).tolist() == [False, False, True, True, False]
    assert user_groups(pd.Series([5, 5, 3, 3, 3])).order is None  # grouped: no sort needed
    assert user_groups(pd.Series([5, 3, 5])).order.tolist() == [0, 2, 1]
