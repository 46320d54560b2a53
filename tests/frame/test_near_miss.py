"""The near-miss hint (an unmatched id that would match a fitted id after ignoring leading
zeros, case, spaces or a trailing ``.0``) is built against the fitted ids once per fit, not on
every call: at 1M fitted users it cost ≈ 2 s per call, most of the Spark job's time."""

from __future__ import annotations

import pandas as pd

import rerank.ids as ids
from rerank import CalibratedReranker

CATS = pd.DataFrame({"item_id": ["a", "b", "c"], "category": ["x", "y", "x"]})


def history(users):
    return pd.DataFrame({"user_id": list(users), "item_id": ["a"] * len(users)})


def candidates(user):
    return pd.DataFrame({"user_id": [user] * 3, "item_id": ["a", "b", "c"], "score": [0.3, 0.2, 0.1]})


def test_the_fitted_side_is_built_once_per_fit(monkeypatch):
    fitted_users = [f"{u}" for u in range(1, 51)]
    reranker = CalibratedReranker(k=2).fit(history(fitted_users), CATS)
    sizes = []
    original = ids._loose

    def counting(values):
        sizes.append(len(values))
        return original(values)

    monkeypatch.setattr(ids, "_loose", counting)
    for _ in range(3):
        reranker.rerank(candidates("0007"), return_report=True)
        assert reranker.report_.id_hints["user_id"] == ("0007", "7")
    assert sizes.count(len(fitted_users)) == 1  # the fitted users' loose forms: once, not per call
    assert sizes.count(1) == 3  # the unmatched side: every call

    reranker.fit(history(["8", "9"]), CATS)  # a new fit: the hint follows the new users
    reranker.rerank(candidates("0008"))
    assert reranker.report_.id_hints["user_id"] == ("0008", "8")
    reranker.rerank(candidates("0007"))
    assert "user_id" not in reranker.report_.id_hints


def test_unknown_items_get_their_hint_too():
    reranker = CalibratedReranker(k=2).fit(history(["u"]), CATS)
    out = reranker.rerank(pd.DataFrame({"user_id": ["u"] * 2, "item_id": [" A ", "b"], "score": [0.5, 0.4]}))
    assert len(out) == 2
    assert reranker.report_.id_hints["item_id"] == (" A ", "a")


def test_a_large_fitted_side_is_sampled_evenly(monkeypatch):
    """Beyond FITTED_SAMPLE fitted ids the hint looks among an evenly spaced sample: a systematic
    mismatch is still named, a one-off near miss outside the sample is not (documented)."""
    monkeypatch.setattr(ids, "FITTED_SAMPLE", 10)
    fitted = pd.Index([str(u) for u in range(1, 51)])
    matcher = ids.LooseMatcher(fitted)
    assert list(matcher.fitted) == ["1", "6", "11", "17", "22", "28", "33", "39", "44", "50"]
    assert matcher.near_miss(["0006"]) == ("0006", "6")
    assert matcher.near_miss(["0007"]) is None  # "7" is outside the sample
    padded = [f"{u:04d}" for u in range(1, 51)]  # every id zero-padded: found whatever the sample
    assert matcher.near_miss(padded) == ("0001", "1")
