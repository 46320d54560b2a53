"""The fitted users' targets ``p(g|u)``, stored compactly (docs/performance.md, "Memory per user").

A fitted reranker keeps one target per user for its whole life, so the storage is what decides
how many users fit in memory: a dense float64 users × G matrix is 160 bytes per user at
G = 20 (1.6 GB for 10M users) and 80 kB per user at G = 10,000. :class:`TargetTable` stores
them in *blocks* of users (one per batch of a streamed fit, one for an in-memory fit), each
block in the smaller of two layouts:

* **dense**: users × G values;
* **sparse** (CSR over each user's nonzero categories): ``indptr`` (int64), ``indices``
  (int16 when G ≤ 32,767, else int32) and the values — ``nnz · (value + index bytes) + 8``
  bytes per user, the smaller layout when users have fewer than about ``G / 2`` categories.

Values are float64 (exact: the same targets as a dense float64 fit) or, with
``target_dtype="float32"``, float32: half the bytes, each value within a relative
``2⁻²⁴ ≈ 6·10⁻⁸`` of the exact one. The kernel always computes in float64 (the rows of a batch
are widened by :meth:`TargetTable.dense`). What float32 does to the lists is bounded in
docs/performance.md ("float32 targets: the tolerance") and tested in
``tests/frame/test_targets.py``.

The users are a :class:`rerank.userindex.UserIndex` (12 bytes per integer id, no hash table).
The population target (the fallback of cold users, docs/design.md §3) is the mean of the
*stored* targets, summed user after user in fitted order, so it does not depend on how the
history was cut into batches.

Several attributes (docs/design.md §9.1): each attribute's block of a row is normalised on its
own; a user with mass in some attributes but none in another is stored with that block empty,
and :meth:`TargetTable.dense` fills it from the population target's block (the cold-user
fallback, per attribute). The population target of attribute ``a`` is the mean over the users
with mass in ``a``, renormalised within the block (uniform over the block when nobody has any).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
import scipy.sparse as sp

from rerank.errors import InputError
from rerank.params import check_choice, show
from rerank.userindex import UserIndex

__all__ = ["TARGET_DTYPES", "TargetBuilder", "TargetTable"]

TARGET_DTYPES = ("float64", "float32")
_ROWS_AT_ONCE = 1 << 16  # rows converted or summed at a time (bounds the temporaries)
_ENTRIES_AT_ONCE = 1 << 18  # entries summed at a time (a few MB of temporaries, whatever G)


@dataclass(frozen=True)
class DenseBlock:
    """Users × G values."""

    values: np.ndarray

    @property
    def nbytes(self) -> int:
        return self.values.nbytes

    def write(self, local: np.ndarray, out: np.ndarray, at: np.ndarray) -> None:
        """``out[at] = rows local`` (widened to float64)."""
        out[at] = self.values[local]

    def entries(self, first: int, last: int) -> tuple[np.ndarray, np.ndarray]:
        """Category and value of every stored entry of rows ``first..last-1``, row by row."""
        values = self.values[first:last]
        return np.tile(np.arange(values.shape[1]), values.shape[0]), values.ravel()


@dataclass(frozen=True)
class SparseBlock:
    """Users × G in CSR form: user ``r`` holds ``data[indptr[r]:indptr[r+1]]`` at categories
    ``indices[...]``."""

    indptr: np.ndarray
    indices: np.ndarray
    data: np.ndarray

    @property
    def nbytes(self) -> int:
        return self.indptr.nbytes + self.indices.nbytes + self.data.nbytes

    def write(self, local: np.ndarray, out: np.ndarray, at: np.ndarray) -> None:
        """``out[at] = rows local`` (``out`` rows are zero before)."""
        starts = self.indptr[local]
        lengths = self.indptr[local + 1] - starts
        total = int(lengths.sum())
        if not total:
            return
        offsets = np.cumsum(lengths) - lengths
        pos = np.repeat(starts - offsets, lengths) + np.arange(total)
        out[np.repeat(at, lengths), self.indices[pos]] = self.data[pos]

    def entries(self, first: int, last: int) -> tuple[np.ndarray, np.ndarray]:
        lo, hi = self.indptr[first], self.indptr[last]
        return self.indices[lo:hi], self.data[lo:hi]


def _index_dtype(n_categories: int):
    return np.int16 if n_categories <= np.iinfo(np.int16).max else np.int32


def make_block(targets: sp.csr_matrix, dtype: str):
    """The smaller layout of ``targets`` (users × G, CSR float64) with values of ``dtype``."""
    n, n_cat = targets.shape
    value = np.dtype(dtype)
    index = np.dtype(_index_dtype(n_cat))
    dense_bytes = n * n_cat * value.itemsize
    sparse_bytes = targets.nnz * (value.itemsize + index.itemsize) + (n + 1) * 8
    if sparse_bytes < dense_bytes:
        return SparseBlock(
            targets.indptr.astype(np.int64), targets.indices.astype(index), targets.data.astype(value)
        )
    values = np.empty((n, n_cat), dtype=value)
    rows_at_once = max(1, min(_ROWS_AT_ONCE, _ENTRIES_AT_ONCE // max(n_cat, 1)))
    for first in range(0, n, rows_at_once):  # never a float64 copy of the whole block
        values[first : first + rows_at_once] = targets[first : first + rows_at_once].toarray()
    return DenseBlock(values)


class TargetTable:
    """The targets of the fitted users (module docstring) and the population target.

    Row ``r`` is the ``r``-th fitted user (``users.ids[r]``); row ``-1`` in :meth:`dense` stands
    for a cold user and gives the population target.
    """

    def __init__(self, users: UserIndex, blocks: list, starts: np.ndarray, n_categories: int, dtype: str,
                 population: np.ndarray, attribute_codes: np.ndarray | None = None):
        self.users = users
        self.blocks = blocks
        self.starts = starts  # first row of each block, then the number of rows
        self.n_categories = n_categories
        self.dtype = dtype
        self.population = population
        self.attribute_codes = attribute_codes

    @property
    def n_users(self) -> int:
        return int(self.starts[-1])

    @property
    def nbytes(self) -> int:
        """Bytes held by the targets and the user index."""
        return sum(block.nbytes for block in self.blocks) + self.users.nbytes

    @property
    def layouts(self) -> dict:
        """Users stored in each layout (``{"dense": n, "sparse": m}``)."""
        out = {"dense": 0, "sparse": 0}
        for b, block in enumerate(self.blocks):
            out["dense" if isinstance(block, DenseBlock) else "sparse"] += int(self.starts[b + 1] - self.starts[b])
        return out

    def rows_for(self, user_ids) -> np.ndarray:
        """Fitted row of each user id; ``-1`` for users not fitted (cold)."""
        return self.users.rows_for(user_ids)

    def dense(self, rows: np.ndarray) -> np.ndarray:
        """float64 ``(len(rows), G)``: the target of each row (``-1``: the population target)."""
        rows = np.asarray(rows, dtype=np.int64)
        out = np.zeros((rows.shape[0], self.n_categories), dtype=np.float64)
        cold = rows < 0
        if cold.any():
            out[cold] = self.population
        warm = np.flatnonzero(~cold)
        if not warm.size:
            return out
        block_of = np.searchsorted(self.starts, rows[warm], side="right") - 1
        for b in np.unique(block_of):
            mine = warm[block_of == b]
            self.blocks[b].write(rows[mine] - self.starts[b], out, mine)
        if self.attribute_codes is not None:  # an attribute without mass: the population's block
            for code in range(int(self.attribute_codes.max(initial=-1)) + 1):
                columns = np.flatnonzero(self.attribute_codes == code)
                empty = warm[out[np.ix_(warm, columns)].sum(axis=1) == 0]
                out[np.ix_(empty, columns)] = self.population[columns]
        return out



def sequential_column_sums(table_blocks: list, starts: np.ndarray, n_categories: int) -> np.ndarray:
    """``Σ_u p(·|u)`` over the stored rows, added user after user in row order (so the result
    does not depend on where the blocks begin): ``np.bincount`` adds its weights in input
    order, and each slice continues from the running totals."""
    totals = np.zeros(n_categories, dtype=np.float64)
    first_cats = np.arange(n_categories)
    rows_at_once = max(1, min(_ROWS_AT_ONCE, _ENTRIES_AT_ONCE // max(n_categories, 1)))  # bounded temporaries
    for b, block in enumerate(table_blocks):
        n_rows = int(starts[b + 1] - starts[b])
        for first in range(0, n_rows, rows_at_once):
            cats, values = block.entries(first, min(first + rows_at_once, n_rows))
            totals = np.bincount(
                np.concatenate([first_cats, cats]),
                weights=np.concatenate([totals, values]),
                minlength=n_categories,
            )
    return totals


class TargetBuilder:
    """Collects the targets of a fit, batch by batch (:meth:`add`), into a :class:`TargetTable`
    (:meth:`finish`)."""

    def __init__(self, n_categories: int, dtype: str = "float64", attribute_codes: np.ndarray | None = None):
        self.n_categories = n_categories
        self.dtype = check_choice("target_dtype", dtype, TARGET_DTYPES)
        self.attribute_codes = attribute_codes
        n_attributes = 1 if attribute_codes is None else max(int(attribute_codes.max(initial=-1)) + 1, 1)
        self._with_mass = np.zeros(n_attributes, dtype=np.int64)  # users with mass in each attribute
        self._blocks: list = []
        self._ids: list[pd.Index] = []
        self._n = 0

    def add(self, user_ids, targets: sp.csr_matrix) -> None:
        """Add users (``user_ids``) with their targets (CSR float64, rows summing to 1)."""
        if targets.shape[0] != len(user_ids) or targets.shape[1] != self.n_categories:
            raise ValueError(f"targets of shape {targets.shape} for {len(user_ids)} users and {self.n_categories} "
                             "categories")
        if not len(user_ids):
            return
        self._blocks.append(make_block(targets, self.dtype))
        self._ids.append(pd.Index(user_ids))
        self._n += len(user_ids)
        if self.attribute_codes is None:
            self._with_mass[0] += len(user_ids)
        else:
            n_attr = self._with_mass.shape[0]
            owners = np.repeat(np.arange(targets.shape[0]), np.diff(targets.indptr))
            cells = np.unique(owners * n_attr + self.attribute_codes[targets.indices])
            self._with_mass += np.bincount(cells % n_attr, minlength=n_attr)

    def finish(self) -> TargetTable:
        """The table; a user added twice (two batches holding parts of one user's history)
        raises :class:`~rerank.errors.InputError` naming the user."""
        ids = self._ids[0].append(self._ids[1:]) if len(self._ids) > 1 else (
            self._ids[0] if self._ids else pd.Index([], dtype=object)
        )
        self._ids = []
        users = UserIndex(ids)
        del ids  # the index keeps what it needs (integer ids: only their sorted keys)
        again = users.first_repeat()
        if again is not None:
            raise InputError(
                f"history: user {show(users.ids[again])} appears in two batches; each batch of a streamed fit "
                "must hold whole users (group or sort the history by user_id)"
            )
        starts = np.zeros(len(self._blocks) + 1, dtype=np.int64)
        for b, block in enumerate(self._blocks):
            rows = block.values.shape[0] if isinstance(block, DenseBlock) else block.indptr.shape[0] - 1
            starts[b + 1] = starts[b] + rows
        sums = sequential_column_sums(self._blocks, starts, self.n_categories)
        codes = np.zeros(self.n_categories, dtype=np.int64) if self.attribute_codes is None else self.attribute_codes
        population = np.zeros(self.n_categories, dtype=np.float64)
        for code, n_with_mass in enumerate(self._with_mass):
            columns = np.flatnonzero(codes == code)
            if n_with_mass:
                mean = sums[columns] / n_with_mass
                population[columns] = mean / mean.sum()
            else:  # nobody has mass in this attribute: uniform over its categories
                population[columns] = 1.0 / max(columns.size, 1)
        return TargetTable(users, self._blocks, starts, self.n_categories, self.dtype, population, self.attribute_codes)
