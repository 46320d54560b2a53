"""The battery of ``rerank.testing``: the library's reranker passes it, every guarantee catches a
broken reranker (tests/testing/broken_rerankers.py) and names itself, the report shows the
counterexample, and the selection of guarantees follows what a reranker declares."""

from __future__ import annotations

import re

import pandas as pd
import pytest
from broken_rerankers import CATCHES, k_plus_one, ranks_from_zero
from budget import examples

from rerank import CalibratedReranker
from rerank.testing import GUARANTEES, Objective, Quota, check_reranker, from_reranker
from rerank.testing.battery import choose
from rerank.testing.declare import GENERAL, NAMES

FAST = {"shrink_seconds": 1.0}  # the tests assert names, not how small the counterexample is


@pytest.mark.parametrize(
    ("params", "extra"),
    [({}, {"score-affine"}), ({"normalize": None, "divergence": "hellinger"}, set()),
     ({"min_share": True}, {"quota"})],
    ids=["default", "raw-hellinger", "quota"],
)
def test_calibrated_reranker_passes_the_battery(params, extra):
    reranker = from_reranker(CalibratedReranker, **params)
    result = check_reranker(reranker, k=6, max_examples=examples(25))
    expected = set(reranker.claims)
    assert set(result.passed) == expected and not result.failed and not result.unchecked
    assert extra <= expected
    if not params:  # default settings (min-max normalised): every general guarantee and score-affine
        assert expected == set(GENERAL) | {"score-affine"}


def test_every_guarantee_has_a_broken_reranker_that_it_catches():
    assert {name for name, _ in CATCHES.values()} == set(NAMES)


@pytest.mark.parametrize("broken", list(CATCHES), ids=lambda fn: getattr(fn, "__name__", repr(fn)))
def test_each_guarantee_catches_its_broken_reranker(broken):
    name, declared = CATCHES[broken]
    with pytest.raises(AssertionError) as caught:
        check_reranker(broken, k=5, max_examples=examples(40), guarantees=[name], **declared, **FAST)
    report = str(caught.value)
    assert f"failed: {name}" in report.splitlines()[0]
    assert f"── {name}: {GUARANTEES[name].rule}" in report
    assert "Shrunk counterexample: k=" in report


def test_the_report_names_every_failing_guarantee_and_shows_the_case():
    def two_bugs(history, item_categories, candidates, *, k, lam):
        return ranks_from_zero(history, item_categories, candidates, k=k + 1, lam=lam)

    with pytest.raises(AssertionError) as caught:
        check_reranker(two_bugs, k=3, max_examples=examples(30), **FAST)
    report = str(caught.value)
    head = report.splitlines()[0]
    assert head.startswith("test_the_report_names_every_failing_guarantee_and_shows_the_case.<locals>.two_bugs: ")
    assert re.search(r"failed: length, ranks;", head)  # nothing else: the other guarantees hold
    for frame in ("history", "item_categories", "candidates", "output"):
        assert re.search(rf"^{frame} \(.*\):$", report, flags=re.M), frame
    # the counterexample is rebuilt by the printed code, and it fails again
    code = re.search(r"^Rebuild it: (.*)$", report, flags=re.M).group(1)
    k = int(re.search(r"^Shrunk counterexample: k=(\d+)", report, flags=re.M).group(1))
    frames = {}
    exec(code, {"pd": pd}, frames)
    out = k_plus_one(frames["history"], frames["item_categories"], frames["candidates"], k=k, lam=0.5)
    lengths = out.groupby("user_id").size()
    counts = frames["candidates"].groupby("user_id").size()
    assert (lengths != counts.clip(upper=k)).any()


def test_a_reranker_that_always_raises_is_reported_under_no_error_only():
    def broken(history, item_categories, candidates, *, k, lam):
        raise RuntimeError("model server down")

    with pytest.raises(AssertionError) as caught:
        check_reranker(broken, k=3, max_examples=examples(10), **FAST)
    report = str(caught.value)
    assert "failed: no-error;" in report.splitlines()[0]
    assert "rerank_fn raised RuntimeError: model server down" in report
    assert "unchecked: subset" in report.splitlines()[0]


def test_a_passing_reranker_returns_its_result():
    def top_k(history, item_categories, candidates, *, k, lam):
        ranked = candidates.sort_values("score", ascending=False, kind="stable")
        return ranked.groupby("user_id", sort=False).head(k).reset_index(drop=True)

    result = check_reranker(top_k, k=4, max_examples=examples(15), skip=["row-order"])
    assert "row-order" in result.skipped and "row-order" not in result.passed
    assert set(result.not_applicable) == {"score-affine", "quota"}
    assert "top_k: 12 of 12 guarantees hold" in result.summary()


def test_choose_follows_declarations_and_names():
    plain = Objective()
    names, not_applicable, skipped = choose(None, (), None, plain, None)
    assert names == list(GENERAL) and set(not_applicable) == {"score-affine", "quota"}
    names, _, _ = choose(None, ("deterministic",), None, Objective(normalize="rank"), Quota(0.5))
    assert "score-affine" in names and "quota" in names and "deterministic" not in names
    assert choose(["length", "subset"], (), None, plain, None)[0] == ["subset", "length"]  # catalogue order
    with pytest.raises(ValueError, match="guarantee names"):
        choose(["lenght"], (), None, plain, None)
    with pytest.raises(ValueError, match="guarantee names"):
        choose("length", (), None, plain, None)
    with pytest.raises(ValueError, match="quota=Quota"):
        choose(["quota"], (), None, plain, None)


@pytest.mark.parametrize(
    ("params", "claimed", "not_claimed"),
    [
        ({}, {"not-below-topk", "lam0-topk", "score-affine"}, {"quota"}),
        ({"normalize": None}, {"not-below-topk", "lam0-topk"}, {"score-affine", "quota"}),
        ({"safeguard": False}, {"lam0-topk"}, {"not-below-topk"}),
        ({"safeguard": False, "refine": "swap"}, {"not-below-topk", "lam0-topk"}, set()),
        ({"method": "pm2"}, {"lam0-topk"}, {"not-below-topk"}),
        ({"min_share": 0.5}, {"quota"}, {"lam0-topk", "not-below-topk"}),
        ({"normalize": "rank"}, {"score-affine"}, set()),
        ({"rank_weights": "dcg", "order": "score"}, {"lam0-topk"}, {"not-below-topk"}),
        ({"solver": "exact"}, {"not-below-topk"}, set()),
    ],
)
def test_from_reranker_declares_what_its_settings_keep(params, claimed, not_claimed):
    adapted = from_reranker(CalibratedReranker, **params)
    assert claimed <= adapted.claims and not (not_claimed & adapted.claims)
    assert adapted.objective.normalize == params.get("normalize", "minmax")  # the library's default
    assert (adapted.quota is not None) == ("min_share" in params)
    assert repr(adapted).startswith("from_reranker(CalibratedReranker")


def test_from_reranker_checks_its_parameters_at_once():
    with pytest.raises(TypeError, match="set by the battery"):
        from_reranker(CalibratedReranker, k=3)
    with pytest.raises(ValueError, match="divergence"):
        from_reranker(CalibratedReranker, divergence="kld")
    with pytest.raises(ValueError, match="timestamps"):
        from_reranker(half_life=10.0)
    with pytest.raises(ValueError, match="whole number"):
        check_reranker(from_reranker(), k=0)
