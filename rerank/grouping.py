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

import numpy as np
import pandas as pd

from rerank._numba import compiled


@dataclass(frozen=True)
class Groups:
    """Rows grouped by a key: ``uniques`` in order of first appearance; group ``g`` is
    ``order[indptr[g]:indptr[g+1]]`` (input order within the group); ``order is None`` means
    the rows are already grouped (``order`` would be ``arange``). ``codes`` is the group of
    each row (``-1`` for a missing key, which belongs to no group), built on demand."""

    uniques: pd.Index
    indptr: np.ndarray
    order: np.ndarray | None
    given_codes: np.ndarray | None = None

    @property
    def codes(self) -> np.ndarray:
        if self.given_codes is not None:
            return self.given_codes
        return np.repeat(np.arange(len(self.uniques), dtype=np.int64), np.diff(self.indptr))

    @property
    def rows(self) -> np.ndarray:
        return np.arange(self.indptr[-1], dtype=np.int64) if self.order is None else self.order


def _runs(values: np.ndarray) -> np.ndarray | None:
    """Start of each run of equal neighbours, or ``None`` if some key comes back later."""
    n = values.shape[0]
    if n == 0:
        return np.zeros(0, dtype=np.int64)
    changes = values[1:] != values[:-1]
    n_runs = int(np.count_nonzero(changes)) + 1
    if n_runs > max(n // 2, 1):  # interleaved (or single-row) users: take the general path
        return None
    starts = np.empty(n_runs, dtype=np.int64)
    starts[0] = 0
    starts[1:] = np.flatnonzero(changes) + 1
    if not pd.Index(values[starts]).is_unique:
        return None
    return starts


def user_groups(keys) -> Groups:
    """Group the rows of ``keys`` (a Series or array): same as ``pd.factorize(keys, sort=False)``
    followed by a stable ``argsort`` of the codes, in O(rows) when the rows are grouped."""
    values = keys.to_numpy() if isinstance(keys, pd.Series) else np.asarray(keys)
    n = values.shape[0]
    if values.dtype.kind in "iub" or (values.dtype.kind == "f" and not np.isnan(values).any()):
        starts = _runs(values)
        if starts is not None:
            indptr = np.append(starts, n).astype(np.int64)
            uniques = pd.Index(values[starts], dtype=getattr(keys, "dtype", None))
            return Groups(uniques, indptr, None)
    codes, uniques = pd.factorize(keys, sort=False, use_na_sentinel=True)
    codes = codes.astype(np.int64, copy=False)
    order, indptr = _group_order(codes, len(uniques))
    return Groups(pd.Index(uniques), indptr, order, codes)


@compiled()
def _group_order(codes, n_groups):
    """Stable counting sort of the rows by ``codes`` (rows with code -1 left out): the same
    order as ``argsort(codes, kind="stable")`` without the missing rows, in O(rows)."""
    indptr = np.zeros(n_groups + 1, dtype=np.int64)
    for c in codes:
        if c >= 0:
            indptr[c + 1] += 1
    for g in range(n_groups):
        indptr[g + 1] += indptr[g]
    fill = indptr[:-1].copy()
    order = np.empty(indptr[-1], dtype=np.int64)
    for r in range(codes.shape[0]):
        c = codes[r]
        if c >= 0:
            order[fill[c]] = r
            fill[c] += 1
    return order, indptr


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
    groups = user_groups(first) if groups is None else groups
    n = len(first)
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
