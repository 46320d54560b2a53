"""The small named tuples the compiled code passes around, and the candidate currency.

* :class:`CandidateLists` — the one candidate currency between stages: user ``u``'s candidates
  are ``items[indptr[u]:indptr[u+1]]`` with ``scores`` at the same positions, in input order
  (the tie rule's "earlier position"). Adapters return it, :class:`rerank.frames.CandidateCSR`
  builds on it, the engine reranks it. Built from any arrays, it checks its structure and
  normalises dtypes (int64 / int64 / float64, contiguous, writable) once.
* :class:`CategoryCSR` — the items × G matrix ``A`` of ``p(g|i)`` as the kernel reads it.
* :class:`KernelParams`, :class:`QuotaPlan`, :class:`KernelOutput` — the scalars, quota inputs
  and output arrays of one kernel call.

Numba passes a named tuple of arrays as its members (no copy, no boxing), so grouping them
costs nothing in the compiled code.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
import scipy.sparse as sp

from rerank.errors import InputError, InputTypeError
from rerank.params import float_array, int_array

__all__ = [
    "CandidateLists", "CategoryCSR", "KernelOutput", "KernelParams", "QuotaPlan", "ShownPrefix", "category_matrix",
]


class _Lists(NamedTuple):
    indptr: np.ndarray
    items: np.ndarray
    scores: np.ndarray


class CandidateLists(_Lists):
    """Candidates of U users in CSR form: ``indptr`` int64 (U+1, from 0, nondecreasing),
    ``items`` int64 item rows, ``scores`` float64 (frozen; see the module docstring).

    Scores are not checked for NaN/inf here (one O(n) pass, made by the boundary that receives
    raw arrays: :func:`rerank.rerank_arrays`, :func:`rerank.engine.rerank_lists`, or the frame
    schemas of :mod:`rerank.schemas`).
    """

    __slots__ = ()

    def __new__(cls, indptr, items, scores) -> CandidateLists:
        indptr = int_array("indptr", indptr)
        items = int_array("item_idx", items)
        scores = float_array("scores", scores)
        if indptr.size < 1 or indptr[0] != 0 or np.any(np.diff(indptr) < 0):
            raise InputError("indptr must be a nondecreasing 1-d array starting at 0")
        if indptr[-1] != items.size or items.size != scores.size:
            raise InputError(
                f"indptr[-1]={indptr[-1]}, len(item_idx)={items.size} and len(scores)={scores.size} must agree"
            )
        return super().__new__(cls, indptr, items, scores)

    @classmethod
    def from_rows(cls, rows: np.ndarray, items: np.ndarray, scores: np.ndarray, n_users: int) -> CandidateLists:
        """Lists from flat ``(row, item, score)`` triples already sorted by row (e.g. a top-n)."""
        indptr = np.zeros(n_users + 1, dtype=np.int64)
        np.cumsum(np.bincount(rows, minlength=n_users), out=indptr[1:])
        return cls(indptr, items.astype(np.int64, copy=False), scores.astype(np.float64, copy=False))

    @property
    def n_users(self) -> int:
        return self.indptr.size - 1

    def lengths(self) -> np.ndarray:
        """Candidates per user."""
        return np.diff(self.indptr)

    def owners(self) -> np.ndarray:
        """The user row of every entry."""
        return np.repeat(np.arange(self.n_users, dtype=np.int64), self.lengths())


class CategoryCSR(NamedTuple):
    """``A`` (items × G) by rows: item ``i``'s categories are ``indices[indptr[i]:indptr[i+1]]``
    with shares ``data`` (int64, int64, float64); ``weight`` float64 (G) is the weight
    ``w_{a(g)}`` of each category's attribute in the divergence ``Σ_a w_a C(p_a, q_a)``
    (all 1.0 with one attribute, which multiplies every term by exactly 1)."""

    indptr: np.ndarray
    indices: np.ndarray
    data: np.ndarray
    weight: np.ndarray

    @classmethod
    def of(cls, matrix: sp.csr_matrix, weight: np.ndarray | None = None) -> CategoryCSR:
        if weight is None:
            weight = np.ones(matrix.shape[1], dtype=np.float64)
        return cls(
            matrix.indptr.astype(np.int64, copy=False), matrix.indices.astype(np.int64, copy=False),
            np.ascontiguousarray(matrix.data, dtype=np.float64), np.ascontiguousarray(weight, dtype=np.float64),
        )


def category_matrix(categories) -> sp.csr_matrix:
    """The category matrix as canonical float64 CSR (duplicates summed); finite, nonnegative."""
    if not sp.issparse(categories):
        raise InputTypeError(f"categories must be a scipy sparse matrix, got {type(categories).__name__}")
    matrix = sp.csr_matrix(categories, dtype=np.float64)
    if not matrix.has_canonical_format:
        matrix = matrix.copy()
        matrix.sum_duplicates()
    if matrix.nnz and (not np.all(np.isfinite(matrix.data)) or matrix.data.min() < 0):
        raise InputError("categories must hold finite, nonnegative values")
    return matrix


class ShownPrefix(NamedTuple):
    """Items already shown to each user (docs/design.md §9.3): user ``u``'s are the item rows
    ``items[indptr[u]:indptr[u+1]]`` in shown order (int64, int64). They fill the first
    positions of ``q`` with their rank weights; the candidates among them were removed before
    the kernel runs. ``empty(U)``: no prefix for anyone."""

    indptr: np.ndarray
    items: np.ndarray

    @classmethod
    def empty(cls, n_users: int) -> ShownPrefix:
        return cls(np.zeros(n_users + 1, dtype=np.int64), np.zeros(0, dtype=np.int64))

    @property
    def longest(self) -> int:
        return int(np.diff(self.indptr).max(initial=0))


class KernelParams(NamedTuple):
    """The scalars of one kernel call (codes from :meth:`rerank.RerankOptions.validate`)."""

    k: int  # list length, clamped to the longest candidate list
    alpha: float
    divergence: int
    normalize: int
    safeguard: bool
    order_by_score: bool
    method: int
    pm2_theta: float
    max_n: int  # the longest candidate list (work buffer size)
    refine: int  # rerank.engine.refine: REFINE_NONE or REFINE_SWAP
    max_swaps: int  # the swap cap; -1: none


class QuotaPlan(NamedTuple):
    """Quota mode: ``quotas`` int64 (T × G, by target row) and ``met`` int64 (U) the quota
    units each list must meet (``M*``, :mod:`rerank.engine.feasibility`)."""

    quotas: np.ndarray
    met: np.ndarray


class KernelOutput(NamedTuple):
    """Outputs: ``positions`` global candidate positions (CSR by ``indptr``), each list's
    ``objective``, whether it is plain top-k kept by the safeguard, and with ``refine`` the
    ``swaps`` made per user and whether the cap stopped the search (``cap_hit``)."""

    indptr: np.ndarray
    positions: np.ndarray
    objective: np.ndarray
    used_topk: np.ndarray
    swaps: np.ndarray
    cap_hit: np.ndarray
