"""Pages that remember (docs/design.md §9.3): a shown prefix fills the first positions of q and
its candidates are not picked again; the kernel against the pure-Python reference."""

from __future__ import annotations

import numpy as np
import pytest
import reference as ref
import scipy.sparse as sp
from budget import examples
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from strategies import attribute_instances, instances

from rerank import rerank_arrays
from rerank.errors import InputError

SETTINGS = settings(max_examples=examples(150), deadline=None, suppress_health_check=[HealthCheck.too_slow])
OPTIONS = st.fixed_dictionaries(
    {
        "divergence": st.sampled_from(["kl", "chi2"]),
        "rank_weights": st.sampled_from(["uniform", "dcg"]),
        "normalize": st.sampled_from([None, "minmax"]),
        "safeguard": st.booleans(),
        "alpha": st.sampled_from([0.01, 0.3]),
    }
)


@st.composite
def shown_prefixes(draw, inst):
    """Per user: a few distinct items (from the whole catalogue, so some are candidates)."""
    return [draw(st.lists(st.integers(0, inst.n_items - 1), max_size=4, unique=True)) for _ in inst.users]


def prefix_csr(shown):
    indptr = np.concatenate([[0], np.cumsum([len(s) for s in shown])]).astype(np.int64)
    return indptr, np.array([i for s in shown for i in s], dtype=np.int64)


def check_against_reference(inst, shown, k, options, attributes=None):
    indptr, items, scores = inst.csr()
    shown_indptr, shown_items = prefix_csr(shown)
    extra = {} if attributes is None else {
        "category_attribute": np.array(inst.cat_attr), "attribute_weights": np.array(inst.attr_w)
    }
    result = rerank_arrays(
        indptr, items, scores, inst.matrix, np.array(inst.targets), k, np.array(inst.lam),
        shown_indptr=shown_indptr, shown_items=shown_items, **extra, **options,
    )
    for u in range(len(inst.users)):
        got = result.items[result.indptr[u] : result.indptr[u + 1]].tolist()
        excluded = [j for j, item in enumerate(inst.users[u]) if item in shown[u]]
        chosen = ref.general_greedy(
            inst.scores[u], inst.local_cats(u), inst.targets[u], k, inst.lam[u],
            cat_attr=None if attributes is None else inst.cat_attr,
            attr_w=None if attributes is None else inst.attr_w,
            shown_cats=[inst.item_cats[i] for i in shown[u]], excluded=excluded,
            normalize=None, **{key: v for key, v in options.items() if key != "normalize"},
        ) if options.get("normalize") is None else None
        if chosen is None:  # min-max over the candidates that are left: the reference gets only those
            left = [j for j in range(len(inst.users[u])) if j not in excluded]
            local = ref.general_greedy(
                [inst.scores[u][j] for j in left], [inst.local_cats(u)[j] for j in left], inst.targets[u], k,
                inst.lam[u], cat_attr=None if attributes is None else inst.cat_attr,
                attr_w=None if attributes is None else inst.attr_w,
                shown_cats=[inst.item_cats[i] for i in shown[u]], **options,
            )
            chosen = [left[j] for j in local]
        assert got == [inst.users[u][j] for j in chosen]
        assert not set(got) & set(shown[u])
        assert result.shown_removed[u] == len(excluded)


@SETTINGS
@given(data=st.data(), k=st.integers(1, 5), options=OPTIONS)
def test_shown_prefix_equals_the_reference(data, k, options):
    inst = data.draw(instances())
    check_against_reference(inst, data.draw(shown_prefixes(inst)), k, options)


@SETTINGS
@given(data=st.data(), k=st.integers(1, 4), options=OPTIONS)
def test_shown_prefix_with_two_attributes_equals_the_reference(data, k, options):
    inst = data.draw(attribute_instances())
    check_against_reference(inst, data.draw(shown_prefixes(inst)), k, options, attributes=True)


@SETTINGS
@given(inst=instances(), k=st.integers(1, 6), method=st.sampled_from(["greedy", "pm2"]),
       min_share=st.sampled_from([False, True]))
def test_an_empty_prefix_changes_nothing(inst, k, method, min_share):
    if method == "pm2":
        min_share = False
    indptr, items, scores = inst.csr()
    common = dict(method=method, min_share=min_share)
    plain = rerank_arrays(indptr, items, scores, inst.matrix, np.array(inst.targets), k, np.array(inst.lam), **common)
    empty = rerank_arrays(
        indptr, items, scores, inst.matrix, np.array(inst.targets), k, np.array(inst.lam),
        shown_indptr=np.zeros(len(inst.users) + 1, dtype=np.int64), shown_items=[], **common,
    )
    assert np.array_equal(plain.positions, empty.positions)
    assert np.array_equal(plain.objective, empty.objective)


def test_page_two_calibrates_the_union():
    """Target 50/50 over (a, b); page 1 showed two 'a' items. With λ = 1 page 2 (k = 2) must be
    two 'b' items, though 'a' items score higher, and without the prefix it is one of each."""
    matrix = sp.csr_matrix(np.array([[1.0, 0.0]] * 4 + [[0.0, 1.0]] * 4))
    scores = [0.9, 0.8, 0.7, 0.6, 0.5, 0.4, 0.3, 0.2]
    common = dict(k=2, lam=1.0)
    page = rerank_arrays([0, 6], [2, 3, 4, 5, 6, 7], scores[2:], matrix, np.array([[0.5, 0.5]]), **common)
    assert sorted(page.items.tolist()) == [2, 4]
    page2 = rerank_arrays([0, 6], [2, 3, 4, 5, 6, 7], scores[2:], matrix, np.array([[0.5, 0.5]]),
                          shown_indptr=[0, 2], shown_items=[0, 1], **common)
    assert sorted(page2.items.tolist()) == [4, 5]


@pytest.mark.parametrize(
    ("keywords", "message"),
    [
        ({"shown_indptr": [0, 1]}, "both"),
        ({"shown_indptr": [0, 1, 2], "shown_items": [0]}, "shown_indptr"),
        ({"shown_indptr": [0, 1], "shown_items": [9]}, "outside"),
        ({"shown_indptr": [0, 2], "shown_items": [1, 1]}, "twice"),
        ({"shown_indptr": [0, 1], "shown_items": [1], "solver": "exact"}, "exact"),
        ({"shown_indptr": [0, 1], "shown_items": [1], "rank_weights": [1.0, 2.0]}, "rank weights"),
    ],
)
def test_bad_prefixes(keywords, message):
    with pytest.raises(InputError, match=message):
        rerank_arrays([0, 2], [0, 1], [1.0, 0.0], sp.csr_matrix(np.eye(2)), np.array([[0.5, 0.5]]), k=1, **keywords)
