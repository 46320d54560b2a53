"""Vectorised grouping helpers for the frame API (issue 6: frame overhead within 2× the kernel).

Candidate frames almost always arrive *grouped*: all rows of a user next to each other (that
is how a recommender writes its top-n). :func:`user_groups` recognises that in O(rows)
(compare neighbours, then check the run heads are distinct) and skips the hash-based
``factorize`` and the ``argsort``; any other order takes the general path, with the same result
(users in order of first appearance, rows stable within a user).

``pandas.DataFrame.duplicated`` on two id columns hashes row tuples and costs about as much as
the whole reranking at 10⁸ rows. :func:`duplicated_pairs` gives the same answer from the user
groups and either one compiled pass with a small hash table per user (numeric item ids,
grouped users) or an item ``factorize`` and one compiled pass.
"""

from __future__ import annotations

from dataclasses import dataclass

import numba
import numpy as np
import pandas as pd
from numba import prange

from rerank._numba import compiled
from rerank.scan import CHUNK, DIRECT_SPAN, run_starts


@dataclass(frozen=True)
class Groups:
    """Rows grouped by a key: ``uniques`` in order of first appearance; group ``g`` is
    ``order[indptr[g]:indptr[g+1]]`` (input order within the group); ``order is None`` means
    the rows are already grouped (``order`` would be ``arange``). ``codes`` is the group of
    each row (``-1`` for a missing key, which belongs to no group), built on demand."""

    uniques: pd.Index
    indptr: np.ndarray
    order: np.ndarray | None  # int32 below 2³¹ rows (index_dtype), else int64
    given_codes: np.ndarray | None = None

    @property
    def codes(self) -> np.ndarray:
        if self.given_codes is not None:
            return self.given_codes
        grouped = np.repeat(np.arange(len(self.uniques), dtype=np.int64), np.diff(self.indptr))
        if self.order is None:
            return grouped
        codes = np.empty_like(grouped)  # every row has a group here (no missing key)
        codes[self.order] = grouped
        return codes

    @property
    def rows(self) -> np.ndarray:
        return np.arange(self.indptr[-1], dtype=np.int64) if self.order is None else self.order


def index_dtype(n: int) -> type:
    """The dtype of row numbers into ``n`` rows: int32 below 2³¹ (half the memory and memory
    traffic of int64 in a sort that scatters 10⁸ of them), else int64."""
    return np.int32 if n < 2**31 else np.int64


