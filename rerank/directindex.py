"""Integer ids in a dense range -> fitted rows, by direct addressing (issue 16, frames).

``pandas.Index.get_indexer`` hashes every one of 10⁸ candidate item ids (≈ 1.2 s, plus its
own full-length temporaries). Item ids are usually integers numbered densely, so a table with
one slot per id of the fitted range answers the same question with one array read per id:

    row(id) = table[id - lo]   if lo <= id <= hi and the slot holds a row, else "absent"

:class:`DirectIndex` is built only when both sides are plain int64 (exact: no float, no
object conversion) and the fitted range is at most ``DIRECT_SPAN`` times the number of fitted
ids (plus 1,024 slots), so the table costs at most ``8 × DIRECT_SPAN`` bytes per fitted id.
Anything else keeps the exact lookup of :func:`rerank.ids.lookup`.

For an interleaved frame the lookup also reads the ids through the frame's user order
(:meth:`DirectIndex.gathered_rows`, ``row[i] = table[ids[order[i]] - lo]``, the scores gathered
in the same pass), so the ids are never gathered into a 10⁸-row array of their own.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from numba import prange

from rerank._numba import compiled
from rerank.grouping import gather_chunks
from rerank.scan import DIRECT_SPAN, direct_rows

__all__ = ["DIRECT_SPAN", "DirectIndex", "cached_direct_index", "cached_direct_rows"]


def _plain_int64(ids) -> np.ndarray | None:
    values = ids.to_numpy() if isinstance(ids, pd.Index | pd.Series) else ids
    if isinstance(values, np.ndarray) and values.dtype == np.int64 and values.ndim == 1:
        return values
    return None


class DirectIndex:
    """Fitted int64 ids -> row (module docstring); ``table[id - lo]`` is the row or ``-1``."""

    def __init__(self, lo: int, table: np.ndarray) -> None:
        self.lo = lo
        self.table = table

    @classmethod
    def of(cls, fitted: pd.Index) -> DirectIndex | None:
        """The index of ``fitted`` (row ``r`` is ``fitted[r]``), or ``None`` when it does not
        apply (not plain int64, empty, repeated ids, or too sparse a range)."""
        values = _plain_int64(fitted)
        if values is None or not len(values) or not fitted.is_unique:
            return None
        lo, hi = int(values.min()), int(values.max())
        if hi - lo + 1 > DIRECT_SPAN * len(values) + 1024:
            return None
        table = np.full(hi - lo + 1, -1, dtype=np.int64)
        table[values - lo] = np.arange(len(values), dtype=np.int64)
        return cls(lo, table)

    def rows_for(self, ids, missing: int) -> np.ndarray | None:
        """Row of each id (``missing`` for an id not fitted), or ``None`` when ``ids`` are not
        plain int64 (the caller then takes the general lookup)."""
        values = _plain_int64(ids)
        if values is None:
            return None
        return direct_rows(values, self.table, self.lo, missing)[0]

    def gathered_rows(self, ids, order: np.ndarray, missing: int,
                      values: np.ndarray) -> tuple[np.ndarray, np.ndarray, int] | None:
        """``(rows, gathered, n_missing)``: the row of ``ids[order[i]]`` for each ``i``
        (``missing`` for an id not fitted), ``values[order]`` (8-byte numbers, read in the same
        pass: one walk through ``order`` instead of two) and how many ids were missing; ``None``
        when ``ids`` are not plain int64."""
        ids = _plain_int64(ids)
        if ids is None:
            return None
        rows = np.empty(order.shape[0], dtype=np.int64)
        gathered = np.empty(order.shape[0], dtype=values.dtype)
        n_missing = _gather_rows(ids, order, self.table, self.lo, missing, rows,
                                 np.ascontiguousarray(values).view(np.int64), gathered.view(np.int64),
                                 gather_chunks(order.shape[0]))
        return rows, gathered, int(n_missing)


@compiled(parallel=True)
def _gather_rows(ids, order, table, lo, missing, rows, values, gathered, n_chunks):
    """``rows[i] = table[ids[order[i]] - lo]`` (``missing`` outside the table or on a ``-1``
    slot) and ``gathered[i] = values[order[i]]`` (64-bit patterns: one signature for int64,
    uint64 and float64), in ``n_chunks`` chunks run in parallel; returns how many were missing."""
    n = order.shape[0]
    span = table.shape[0]
    size = (n + n_chunks - 1) // n_chunks
    n_missing = np.zeros(n_chunks, dtype=np.int64)
    for c in prange(n_chunks):
        for i in range(c * size, min(n, (c + 1) * size)):
            at = order[i]
            gathered[i] = values[at]
            slot = ids[at] - lo
            row = table[slot] if 0 <= slot < span else -1
            if row < 0:
                row = missing
                n_missing[c] += 1
            rows[i] = row
    return n_missing.sum()


def cached_direct_index(owner, key: str, fitted: pd.Index) -> DirectIndex | None:
    """The :class:`DirectIndex` of ``fitted``, built once and kept in
    ``owner.__dict__["_direct_index"][key]`` beside ``fitted`` (rebuilt when ``fitted`` is
    another object: a new fit); ``None`` when direct addressing does not apply."""
    cache = owner.__dict__.setdefault("_direct_index", {})
    held = cache.get(key)
    if held is None or held[0] is not fitted:
        held = cache[key] = (fitted, DirectIndex.of(fitted))
    return held[1]


def cached_direct_rows(owner, key: str, fitted: pd.Index, ids, missing: int) -> np.ndarray | None:
    """:meth:`DirectIndex.rows_for` through :func:`cached_direct_index`; ``None`` when direct
    addressing does not apply."""
    index = cached_direct_index(owner, key, fitted)
    return None if index is None else index.rows_for(ids, missing)
