"""Passes over long arrays in chunks, without full-length temporaries (issue 16, frames).

A numpy expression such as ``np.isfinite(scores).all()`` on 10⁸ rows builds a 100 MB mask
first. Each such temporary is fresh memory the kernel must map and zero, and on a virtual
machine that hands freed memory back to its host (free page reporting) every first touch is
a host page fault too: about 1.2 s per GB measured on this project's machine
(docs/performance.md). The functions here walk the array in chunks of ``CHUNK`` rows, so
their temporaries are a few MB, reused from the allocator's heap, and they need no compiled
code (nothing to compile on a first call).
"""

from __future__ import annotations

import numpy as np

__all__ = [
    "CHUNK", "DIRECT_SPAN", "cannot_hold_null", "count_equal", "count_nonfinite", "direct_rows", "null_mask",
    "run_starts",
]

CHUNK = 1 << 18  # rows per chunk: 2 MB of float64, well inside the allocator's reusable heap
DIRECT_SPAN = 4  # a direct-address table may hold up to this many slots (8 bytes each) per id, + 1,024


def cannot_hold_null(values) -> bool:
    """Whether a column's dtype cannot hold a missing value (plain numpy integers and bools),
    so a null check may be skipped without looking at the values."""
    dtype = getattr(values, "dtype", None)
    return isinstance(dtype, np.dtype) and dtype.kind in "iub"


def null_mask(column) -> np.ndarray | None:
    """The null mask of a column (a pandas Series), or ``None`` when it holds no null; a column
    that cannot hold one (:func:`cannot_hold_null`) is not even looked at."""
    if cannot_hold_null(column):
        return None
    mask = column.isna().to_numpy()
    return mask if mask.any() else None


def count_nonfinite(values: np.ndarray) -> tuple[int, int]:
    """``(n, first)``: how many values are NaN or ±inf, and the position of the first (``-1``
    when there is none). Same as ``(np.count_nonzero(~np.isfinite(v)), np.flatnonzero(...)[0])``."""
    n, first = 0, -1
    for start in range(0, values.shape[0], CHUNK):
        bad = ~np.isfinite(values[start:start + CHUNK])
        count = int(np.count_nonzero(bad))
        if count:
            if first < 0:
                first = start + int(np.argmax(bad))
            n += count
    return n, first


def count_equal(values: np.ndarray, value) -> int:
    """``np.count_nonzero(values == value)`` without the full-length mask."""
    chunks = range(0, values.shape[0], CHUNK)
    return sum(int(np.count_nonzero(values[start:start + CHUNK] == value)) for start in chunks)


def run_starts(values: np.ndarray, limit: int | None = None) -> np.ndarray | None:
    """Start of every run of equal neighbours: ``0`` and each ``i`` with
    ``values[i] != values[i - 1]``, i.e. ``np.r_[0, np.flatnonzero(values[1:] != values[:-1]) + 1]``
    for a non-empty array. ``None`` as soon as there are more than ``limit`` runs."""
    n = values.shape[0]
    if n == 0:
        return np.zeros(0, dtype=np.int64)
    parts = [np.zeros(1, dtype=np.int64)]
    found = 1
    for start in range(1, n, CHUNK):
        stop = min(n, start + CHUNK)
        changes = np.flatnonzero(values[start:stop] != values[start - 1:stop - 1])
        if changes.size:
            parts.append(changes + start)
            found += changes.size
            if limit is not None and found > limit:
                return None
    if limit is not None and found > limit:
        return None
    return np.concatenate(parts).astype(np.int64, copy=False)


def direct_rows(ids: np.ndarray, table: np.ndarray, lo: int, missing: int) -> tuple[np.ndarray, int]:
    """``table[id - lo]`` for each integer id (``missing`` where the id lies outside the table or
    its slot holds ``-1``), and how many ids were missing: a lookup by direct addressing, exact
    for int64 ids, with no hashing.

    ``out[i] = table[ids[i] - lo] if 0 <= ids[i] - lo < len(table) and table[...] >= 0 else missing``
    """
    out = np.empty(ids.shape[0], dtype=np.int64)
    span = table.shape[0]
    n_missing = 0
    for start in range(0, ids.shape[0], CHUNK):
        slot = ids[start:start + CHUNK] - np.int64(lo)  # int64 ids: exact, no float conversion
        rows = out[start:start + CHUNK]
        if span and slot.min() >= 0 and slot.max() < span:  # the usual case: every id in range
            np.take(table, slot, out=rows)
        else:
            inside = (slot >= 0) & (slot < span)
            rows[:] = table[np.where(inside, slot, 0)] if span else -1
            rows[~inside] = -1
        absent = rows < 0
        count = int(np.count_nonzero(absent))
        if count:
            rows[absent] = missing
            n_missing += count
    return out, n_missing
