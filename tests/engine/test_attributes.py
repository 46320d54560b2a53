"""Several attributes in one objective (docs/design.md §3, §9.1): the kernel against the
pure-Python reference, and one attribute bit for bit as before."""

from __future__ import annotations

import numpy as np
import pytest
from budget import examples
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from rerank import rerank_arrays
from rerank.errors import InputError
from rerank.testing import reference as ref
from rerank.testing import reference_beyond as bref
from rerank.testing.strategies import attribute_instances, instances

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


def lists_of(result, n_users):
    return [result.items[result.indptr[u] : result.indptr[u + 1]].tolist() for u in range(n_users)]


@SETTINGS
@given(inst=attribute_instances(), k=st.integers(1, 5), options=OPTIONS)
def test_two_attributes_equal_the_reference(inst, k, options):
    indptr, items, scores = inst.csr()
    result = rerank_arrays(
        indptr, items, scores, inst.matrix, np.array(inst.targets), k, np.array(inst.lam),
        category_attribute=np.array(inst.cat_attr), attribute_weights=np.array(inst.attr_w), **options,
    )
    for u, got in enumerate(lists_of(result, len(inst.users))):
        chosen = bref.general_greedy(
            inst.scores[u], inst.local_cats(u), inst.targets[u], k, inst.lam[u], cat_attr=inst.cat_attr,
            attr_w=inst.attr_w, **options,
        )
        assert got == [inst.users[u][j] for j in chosen]
        if not chosen:
            continue
        expected = bref.general_objective(
            chosen, ref.normalized(inst.scores[u], options["normalize"]), inst.local_cats(u), inst.targets[u],
            inst.lam[u], options["alpha"], options["divergence"], ref.rank_weight_list(options["rank_weights"], k),
            cat_attr=inst.cat_attr, attr_w=inst.attr_w,
        )
        assert result.objective[u] == pytest.approx(expected, rel=1e-9, abs=1e-9)


@SETTINGS
@given(inst=instances(), k=st.integers(1, 6), divergence=st.sampled_from(["kl", "hellinger", "chi2"]),
       method=st.sampled_from(["greedy", "pm2"]), min_share=st.sampled_from([False, True]))
def test_one_attribute_is_bit_for_bit_the_plain_objective(inst, k, divergence, method, min_share):
    """category_attribute all 0 (any weight) gives exactly today's lists and objectives."""
    if method == "pm2" and min_share:
        min_share = False
    indptr, items, scores = inst.csr()
    common = dict(divergence=divergence, method=method, min_share=min_share)
    plain = rerank_arrays(indptr, items, scores, inst.matrix, np.array(inst.targets), k, np.array(inst.lam), **common)
    one = rerank_arrays(
        indptr, items, scores, inst.matrix, np.array(inst.targets), k, np.array(inst.lam),
        category_attribute=np.zeros(inst.n_cat, dtype=np.int64), attribute_weights=np.array([2.5]), **common,
    )
    assert np.array_equal(plain.positions, one.positions)
    assert np.array_equal(plain.objective, one.objective)


def test_weights_decide_which_attribute_wins():
    """Two attributes pulling apart: item 0 is (a0:x, a1:y'), item 1 (a0:y, a1:x'); the target
    wants x and x'. All weight on attribute 0 picks item 0, all on attribute 1 item 1."""
    matrix = np.array([[1.0, 0.0, 0.0, 1.0], [0.0, 1.0, 1.0, 0.0]])
    import scipy.sparse as sp

    targets = np.array([[1.0, 0.0, 1.0, 0.0]])
    common = dict(k=1, lam=1.0, category_attribute=np.array([0, 0, 1, 1]))
    picks = {
        w: rerank_arrays([0, 2], [0, 1], [0.0, 0.0], sp.csr_matrix(matrix), targets, attribute_weights=w, **common)
        .items.tolist()
        for w in ((1.0, 0.0), (0.0, 1.0))
    }
    assert picks == {(1.0, 0.0): [0], (0.0, 1.0): [1]}


@pytest.mark.parametrize(
    ("options", "message"),
    [({"divergence": "hellinger"}, "Hellinger"), ({"method": "pm2"}, "pm2"), ({"solver": "exact"}, "exact")],
)
def test_what_several_attributes_refuse(options, message):
    import scipy.sparse as sp

    with pytest.raises(InputError, match=message):
        rerank_arrays(
            [0, 2], [0, 1], [1.0, 0.0], sp.csr_matrix(np.eye(2)), np.array([[1.0, 1.0]]), k=1,
            category_attribute=[0, 1], **options,
        )


@pytest.mark.parametrize(
    ("keywords", "message"),
    [
        ({"category_attribute": [0]}, "one entry per category"),
        ({"category_attribute": [0, -1]}, "from 0"),
        ({"category_attribute": [0, 1], "attribute_weights": [1.0]}, "1 values for 2 attributes"),
        ({"category_attribute": [0, 1], "attribute_weights": [0.0, 0.0]}, "not all be 0"),
        ({"category_attribute": [0, 1], "attribute_weights": [1.0, -1.0]}, "nonnegative"),
        ({"attribute_weights": [1.0]}, "needs category_attribute"),
    ],
)
def test_bad_attribute_arrays(keywords, message):
    import scipy.sparse as sp

    with pytest.raises(InputError, match=message):
        rerank_arrays([0, 2], [0, 1], [1.0, 0.0], sp.csr_matrix(np.eye(2)), np.array([[1.0, 1.0]]), k=1, **keywords)


@SETTINGS
@given(inst=attribute_instances(max_n=6), k=st.integers(1, 4), lam=st.sampled_from([0.0, 0.5, 0.9]))
def test_quotas_apply_per_attribute(inst, k, lam):
    """min_share=True with two attributes: each attribute's quotas ⌊k p_a(g)⌋ (its own shares),
    and the list meets as many quota units as any k-subset (brute force over the reference)."""
    indptr, items, scores = inst.csr()
    result = rerank_arrays(
        indptr, items, scores, inst.matrix, np.array(inst.targets), k, lam, min_share=True,
        category_attribute=np.array(inst.cat_attr), attribute_weights=np.array(inst.attr_w),
    )
    for u, got in enumerate(lists_of(result, len(inst.users))):
        r = ref.quotas(inst.targets[u], k)
        cats = inst.local_cats(u)
        chosen = [inst.users[u].index(i) for i in got]
        best = ref.best_met(len(inst.users[u]), k, cats, r) if inst.users[u] else 0
        assert ref.met(chosen, cats, r) == best
        assert result.quota_shortfall[u] == sum(r) - best
