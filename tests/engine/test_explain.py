"""Why each item is there (docs/design.md §9.4): input_rank, the two gains and the reason,
recomputed from the candidates by the pure-Python reference, with two attributes and prefixes."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp
from budget import examples
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from rerank import CalibratedReranker, rerank_arrays
from rerank.engine.explain import REASONS
from rerank.testing import reference_beyond as bref
from rerank.testing.strategies import (
    BEYOND_OPTIONS,
    attribute_instances,
    beyond_keywords,
    instances,
    reference_attributes,
    shown_prefixes,
)

SETTINGS = settings(max_examples=examples(120), deadline=None, suppress_health_check=[HealthCheck.too_slow])


@SETTINGS
@given(data=st.data(), k=st.integers(1, 5), pick=BEYOND_OPTIONS, order=st.sampled_from(["greedy", "score"]),
       two=st.booleans())
def test_explanations_equal_a_recomputation(data, k, pick, order, two):
    inst = data.draw(attribute_instances() if two else instances())
    shown = data.draw(shown_prefixes(inst, max_size=3))
    indptr, items, scores = inst.csr()
    result = rerank_arrays(indptr, items, scores, inst.matrix, np.array(inst.targets), k, np.array(inst.lam),
                           explain=True, order=order, **beyond_keywords(inst, shown), **pick)
    why = result.explanation
    attrs = reference_attributes(inst)
    for u in range(len(inst.users)):
        left = [j for j, item in enumerate(inst.users[u]) if item not in shown[u]]
        sc = [inst.scores[u][j] for j in left]
        cats = [inst.local_cats(u)[j] for j in left]
        common = dict(shown_cats=[inst.item_cats[i] for i in shown[u]], **attrs)
        chosen = bref.general_greedy(sc, cats, inst.targets[u], k, inst.lam[u], **pick, **common)
        plain = bref.general_greedy(sc, cats, inst.targets[u], k, inst.lam[u], **{**pick, "safeguard": False}, **common)
        expected = bref.explain_reference(
            sc, cats, inst.targets[u], inst.lam[u], chosen, chosen != plain and pick["safeguard"],
            divergence=pick["divergence"], rank_weights=pick["rank_weights"], normalize=pick["normalize"], **common,
        )
        if order == "score":
            by_score = sorted(range(len(chosen)), key=lambda r: (-sc[chosen[r]], chosen[r]))
            chosen, expected = [chosen[r] for r in by_score], [expected[r] for r in by_score]
        lo, hi = result.indptr[u], result.indptr[u + 1]
        assert result.items[lo:hi].tolist() == [inst.users[u][left[j]] for j in chosen]
        assert why.input_rank[lo:hi].tolist() == [e[0] for e in expected]
        assert why.score_gain[lo:hi] == pytest.approx([e[1] for e in expected], rel=1e-9, abs=1e-12)
        assert why.calibration_gain[lo:hi] == pytest.approx([e[2] for e in expected], rel=1e-9, abs=1e-9)
        assert [REASONS[c] for c in why.reason[lo:hi]] == [e[3] for e in expected]
        if hi > lo and not shown[u]:  # the gains add up to the list's objective
            total = why.score_gain[lo:hi].sum() + why.calibration_gain[lo:hi].sum()
            assert total == pytest.approx(result.objective[u], rel=1e-9, abs=1e-9)


@SETTINGS
@given(inst=instances(), k=st.integers(1, 5), min_share=st.sampled_from([False, True]))
def test_explain_changes_no_list(inst, k, min_share):
    indptr, items, scores = inst.csr()
    args = (indptr, items, scores, inst.matrix, np.array(inst.targets), k, np.array(inst.lam))
    plain = rerank_arrays(*args, min_share=min_share, order="score")
    explained = rerank_arrays(*args, min_share=min_share, order="score", explain=True)
    assert np.array_equal(plain.positions, explained.positions)
    assert plain.explanation is None


def test_quota_reason():
    """Target 80/20 over (a, b), k = 5, quotas ⌊5·0.8⌋ = 4 a, ⌊5·0.2⌋ = 1 b; the 'b' item is the
    lowest scored and λ is tiny, so it is there for its quota."""
    matrix = sp.csr_matrix(np.array([[1.0, 0.0]] * 6 + [[0.0, 1.0]]))
    result = rerank_arrays([0, 7], np.arange(7), [0.9, 0.8, 0.7, 0.6, 0.5, 0.4, 0.1], matrix,
                           np.array([[0.8, 0.2]]), k=5, lam=0.01, min_share=True, explain=True)
    reasons = dict(zip(result.items.tolist(), (REASONS[c] for c in result.explanation.reason), strict=True))
    assert reasons[6] == "quota"
    assert result.explanation.input_rank[result.items.tolist().index(6)] == 7


def test_frame_columns_and_report_counts():
    cats = pd.DataFrame({"item_id": ["a1", "a2", "a3", "b1"], "category": ["a", "a", "a", "b"]})
    history = pd.DataFrame({"user_id": ["u", "u"], "item_id": ["a1", "b1"]})
    cand = pd.DataFrame({"user_id": "u", "item_id": ["a1", "a2", "a3", "b1"], "score": [0.9, 0.8, 0.7, 0.1]})
    reranker = CalibratedReranker(k=2, lam=0.9, normalize=None).fit(history, cats)
    out = reranker.rerank(cand, explain=True)
    assert list(out.columns) == ["user_id", "item_id", "score", "rank", "input_rank", "score_gain",
                                 "calibration_gain", "reason"]
    assert out["item_id"].tolist() == ["a1", "b1"]
    assert out["reason"].tolist() == ["score", "calibration"]
    assert out["input_rank"].tolist() == [1, 4]
    assert reranker.report_.reasons.to_dict() == {"score": 1, "calibration": 1, "quota": 0, "swap": 0,
                                                  "safeguard": 0}
    assert "why each item is there: 1 score, 1 calibration" in reranker.report_.summary()
    assert list(reranker.rerank(cand).columns) == ["user_id", "item_id", "score", "rank"]


@SETTINGS
@given(inst=instances(max_n=8), k=st.integers(2, 5))
def test_swap_reason_only_where_the_refinement_swapped(inst, k):
    """refine="swap": explaining changes no list; an item is 'swap' only for users whose search
    made swaps, and then it is not in the refinement's start list (the safeguarded greedy's)."""
    indptr, items, scores = inst.csr()
    args = (indptr, items, scores, inst.matrix, np.array(inst.targets), k, np.array(inst.lam))
    refined = rerank_arrays(*args, refine="swap", explain=True)
    plain = rerank_arrays(*args, refine="swap")
    start = rerank_arrays(*args, safeguard=True)
    assert np.array_equal(refined.positions, plain.positions)
    for u in range(len(inst.users)):
        lo, hi = refined.indptr[u], refined.indptr[u + 1]
        swapped = [REASONS[c] == "swap" for c in refined.explanation.reason[lo:hi]]
        before = set(start.positions[start.indptr[u] : start.indptr[u + 1]].tolist())
        assert swapped == [p not in before for p in refined.positions[lo:hi].tolist()]
        if any(swapped):
            assert refined.swaps[u] > 0
