"""The one top-n: a score block in, each row's ``n`` best columns out (deterministic ties).

Adapters and the simulator take their candidates with these, in blocks of users of about
``BLOCK_CELLS`` scores; the result is the flat ``(row, column, score)`` triples that
:meth:`rerank.engine.CandidateLists.from_rows` turns into candidate lists.

* :func:`top_n_dense` — a dense block; ``-inf`` marks an excluded cell (seen, filtered);
* :func:`top_n_stored` / :func:`csr_top_n` — the *stored* entries of a sparse block (an entry that
  is not stored is not a candidate), compiled and parallel over rows.

Rule, both: per row, the ``n`` highest scores, ties by lower column (item index); rows come in
order, each sorted by score descending; NaN or ``+inf`` raise :class:`rerank.errors.InputError`.
The result does not depend on the thread count or on the order of a row's stored entries.
"""

from __future__ import annotations

import numba
import numpy as np
import scipy.sparse as sp

from rerank._numba import compiled, kernel_lock
from rerank.errors import InputError

__all__ = ["BLOCK_CELLS", "csr_top_n", "top_n_dense", "top_n_stored"]

#: Default cap on the number of dense scores held at once (users × items in one block).
BLOCK_CELLS = 4_000_000


def top_n_dense(scores: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per row, the ``n`` highest finite scores of a dense block (module docstring).

    ``argpartition`` at position ``n`` puts the n best columns of each row last and the
    (n+1)-th best just before them. A row where that (n+1)-th value equals the n-th (a tie
    straddling the cut, where argpartition's choice among equal scores may differ from "lower
    column first"), or whose n-th value is ``-inf``, is redone by the rule itself.
    Returns ``(row, col, score)``: int64, int64, float64.
    """
    bad = ~(scores < np.inf)  # NaN or +inf
    if bad.any():
        r, c = np.argwhere(bad)[0]
        raise InputError(
            f"the model produced a non-finite score {scores[r, c]} (block row {r}, item column {c})"
        )
    n_rows, n_cols = scores.shape
    if n >= n_cols or n_rows == 0:
        return _top_n_exact(scores, n)
    # ascending partition: the last n+1 columns hold the n+1 largest, the (n+1)-th first
    part = np.argpartition(scores, n_cols - n - 1, axis=1)[:, n_cols - n - 1 :]
    vals = np.take_along_axis(scores, part, axis=1)
    kth = vals[:, 1:].min(axis=1)
    redo = (vals[:, 0] == kth) | np.isneginf(kth)
    part, vals = part[:, 1:], vals[:, 1:].astype(np.float64)
    order = np.lexsort((part, -vals), axis=1)  # per row: score desc, then column asc
    part = np.take_along_axis(part, order, axis=1)
    vals = np.take_along_axis(vals, order, axis=1)
    keep = np.flatnonzero(~redo)
    rows = np.repeat(keep, n)
    cols = part[keep].ravel()
    flat = vals[keep].ravel()
    if keep.size < n_rows:
        bad = np.flatnonzero(redo)
        r, c, v = _top_n_exact(scores[bad], n)
        rows = np.concatenate([rows, bad[r]])
        cols = np.concatenate([cols, c])
        flat = np.concatenate([flat, v])
        by_row = np.argsort(rows, kind="stable")
        rows, cols, flat = rows[by_row], cols[by_row], flat[by_row]
    return rows.astype(np.int64), cols.astype(np.int64), flat


def _top_n_exact(scores: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """:func:`top_n_dense` by the rule itself: ``argpartition`` picks n cells per row; rows where
    cells equal to the n-th value straddle the cut are redone by "everything above the n-th
    value, then ties by lower column"."""
    n_rows, n_cols = scores.shape
    n = min(n, n_cols)
    if n_rows == 0 or n == 0:
        empty = np.empty(0, dtype=np.int64)
        return empty, empty, np.empty(0, dtype=np.float64)
    if n < n_cols:
        cols = np.argpartition(-scores, n - 1, axis=1)[:, :n]
        vals = np.take_along_axis(scores, cols, axis=1)
        kth = vals.min(axis=1)
        straddle = np.flatnonzero((scores >= kth[:, None]).sum(axis=1) > n)
        if straddle.size:  # exact rule: everything above the n-th value, then ties by column
            sub = scores[straddle]
            above = sub > kth[straddle, None]
            at = sub == kth[straddle, None]
            room = n - above.sum(axis=1)
            take = above | (at & (np.cumsum(at, axis=1) <= room[:, None]))
            cols[straddle] = np.nonzero(take)[1].reshape(straddle.size, n)
            vals[straddle] = np.take_along_axis(sub, cols[straddle], axis=1)
    else:
        cols = np.broadcast_to(np.arange(n_cols), scores.shape)
        vals = scores
    rows = np.repeat(np.arange(n_rows, dtype=np.int64), n)
    cols = cols.ravel().astype(np.int64)
    vals = vals.ravel().astype(np.float64)
    keep = vals > -np.inf
    rows, cols, vals = rows[keep], cols[keep], vals[keep]
    order = np.lexsort((cols, -vals, rows))
    return rows[order], cols[order], vals[order]


def top_n_stored(
    block: sp.spmatrix,
    n: int,
    *,
    seen: sp.spmatrix | None = None,
    cols: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Top-n of the *stored* entries of a users × all-items sparse score block (an entry that
    is not stored is not a candidate), skipping the items stored in the same row of ``seen``
    and, when given, items outside ``cols``. Ties by lower item index.

    Returns ``(row, item, score)``, item indices into the full catalogue. Runs the compiled
    per-row kernel :func:`csr_top_n` (parallel over rows).
    """
    block = sp.csr_matrix(block)
    if not np.all(np.isfinite(block.data)):
        raise InputError("the model produced a non-finite score")
    allowed = None
    if cols is not None:
        allowed = np.zeros(block.shape[1], dtype=bool)
        allowed[cols] = True
    return csr_top_n(block, n, seen=seen, allowed=allowed)


@compiled()
def _is_seen(seen_indices, start, stop, item):
    """Binary search of ``item`` in the sorted ``seen_indices[start:stop]``."""
    lo, hi = start, stop
    while lo < hi:
        mid = (lo + hi) // 2
        if seen_indices[mid] < item:
            lo = mid + 1
        else:
            hi = mid
    return lo < stop and seen_indices[lo] == item


@compiled(parallel=True)
def _csr_top_n(indptr, indices, data, seen_indptr, seen_indices, allowed, n, out_cols, out_vals, counts):
    n_rows = indptr.size - 1
    for r in numba.prange(n_rows):
        start, stop = indptr[r], indptr[r + 1]
        s0, s1 = seen_indptr[r], seen_indptr[r + 1]
        cols = np.empty(stop - start, dtype=np.int64)
        neg = np.empty(stop - start, dtype=np.float64)
        m = 0
        for p in range(start, stop):
            item = indices[p]
            if not allowed[item] or not data[p] > -np.inf:
                continue
            if s1 > s0 and _is_seen(seen_indices, s0, s1, item):
                continue
            cols[m] = item
            neg[m] = -data[p]
            m += 1
        c = min(n, m)
        if c == 0:
            counts[r] = 0
            continue
        if m > 2 * c:
            # Keep only entries at or above the c-th best value (ties included), then sort.
            threshold = np.partition(neg[:m], c - 1)[c - 1]
            w = 0
            for j in range(m):
                if neg[j] <= threshold:
                    cols[w] = cols[j]
                    neg[w] = neg[j]
                    w += 1
            m = w
        order = np.argsort(neg[:m])
        # Ties: widen to the whole run of values equal to the c-th, then order every run of
        # equal values by item (insertion sort: runs are short), so the cut is deterministic.
        end = c
        while end < m and neg[order[end]] == neg[order[c - 1]]:
            end += 1
        j = 0
        while j < end:
            k = j + 1
            while k < end and neg[order[k]] == neg[order[j]]:
                k += 1
            for a in range(j + 1, k):
                cur = order[a]
                b = a - 1
                while b >= j and cols[order[b]] > cols[cur]:
                    order[b + 1] = order[b]
                    b -= 1
                order[b + 1] = cur
            j = k
        for j in range(c):
            out_cols[r, j] = cols[order[j]]
            out_vals[r, j] = -neg[order[j]]
        counts[r] = c


def csr_top_n(block, n: int, seen=None, allowed: np.ndarray | None = None):
    """``(row, item, score)`` of the top-``n`` stored entries per row of the CSR ``block``,
    skipping the items stored in the same row of the CSR ``seen`` and items where
    ``allowed`` is False."""
    block = block.tocsr()  # indices need not be sorted; duplicates must not occur
    n_rows, n_items = block.shape
    if seen is None:
        seen_indptr = np.zeros(n_rows + 1, dtype=np.int64)
        seen_indices = np.zeros(0, dtype=np.int64)
    else:
        seen = seen.tocsr()
        if not seen.has_canonical_format:
            seen = seen.copy()
            seen.sum_duplicates()
        seen_indptr = seen.indptr.astype(np.int64)
        seen_indices = seen.indices.astype(np.int64)
    if allowed is None:
        allowed = np.ones(n_items, dtype=np.bool_)
    width = int(min(n, max(int(np.diff(block.indptr).max(initial=0)), 1)))
    out_cols = np.full((n_rows, width), -1, dtype=np.int64)
    out_vals = np.zeros((n_rows, width), dtype=np.float64)
    counts = np.zeros(n_rows, dtype=np.int64)
    if n_rows:
        with kernel_lock():
            _csr_top_n(
                block.indptr.astype(np.int64), block.indices.astype(np.int64),
                block.data.astype(np.float64), seen_indptr, seen_indices,
                np.ascontiguousarray(allowed, dtype=np.bool_), width, out_cols, out_vals, counts,
            )
    filled = np.arange(width)[None, :] < counts[:, None]
    rows = np.broadcast_to(np.arange(n_rows, dtype=np.int64)[:, None], filled.shape)[filled]
    return rows, out_cols[filled], out_vals[filled]
