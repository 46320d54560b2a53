"""Pages that remember (docs/design.md §9.3): a shown prefix fills the first positions of q and
its candidates are not picked again; the kernel against the pure-Python reference."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp
from budget import examples
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from rerank import rerank_arrays
from rerank.errors import InputError
from rerank.testing import reference_beyond as bref
from rerank.testing.strategies import (
    BEYOND_OPTIONS,
    attribute_instances,
    beyond_keywords,
    instances,
    reference_attributes,
    shown_prefixes,
)

SETTINGS = settings(max_examples=examples(150), deadline=None, suppress_health_check=[HealthCheck.too_slow])


def check_against_reference(inst, shown, k, options):
    """The shown candidates are gone before anything runs (min-max included): the reference
    gets only the candidates left, and the shown items as the prefix of q."""
    indptr, items, scores = inst.csr()
    result = rerank_arrays(indptr, items, scores, inst.matrix, np.array(inst.targets), k, np.array(inst.lam),
                           **beyond_keywords(inst, shown), **options)
    for u in range(len(inst.users)):
        got = result.items[result.indptr[u] : result.indptr[u + 1]].tolist()
        left = [j for j, item in enumerate(inst.users[u]) if item not in shown[u]]
        local = bref.general_greedy(
            [inst.scores[u][j] for j in left], [inst.local_cats(u)[j] for j in left], inst.targets[u], k,
            inst.lam[u], shown_cats=[inst.item_cats[i] for i in shown[u]], **reference_attributes(inst), **options,
        )
        assert got == [inst.users[u][left[j]] for j in local]
        assert not set(got) & set(shown[u])
        assert result.shown_removed[u] == len(inst.users[u]) - len(left)


@SETTINGS
@given(data=st.data(), k=st.integers(1, 5), options=BEYOND_OPTIONS, alpha=st.sampled_from([0.01, 0.3]))
def test_shown_prefix_equals_the_reference(data, k, options, alpha):
    inst = data.draw(instances())
    check_against_reference(inst, data.draw(shown_prefixes(inst)), k, {**options, "alpha": alpha})


@SETTINGS
@given(data=st.data(), k=st.integers(1, 4), options=BEYOND_OPTIONS)
def test_shown_prefix_with_two_attributes_equals_the_reference(data, k, options):
    inst = data.draw(attribute_instances())
    check_against_reference(inst, data.draw(shown_prefixes(inst)), k, options)


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


@pytest.mark.parametrize("quota", [False, True])
def test_a_shown_prefix_gives_the_same_lists_on_one_and_two_threads(quota):
    """The prefix's mass is per user, in each block's own buffer: the lists do not depend on
    how the users are cut into blocks and threads (more users than one block holds)."""
    rng = np.random.default_rng(16)
    n_users, n_cand, n_items, n_cat = 3000, 12, 60, 5
    items = np.concatenate([rng.choice(n_items, n_cand, replace=False) for _ in range(n_users)]).astype(np.int64)
    indptr = np.arange(0, n_users * n_cand + 1, n_cand, dtype=np.int64)
    scores = rng.random(n_users * n_cand)
    cats = sp.csr_matrix((np.ones(n_items), (np.arange(n_items), rng.integers(0, n_cat, n_items))),
                         shape=(n_items, n_cat))
    targets = rng.dirichlet(np.ones(n_cat), n_users)
    shown_len = rng.integers(0, 4, n_users)  # some users without a prefix
    shown_indptr = np.concatenate([[0], np.cumsum(shown_len)]).astype(np.int64)
    shown_items = np.concatenate([rng.choice(n_items, m, replace=False) for m in shown_len]).astype(np.int64)
    options = {"min_share": True} if quota else {}
    runs = [
        rerank_arrays(indptr, items, scores, cats, targets, 5, 0.7, target_rows=np.arange(n_users),
                      shown_indptr=shown_indptr, shown_items=shown_items, n_threads=threads, **options)
        for threads in (1, 2)
    ]
    np.testing.assert_array_equal(runs[0].items, runs[1].items)
    np.testing.assert_array_equal(runs[0].indptr, runs[1].indptr)
    # and the prefix changed something: without it the lists differ for some user
    plain = rerank_arrays(indptr, items, scores, cats, targets, 5, 0.7, target_rows=np.arange(n_users), **options)
    assert plain.items.shape != runs[0].items.shape or (plain.items != runs[0].items).any()
