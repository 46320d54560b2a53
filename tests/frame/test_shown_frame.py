"""Pages that remember through the pandas API (docs/design.md §9.3)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from rerank import CalibratedReranker
from rerank.errors import InputError
from rerank.testing import reference_beyond as bref

CATS = pd.DataFrame({"item_id": ["a1", "a2", "a3", "b1", "b2", "b3"],
                     "category": ["a", "a", "a", "b", "b", "b"]})
HISTORY = pd.DataFrame({"user_id": ["u", "u", "v"], "item_id": ["a1", "b1", "a1"]})
CANDIDATES = pd.DataFrame({
    "user_id": ["u"] * 6 + ["v"] * 3,
    "item_id": ["a1", "a2", "a3", "b1", "b2", "b3", "a1", "b1", "zz"],
    "score": [0.9, 0.8, 0.7, 0.3, 0.2, 0.1, 0.5, 0.4, 0.3],
})


def test_page_two_calibrates_the_union_and_skips_what_was_shown():
    reranker = CalibratedReranker(k=2, lam=0.9).fit(HISTORY, CATS)
    page1 = reranker.rerank(CANDIDATES)
    shown = page1[["user_id", "item_id", "rank"]]
    page2 = reranker.rerank(CANDIDATES, shown=shown)
    for user in ("u", "v"):
        assert not set(page2.loc[page2["user_id"] == user, "item_id"]) & set(shown.loc[shown["user_id"] == user,
                                                                                      "item_id"])
    # u wants 50/50 a/b; page 1 is one of each, so page 2 is one of each again
    u2 = page2.loc[page2["user_id"] == "u", "item_id"].tolist()
    assert sorted(x[0] for x in u2) == ["a", "b"]
    assert reranker.report_.shown_removed.to_dict() == {"u": 2, "v": 2}
    assert reranker.report_.reconciles


def test_frame_equals_the_reference_with_an_unknown_shown_item():
    """An unknown item shown to v (no category) fills a position; the unknown candidate 'zz'
    (another unknown id, same empty category row) is *not* excluded: shown is by id."""
    reranker = CalibratedReranker(k=2, lam=0.7, rank_weights="dcg", normalize=None).fit(HISTORY, CATS)
    shown = pd.DataFrame({"user_id": ["v", "v"], "item_id": ["qq", "b2"], "rank": [2, 1]})
    out = reranker.rerank(CANDIDATES, shown=shown)
    got = out.loc[out["user_id"] == "v", "item_id"].tolist()
    cats = {"a1": {0: 1.0}, "b1": {1: 1.0}, "zz": {}, "b2": {1: 1.0}, "qq": {}}
    p = reranker.target_distributions(["v"]).loc["v"].tolist()
    chosen = bref.general_greedy([0.5, 0.4, 0.3], [cats["a1"], cats["b1"], cats["zz"]], p, 2, 0.7,
                                rank_weights="dcg", shown_cats=[cats["b2"], cats["qq"]])  # by rank: b2 then qq
    assert got == [["a1", "b1", "zz"][j] for j in chosen]
    assert reranker.report_.shown_removed["v"] == 0


@pytest.mark.parametrize(
    ("shown", "message"),
    [
        (pd.DataFrame({"user_id": ["u", "u"], "item_id": ["a1", "a1"]}), "twice"),
        (pd.DataFrame({"user_id": ["u"]}), "item_id"),
        (pd.DataFrame({"user_id": [1], "item_id": ["a1"]}), "user_id"),
        (pd.DataFrame({"user_id": ["u"], "item_id": ["a1"], "rank": [np.nan]}), "rank"),
    ],
)
def test_bad_shown_frames(shown, message):
    reranker = CalibratedReranker(k=2).fit(HISTORY, CATS)
    with pytest.raises(InputError, match=message):
        reranker.rerank(CANDIDATES, shown=shown)
