"""Which quotas can a k-subset of the candidates meet? (docs/design.md §4.3; definitions in
:mod:`rerank.engine.quota`.)

For every user at once, :func:`max_quota_met` returns ``M* = max_{|L| = min(k, n)} met(L)``,
the most quota units any list can meet (``M* = Σ_g r_g`` exactly when the quotas are
feasible). It brackets ``M*`` and closes the bracket:

* **upper bound** ``U = Σ_g min(r_g, supply_g)`` with ``supply_g`` the number of candidates
  carrying ``g``; when ``n ≤ k`` every candidate is in the list and ``M* = U``.
* **lower bound: one max-flow for all users** (``scipy.sparse.csgraph.maximum_flow``):
  source → (user, g) with capacity ``r_g``, (user, g) → candidate with capacity 1 when the
  candidate carries ``g``, candidate → sink with capacity 1. A flow of value ``F_u`` picks
  ``F_u ≤ Σ r_g`` distinct candidates, each counted for one of its categories, so some
  k-subset meets at least ``min(F_u, k)`` units: ``min(F_u, k) ≤ M*`` (with one attribute
  ``Σ r_g ≤ k``; with several, docs/design.md §9.1, the sum can exceed k). This is the classical bipartite
  matching of quota slots to items, and it is *only a sufficient test*: an item carrying two
  protected categories counts for both under membership, which a matching cannot express
  (``k = 2, r = (1, 1)`` and one item carrying both: the flow is 1, ``M* = 2``).
* when ``F_u = U`` the flow certifies ``M* = U``; otherwise (multi-category items make the
  difference) the exact type-based branch-and-bound of :func:`rerank.engine.quota.max_met` decides,
  compiled and parallel over the undecided users only.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp
from scipy.sparse.csgraph import maximum_flow

from rerank.engine.layout import CategoryCSR
from rerank.engine.quota import QUOTA_EPS, max_met_users

__all__ = ["QuotaFeasibility", "max_quota_met", "quota_matrix"]


def quota_matrix(targets: np.ndarray, k: int, rho: float, threshold: float = 0.0) -> np.ndarray:
    """``r[t, g] = ⌊ρ k p_g + 1e-9⌋`` where ``p_g ≥ threshold`` and ``p_g > 0``, else 0 (int64)."""
    targets = np.asarray(targets, dtype=np.float64)
    quotas = np.floor(rho * k * targets + QUOTA_EPS).astype(np.int64)
    quotas[(targets < threshold) | (targets <= 0.0)] = 0
    return quotas


@dataclass(frozen=True)
class QuotaFeasibility:
    """Per user: units required ``Σ_g r_g``, the flow's certified lower bound, the upper bound
    ``Σ_g min(r_g, supply_g)`` and the exact maximum ``met`` (``M*``); ``shortfall = required
    - met``; ``feasible`` when every quota can be met."""

    required: np.ndarray
    flow: np.ndarray
    upper: np.ndarray
    met: np.ndarray

    @property
    def shortfall(self) -> np.ndarray:
        return self.required - self.met

    @property
    def feasible(self) -> np.ndarray:
        return self.met == self.required


def max_quota_met(
    indptr: np.ndarray,
    cand_items: np.ndarray,
    categories: sp.csr_matrix,
    quotas: np.ndarray,
    target_rows: np.ndarray,
    k: int,
) -> QuotaFeasibility:
    """``M*`` for every user row of the candidate CSR (see the module docstring)."""
    indptr = np.asarray(indptr, dtype=np.int64)
    n_users = indptr.size - 1
    lengths = np.diff(indptr)
    owner = np.repeat(np.arange(n_users), lengths)
    target_rows = np.asarray(target_rows, dtype=np.int64)
    required = quotas.sum(axis=1)[target_rows]  # no dense users × categories array

    # membership of each candidate (rows = candidate positions) in each category
    member = sp.csr_matrix(categories[cand_items], dtype=np.float64)
    member.data = (member.data > 0).astype(np.float64)
    member.eliminate_zeros()
    cand, cat = member.nonzero()
    keep = quotas[target_rows[owner[cand]], cat] > 0
    cand, cat = cand[keep], cat[keep]
    # supply per (user, category) pair with a positive quota
    pair_key = owner[cand] * quotas.shape[1] + cat
    pairs, pair_of_edge = np.unique(pair_key, return_inverse=True)
    supply = np.bincount(pair_of_edge, minlength=pairs.size)
    pair_user, pair_cat = np.divmod(pairs, quotas.shape[1])
    pair_quota = quotas[target_rows[pair_user], pair_cat]
    upper = np.bincount(pair_user, weights=np.minimum(pair_quota, supply), minlength=n_users).astype(np.int64)

    flow = np.zeros(n_users, dtype=np.int64)
    if pairs.size:
        # nodes: 0 source, 1 sink, 2.. pairs, then the candidates that carry a protected category
        cands, cand_node = np.unique(cand, return_inverse=True)
        first_pair, first_cand = 2, 2 + pairs.size
        n_nodes = first_cand + cands.size
        ones = np.ones(cands.size, dtype=np.int64)
        rows = np.concatenate(
            [np.zeros(pairs.size, dtype=np.int64), first_pair + pair_of_edge, first_cand + np.arange(cands.size)]
        )
        cols = np.concatenate([first_pair + np.arange(pairs.size), first_cand + cand_node, ones])
        caps = np.concatenate([np.minimum(pair_quota, supply), np.ones(cand.size, dtype=np.int64), ones])
        graph = sp.csr_matrix((caps.astype(np.int32), (rows, cols)), shape=(n_nodes, n_nodes))
        result = maximum_flow(graph, 0, 1)
        out_of_source = result.flow[0].toarray().ravel()[first_pair:first_cand]
        flow = np.bincount(pair_user, weights=np.maximum(out_of_source, 0), minlength=n_users).astype(np.int64)
        # several attributes: Σ_g r_g may exceed k, and so may the flow's distinct candidates;
        # any k of them still meet k units (one attribute: Σ_g r_g ≤ k, so this changes nothing)
        flow = np.minimum(flow, k)

    met = np.where(lengths <= k, upper, flow)
    undecided = np.flatnonzero((lengths > k) & (flow < upper)).astype(np.int64)
    if undecided.size:
        exact = np.empty(undecided.size, dtype=np.int64)
        max_met_users(
            undecided, indptr, np.ascontiguousarray(cand_items, dtype=np.int64), CategoryCSR.of(categories),
            np.ascontiguousarray(quotas), np.ascontiguousarray(target_rows, dtype=np.int64), int(k), exact,
        )
        met[undecided] = exact
    return QuotaFeasibility(required, flow, upper, met)
