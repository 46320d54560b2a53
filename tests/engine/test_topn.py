"""The one dense top-n (rerank.engine.topn.top_n_dense) against the pure-Python top-n.

``top_n_dense`` has a fast path (``argpartition`` plus a sort of the n best) and the rule itself
for the rows the fast path cannot settle (a tie straddling the cut, fewer than n finite scores,
n at least the width). The property draws blocks where both happen: few distinct values (ties
everywhere), ``-inf`` cells (excluded: seen or filtered), whole rows excluded, float32 blocks
(ALS factors) and n from 1 to past the width.
"""

from __future__ import annotations

import numpy as np
import pytest
from budget import examples
from hypothesis import example, given, settings
from hypothesis import strategies as st

from rerank.engine.topn import top_n_dense
from rerank.errors import InputError
from rerank.testing import reference as ref

TIE_VALUES = st.sampled_from([-np.inf, -1.0, 0.0, 0.5, 0.5, 2.0])
FREE_VALUES = st.floats(-1e6, 1e6, allow_nan=False, allow_infinity=False) | st.just(-np.inf)


@st.composite
def blocks(draw):
    n_rows = draw(st.integers(0, 7))
    n_cols = draw(st.integers(1, 14))
    values = TIE_VALUES if draw(st.booleans()) else FREE_VALUES
    cells = draw(st.lists(values, min_size=n_rows * n_cols, max_size=n_rows * n_cols))
    dtype = draw(st.sampled_from([np.float64, np.float32]))
    scores = np.array(cells, dtype=np.float64).reshape(n_rows, n_cols).astype(dtype)
    n = draw(st.integers(1, n_cols + 2))
    return scores, n


def as_lists(rows, cols, vals, n_rows) -> dict:
    """``(row, col, score)`` triples -> {row: [(col, score), ...]} in output order."""
    out = {u: [] for u in range(n_rows)}
    for r, c, v in zip(rows.tolist(), cols.tolist(), vals.tolist(), strict=True):
        out[r].append((c, v))
    return out


@settings(max_examples=examples(300), deadline=None)
@given(blocks())
@example((np.array([[1.0, 2.0, 2.0, 2.0, 0.0]]), 2))  # a tie straddles the cut
@example((np.array([[2.0, -np.inf, 2.0, 2.0], [5.0, 5.0, 5.0, 5.0]], dtype=np.float32), 3))
@example((np.array([[-np.inf, -np.inf, 1.0, -np.inf]]), 2))  # fewer finite scores than n
def test_top_n_dense_is_the_reference_top_n(block):
    """Per row the n highest finite scores, ties by lower column, by score descending; rows in
    order; int64 / int64 / float64."""
    scores, n = block
    rows, cols, vals = top_n_dense(scores, n)
    assert (rows.dtype, cols.dtype, vals.dtype) == (np.int64, np.int64, np.float64)
    assert np.all(np.diff(rows) >= 0)
    n_rows, n_cols = scores.shape
    want = ref.top_n(
        lambda u, i: None if scores[u, i] == -np.inf else scores[u, i], range(n_rows), n_cols, n
    )
    assert as_lists(rows, cols, vals, n_rows) == want


@pytest.mark.parametrize("bad", [np.nan, np.inf])
def test_top_n_dense_names_a_non_finite_score(bad):
    scores = np.zeros((3, 6))
    scores[2, 4] = bad
    with pytest.raises(InputError, match=r"non-finite score .* \(block row 2, item column 4\)"):
        top_n_dense(scores, 2)
