"""``rerank.popularity_categories``: head / mid / tail by cumulative interaction share."""

from __future__ import annotations

import pandas as pd
import pytest
from budget import examples
from hypothesis import given, settings
from hypothesis import strategies as st

from rerank import popularity_categories
from rerank.errors import InputError
from rerank.testing import reference_beyond as bref


def _history(items):
    return pd.DataFrame({"user_id": range(len(items)), "item_id": items})


def test_hand_check():
    """Counts a:5 b:3 c:1 d:1 (T=10). Head 20% = first 2 interactions: only a (B=0) reaches
    them; b starts at 5. Tail 20% = last 2: c and d (A=0) reach them; b has A=2, not < 2."""
    items = ["a"] * 5 + ["b"] * 3 + ["c", "d"]
    got = popularity_categories(_history(items)).set_index("item_id")["category"].to_dict()
    assert got == {"a": "head", "b": "mid", "c": "tail", "d": "tail"}


def test_equal_counts_share_a_label_whatever_the_order():
    """Ten items with one interaction each: no item is strictly more popular than another, so
    every item has B = 0 < 0.2·T and all are head, in any order of the rows."""
    items = list("abcdefghij")
    for order in (items, items[::-1]):
        labels = popularity_categories(_history(order))["category"]
        assert set(labels) == {"head"}


def test_output_frame_shape():
    out = popularity_categories(_history([3, 1, 3, 2]))
    assert list(out.columns) == ["item_id", "attribute", "category"]
    assert out["item_id"].tolist() == [3, 1, 2]  # first appearance; ids kept as they are
    assert set(out["attribute"]) == {"popularity"}


@pytest.mark.parametrize(("head", "tail"), [(-0.1, 0.2), (0.2, 1.5), (0.6, 0.6), (True, 0.2)])
def test_bad_shares(head, tail):
    with pytest.raises(InputError, match="head|tail"):
        popularity_categories(_history([1, 2]), head=head, tail=tail)


@settings(max_examples=examples(200), deadline=None)
@given(
    items=st.lists(st.sampled_from(["x", "y", "z", "w", "v", "u"]), min_size=0, max_size=40),
    head=st.sampled_from([0.0, 0.1, 0.2, 0.5]),
    tail=st.sampled_from([0.0, 0.2, 0.3, 0.5]),
)
def test_matches_reference(items, head, tail):
    got = popularity_categories(_history(items), head=head, tail=tail)
    assert got.set_index("item_id")["category"].to_dict() == bref.popularity_labels(items, head, tail)
    if items:  # the head holds at least head·T interactions; the tail at least tail·T
        counts = pd.Series(items).value_counts()
        by_label = got.set_index("item_id")["category"]
        held = counts.groupby(by_label.reindex(counts.index)).sum()
        assert held.get("head", 0) >= head * len(items)
        assert held.get("head", 0) + held.get("tail", 0) >= min(head + tail, 1.0) * len(items) - 1e-9
