"""rerank.grouping.duplicated_pairs against pandas' own DataFrame.duplicated."""

from __future__ import annotations

import numpy as np
import pandas as pd
from hypothesis import given, settings
from hypothesis import strategies as st

from rerank.grouping import duplicated_pairs

IDS = st.one_of(st.none(), st.integers(0, 4), st.sampled_from(["a", "b", "c"]))


@settings(max_examples=200, deadline=None)
@given(rows=st.lists(st.tuples(IDS, IDS), max_size=40), as_object=st.booleans())
def test_duplicated_pairs_equals_pandas(rows, as_object):
    if not as_object:  # float columns, NaN for missing
        code = {"a": 10, "b": 11, "c": 12}
        rows = [tuple(np.nan if v is None else float(code.get(v, v)) for v in row) for row in rows]
    frame = pd.DataFrame(rows, columns=["user_id", "item_id"])
    expected = frame.duplicated().to_numpy()
    got = duplicated_pairs(frame["user_id"], frame["item_id"])
    assert got.dtype == np.bool_
    assert got.tolist() == expected.tolist()


def test_first_occurrence_in_input_order_is_kept():
    users = pd.Series([2, 1, 2, 1, 2])
    items = pd.Series([7, 7, 7, 7, 8])
    assert duplicated_pairs(users, items).tolist() == [False, False, True, True, False]