def _runs(values: np.ndarray) -> np.ndarray | None:
    """Start of each run of equal neighbours, or ``None`` if some key comes back later."""
    n = values.shape[0]
    # more runs than half the rows: interleaved (or single-row) users, take the general path
    # (which gives the same groups); a first chunk that already has that many says so early
    if n > 2 * CHUNK and len(run_starts(values[:CHUNK])) > CHUNK // 2:
        return None
    starts = run_starts(values, limit=max(n // 2, 1))
    if starts is None or not pd.Index(values[starts]).is_unique:
        return None
    return starts


def user_groups(keys) -> Groups:
    """Group the rows of ``keys`` (a Series or array): same as ``pd.factorize(keys, sort=False)``
    followed by a stable ``argsort`` of the codes, in O(rows) when the rows are grouped.

    Interleaved integer keys are numbered by one compiled pass over a direct-address table
    when their range is at most ``DIRECT_SPAN`` times the number of rows (the usual dense user
    numbering), then placed by a counting sort that reads each row's group through that table
    (no per-row codes), on every numba thread (the order is the same for any number of
    threads); other keys go through ``pd.factorize``.
    """
    values = keys.to_numpy() if isinstance(keys, pd.Series) else np.asarray(keys)
    n = values.shape[0]
    if values.dtype.kind in "iub" or (values.dtype.kind == "f" and not np.isnan(values).any()):
        starts = _runs(values)
        if starts is not None:
            indptr = np.append(starts, n).astype(np.int64)
            uniques = pd.Index(values[starts], dtype=getattr(keys, "dtype", None))
            return Groups(uniques, indptr, None)
    if values.dtype.kind in "iu" and n:
        lo, hi = int(values.min()), int(values.max())
        if hi - lo <= DIRECT_SPAN * n + 1024 and hi <= INT64_MAX:  # placed via the table: no per-row codes
            ints = values.astype(np.int64, copy=False)
            code_of, firsts = _number_dense(ints, lo, hi - lo + 1)
            order, indptr = _sorted_by_group(ints, lo, code_of, len(firsts))
            return Groups(pd.Index(values[firsts], dtype=getattr(keys, "dtype", None)), indptr, order)
    codes, uniques = pd.factorize(keys, sort=False, use_na_sentinel=True)
    codes = codes.astype(np.int64, copy=False)
    order, indptr = _sorted_by_group(codes, -1, np.arange(-1, len(uniques)), len(uniques))
    return Groups(pd.Index(uniques), indptr, order, codes)


def _sorted_by_group(keys: np.ndarray, lo: int, code_of: np.ndarray, n_groups: int):
    """:func:`_counting_sort` on every numba thread for large inputs with few enough groups;
    the order comes in :func:`index_dtype` (the dtype of ``code_of`` decides it)."""
    n = keys.shape[0]
    chunks = numba.get_num_threads() if n >= SORT_CHUNK_ROWS and n_groups * 8 <= n else 1
    return _counting_sort(keys, lo, code_of.astype(index_dtype(n), copy=False), n_groups, chunks)


INT64_MAX = np.iinfo(np.int64).max
SORT_CHUNK_ROWS = 1 << 20  # counting sorts of fewer rows run on one thread


@compiled()
def _number_dense(values, lo, span):
    """Group codes in order of first appearance through a table indexed by ``value - lo``:
    returns the table (``code_of[value - lo]``, ``-1`` for a value absent) and the first row of
    each code."""
    code_of = np.full(span, -1, dtype=np.int64)
    n = values.shape[0]
    firsts = np.empty(min(n, span), dtype=np.int64)
    n_codes = 0
    for r in range(n):
        slot = values[r] - lo
        if code_of[slot] < 0:
            code_of[slot] = n_codes
            firsts[n_codes] = r
            n_codes += 1
    return code_of, firsts[:n_codes].copy()


@compiled(parallel=True)
def _counting_sort(keys, lo, code_of, n_groups, n_chunks):
    """Stable counting sort of the rows by their group ``code_of[keys[r] - lo]`` (rows of group
    -1 left out): the same order as ``argsort(codes, kind="stable")`` without the missing rows,
    and each group's bounds. The group is read through the table twice instead of being stored
    per row (a 10⁸-row int64 array is 800 MB of fresh memory). The rows are cut into
    ``n_chunks`` consecutive chunks, counted and placed in parallel; chunk ``c`` writes each
    group's rows after those of the chunks before it, so the order does not depend on
    ``n_chunks``. The order and the counts take the dtype of ``code_of``: int32 tables halve
    the scattered writes (:func:`index_dtype`); int64 is needed from 2³¹ rows."""
    n = keys.shape[0]
    size = (n + n_chunks - 1) // n_chunks
    counts = np.zeros((n_chunks, n_groups), dtype=code_of.dtype)
    for c in prange(n_chunks):
        for r in range(c * size, min(n, (c + 1) * size)):
            g = code_of[keys[r] - lo]
            if g >= 0:
                counts[c, g] += 1
    indptr = np.zeros(n_groups + 1, dtype=np.int64)
    total = 0
    for g in range(n_groups):
        indptr[g] = total
        for c in range(n_chunks):
            count = counts[c, g]
            counts[c, g] = total  # from here on: where chunk c writes its next row of group g
            total += count
    indptr[n_groups] = total
    order = np.empty(total, dtype=code_of.dtype)
    for c in prange(n_chunks):
        for r in range(c * size, min(n, (c + 1) * size)):
            g = code_of[keys[r] - lo]
            if g >= 0:
                order[counts[c, g]] = r
                counts[c, g] += 1
    return order, indptr


@compiled(parallel=True)
def _gather(values, order, out, n_chunks):
    """``out[i] = values[order[i]]``, in ``n_chunks`` chunks run in parallel."""
    n = order.shape[0]
    size = (n + n_chunks - 1) // n_chunks
    for c in prange(n_chunks):
        for i in range(c * size, min(n, (c + 1) * size)):
            out[i] = values[order[i]]


def gather_chunks(n: int) -> int:
    """How many chunks a parallel gather of ``n`` rows is cut into: one per numba thread, but
    at least ``SORT_CHUNK_ROWS`` rows each (a small gather runs on one thread)."""
    return max(1, min(numba.get_num_threads(), n // SORT_CHUNK_ROWS))


def take(values, order: np.ndarray):
    """``values`` (an array or a pandas array) at the positions ``order``; 8-byte numeric
    arrays are gathered in parallel (as 64-bit patterns, so one compiled signature serves
    int64, uint64 and float64)."""
    if isinstance(values, np.ndarray) and values.dtype.kind in "iuf" and values.dtype.itemsize == 8:
        out = np.empty(order.shape[0], dtype=values.dtype)
        _gather(np.ascontiguousarray(values).view(np.int64), order, out.view(np.int64), gather_chunks(order.shape[0]))
        return out
    return values.take(order)


def _group_order(codes: np.ndarray, n_groups: int) -> tuple[np.ndarray, np.ndarray]:
    """Stable counting sort of the rows by ``codes`` (rows with code -1 left out), one thread."""
    return _counting_sort(codes, -1, np.arange(-1, n_groups, dtype=index_dtype(len(codes))), n_groups, 1)


@compiled()
def _mark_repeats(order, group, value, n_values, out):
    """Rows are visited in ``order`` (grouped by ``group``, stable); a row whose ``value`` was
    already seen in its group is marked. ``seen[v]`` holds the last group that saw ``v``."""
    seen = np.full(n_values, -1, dtype=np.int64)
    for r in order:
        g = group[r]
        v = value[r]
        if seen[v] == g:
            out[r] = True
        else:
            seen[v] = g


@compiled()
def _mark_repeats_grouped(indptr, order, use_order, bits, is_nan, out):
    """Rows of group ``g`` are ``order[indptr[g]:indptr[g+1]]`` (or that range itself when not
    ``use_order``); ``bits`` the 64-bit pattern of each value (``-0.0`` already folded into
    ``0.0``), ``is_nan`` marks NaN (all NaN are one value). Open addressing per group."""
    size = 16
    for g in range(indptr.shape[0] - 1):
        size = max(size, 2 * (indptr[g + 1] - indptr[g]))
    cap = 1
    while cap < size:
        cap *= 2
    table = np.empty(cap, dtype=np.int64)  # row index of the value stored in the slot, -1 empty
    mask = cap - 1
    for g in range(indptr.shape[0] - 1):
        lo = indptr[g]
        hi = indptr[g + 1]
        m = 16
        while m < 2 * (hi - lo):
            m *= 2
        table[:m] = -1
        seen_nan = False
        for i in range(lo, hi):
            r = order[i] if use_order else i
            if is_nan[r]:
                if seen_nan:
                    out[r] = True
                seen_nan = True
                continue
            v = bits[r]
            h = ((v * np.int64(-7046029254386353131)) >> np.int64(40)) & (m - 1) & mask
            while True:
                other = table[h]
                if other < 0:
                    table[h] = r
                    break
                if bits[other] == v:
                    out[r] = True
                    break
                h = (h + 1) & (m - 1)


def duplicated_pairs(first, second, groups: Groups | None = None) -> np.ndarray:
    """Boolean mask of rows whose ``(first, second)`` pair occurred in an earlier row.

    Same result as ``DataFrame({"a": first, "b": second}).duplicated()`` (keep="first"; a
    missing value counts as one more value, equal to itself). ``groups``: the
    :func:`user_groups` of ``first`` if already computed.
    """
    return _duplicated_in_groups(user_groups(first) if groups is None else groups, second)


def duplicated_within(indptr: np.ndarray, values) -> np.ndarray:
    """Boolean mask of the entries whose value occurred earlier in the same group, for groups
    that lie together (group ``g`` is ``values[indptr[g]:indptr[g + 1]]``): ``duplicated_pairs``
    of (group, value) in that layout, without looking at the group keys."""
    return _duplicated_in_groups(Groups(pd.RangeIndex(len(indptr) - 1), indptr, None), values)


def _duplicated_in_groups(groups: Groups, second) -> np.ndarray:
    n = len(second)
    out = np.zeros(n, dtype=np.bool_)
    if n == 0:
        return out
    values = second.to_numpy() if isinstance(second, pd.Series) else np.asarray(second)
    if values.dtype.kind in "iuf" and (groups.order is None or groups.indptr[-1] == n):
        # numeric items, no missing user: a small hash table per user, no global hashing
        order = np.zeros(0, dtype=np.int64) if groups.order is None else groups.order
        if values.dtype.kind == "f":
            folded = values.astype(np.float64) + 0.0  # -0.0 -> 0.0 (equal keys, different bits)
            _mark_repeats_grouped(groups.indptr, order, groups.order is not None, folded.view(np.int64),
                                  np.isnan(folded), out)
        else:
            _mark_repeats_grouped(groups.indptr, order, groups.order is not None,
                                  values.astype(np.int64, copy=False), np.zeros(n, dtype=np.bool_), out)
        return out
    b, b_uniques = pd.factorize(second, use_na_sentinel=True)
    b = np.where(b < 0, len(b_uniques), b).astype(np.int64, copy=False)
    a = groups.codes
    if (a < 0).any():  # missing first keys form one more group, last in the order
        a = np.where(a < 0, len(groups.uniques), a)
        order, _ = _group_order(a, len(groups.uniques) + 1)
    else:
        order = groups.rows
    _mark_repeats(order, a, b, len(b_uniques) + 1, out)
    return out
