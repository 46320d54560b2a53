"""Compiled per-row top-n over CSR score blocks (parallel over rows, no Python loop).

For row ``r`` the candidates are the stored entries ``(indices[p], data[p])`` whose item is
``allowed`` and not among the row's ``seen`` items (a second CSR, canonical: sorted indices,
looked up by binary search); the output is the ``n`` best by score, ties by lower item index
(runs of equal scores are re-ordered by item after the sort), so the result does not depend
on the thread count or on the order of the row's entries.
"""

from __future__ import annotations

import numba
import numpy as np

from rerank._numba import compiled, kernel_lock


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
