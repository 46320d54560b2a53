"""Why each item is there (docs/design.md §9.4): per output item, its rank by input score, the
two terms of the objective it added when it was placed, and a reason.

For user ``u`` with list ``L = (l_1, …, l_kk)`` in pick order (after a shown prefix ``P``, if
any) and ``L_r = (l_1, …, l_r)``:

* ``input_rank``: 1 + the number of the user's (pickable) candidates before ``l_r`` by input
  score (score desc, then input position: the tie rule);
* ``score_gain_r = (1-λ) s_{l_r}`` (normalised score; 0 at λ = 1, where the score term is
  dropped) and ``calibration_gain_r = -λ (C(P ∪ L_r) - C(P ∪ L_{r-1}))`` with
  ``C(∅) := 0`` (no prefix: the first item's gain is ``-λ C(L_1)``), so that
  ``Σ_r (score_gain_r + calibration_gain_r) = F(L) - F(P)``, the objective ``F`` of
  docs/design.md §3 (with ``F(∅) = 0``); ``C`` is ``Σ_a w_a C(p_a, q_a)`` with several
  attributes, and the rank weights follow the prefix;
* ``reason``: ``swap`` when ``refine="swap"`` put it in (it is not in the refinement's start
  list, the better of the built list and top-k), else ``safeguard`` when the safeguard returned
  plain top-k, else ``score`` when the item is in the user's top-``kk`` by input score
  (``input_rank ≤ kk``), else ``quota`` (quota mode) when it added a quota unit (it carries a
  protected category whose quota was not yet met when it was placed), else ``calibration``.
  The gains of a refined list are still those of its final order, item by item.

:func:`explain_users` computes the gains and the quota flags in one compiled pass over users;
:func:`input_ranks` ranks by score, vectorised.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import numpy as np
from numba import prange

from rerank._numba import compiled, kernel_lock, num_threads
from rerank.engine.divergences import divergence_finish, divergence_term
from rerank.engine.exact import normalized_scores
from rerank.engine.feasibility import quota_matrix
from rerank.engine.kernel import METHOD_QUOTA, prefix_mass
from rerank.engine.layout import CategoryCSR, ShownPrefix

__all__ = ["REASONS", "Explanation", "explain_users", "explained", "input_ranks", "list_divergences", "reasons"]

REASONS = ("score", "calibration", "quota", "swap", "safeguard")
REASON_SCORE, REASON_CALIBRATION, REASON_QUOTA, REASON_SWAP, REASON_SAFEGUARD = range(5)


@compiled(inline="always")
def _divergence(p, mass, total_w, cat_w, alpha, divergence):
    total = 0.0
    for g in range(p.shape[0]):
        total += divergence_term(p[g], mass[g] / total_w, alpha, divergence) * cat_w[g]
    return divergence_finish(total, divergence)


@compiled(parallel=True)
def explain_users(lists, cats, targets, target_rows, lam, rank_w, s_norm, prefix, out_indptr, local, quotas,
                  quota_mode, alpha, divergence, score_gain, calibration_gain, quota_unit):
    """Fill ``score_gain``, ``calibration_gain`` and ``quota_unit`` for every output entry
    (``local``: each output item's local position, lists in pick order; module docstring)."""
    n_users = lists.indptr.shape[0] - 1
    n_cat = targets.shape[1]
    for u in prange(n_users):
        start = out_indptr[u]
        kk = out_indptr[u + 1] - start
        if kk == 0:
            continue
        lo = lists.indptr[u]
        p = targets[target_rows[u]]
        lam_u = lam[u]
        mass = np.zeros(n_cat, dtype=np.float64)
        counts = np.zeros(n_cat, dtype=np.int64)
        m, total_w = prefix_mass(u, prefix, cats, rank_w, mass)
        previous = _divergence(p, mass, total_w, cats.weight, alpha, divergence) if m > 0 else 0.0
        for r in range(kk):
            j = local[start + r]
            item = lists.items[lo + j]
            w = rank_w[m + r]
            total_w += w
            unit = False
            for e in range(cats.indptr[item], cats.indptr[item + 1]):
                g = cats.indices[e]
                mass[g] += w * cats.data[e]
                if quota_mode and cats.data[e] > 0.0:
                    if counts[g] < quotas[target_rows[u], g]:
                        unit = True
                    counts[g] += 1
            current = _divergence(p, mass, total_w, cats.weight, alpha, divergence)
            score_gain[start + r] = (1.0 - lam_u) * s_norm[lo + j] if lam_u != 1.0 else 0.0
            calibration_gain[start + r] = -lam_u * (current - previous) if lam_u != 0.0 else 0.0
            quota_unit[start + r] = unit
            previous = current


def input_ranks(indptr: np.ndarray, scores: np.ndarray) -> np.ndarray:
    """Per candidate entry, its 1-based rank within its user by (score desc, position asc)."""
    lengths = np.diff(indptr)
    owners = np.repeat(np.arange(lengths.size), lengths)
    order = np.lexsort((np.arange(scores.size), -scores, owners))
    ranks = np.empty(scores.size, dtype=np.int64)
    ranks[order] = np.arange(scores.size) - np.repeat(indptr[:-1], lengths) + 1
    return ranks


def reasons(rank: np.ndarray, kk: np.ndarray, used_topk: np.ndarray, quota_unit: np.ndarray,
            swapped: np.ndarray) -> np.ndarray:
    """The reason code of each output entry (``kk``, ``used_topk``: per entry, its user's;
    ``swapped``: the refinement put it in). A swap clears ``used_topk``, so the two never meet."""
    out = np.full(rank.size, REASON_CALIBRATION, dtype=np.int8)
    out[quota_unit] = REASON_QUOTA
    out[rank <= kk] = REASON_SCORE
    out[used_topk] = REASON_SAFEGUARD
    out[swapped] = REASON_SWAP
    return out


@compiled(parallel=True)
def list_divergences(lists, cats, targets, target_rows, rank_w, prefix, out_indptr, local, alpha, divergence, out):
    """``out[u] = C(P_u ∪ L_u)``: each output list's divergence (``Σ_a w_a C(p_a, q_a)``), the
    list in output order after its shown prefix ``P_u`` (0 for an empty list and no prefix)."""
    n_users = lists.indptr.shape[0] - 1
    n_cat = targets.shape[1]
    for u in prange(n_users):
        start = out_indptr[u]
        kk = out_indptr[u + 1] - start
        lo = lists.indptr[u]
        mass = np.zeros(n_cat, dtype=np.float64)
        first = prefix.indptr[u]
        m = prefix.indptr[u + 1] - first
        total_w = 0.0
        for r in range(m + kk):
            item = prefix.items[first + r] if r < m else lists.items[lo + local[start + r - m]]
            w = rank_w[r]
            total_w += w
            for e in range(cats.indptr[item], cats.indptr[item + 1]):
                mass[cats.indices[e]] += w * cats.data[e]
        out[u] = _divergence(targets[target_rows[u]], mass, total_w, cats.weight, alpha, divergence) if m + kk else 0.0


@dataclass(frozen=True)
class Explanation:
    """Per output entry (aligned with ``RerankResult.positions``): ``input_rank``,
    ``score_gain``, ``calibration_gain`` and the ``reason`` code (an index into
    :data:`rerank.engine.explain.REASONS`); see :mod:`rerank.engine.explain`."""

    input_rank: np.ndarray
    score_gain: np.ndarray
    calibration_gain: np.ndarray
    reason: np.ndarray


def explained(problem, options, result, prefix: ShownPrefix, n_threads, before_refine=None):
    """``result`` (lists in pick order) with its :class:`Explanation`; re-sorted by score after
    explaining when ``options.order == "score"``."""
    lists, matrix, targets, target_rows, lam, attributes = problem[:6]
    codes = options.validate()
    out_indptr, positions = result.indptr, result.positions
    sizes = np.diff(out_indptr)
    owners = np.repeat(np.arange(lists.n_users, dtype=np.int64), sizes)
    local = positions - lists.indptr[owners]
    s_norm = np.empty_like(lists.scores)
    if lists.scores.size:
        normalized_scores(lists.indptr, lists.scores, codes.normalize, s_norm)
    quota_mode = codes.method == METHOD_QUOTA
    quotas = (quota_matrix(targets, options.k, codes.rho, float(options.min_share_threshold)) if quota_mode
              else np.zeros((1, 1), dtype=np.int64))
    rank_w = options.weights(int(sizes.max(initial=0)) + prefix.longest + 1)
    n = positions.size
    score_gain, calibration_gain, unit = np.zeros(n), np.zeros(n), np.zeros(n, dtype=np.bool_)
    cats = CategoryCSR.of(matrix, None if attributes is None else attributes.category_weights())
    if n:
        with num_threads(n_threads), kernel_lock():
            explain_users(
                lists, cats, targets, target_rows, lam, rank_w, s_norm, prefix, out_indptr, local, quotas,
                quota_mode, options.alpha, codes.divergence, score_gain, calibration_gain, unit,
            )
    rank = input_ranks(lists.indptr, lists.scores)[positions]
    swapped = np.zeros(n, dtype=np.bool_) if before_refine is None else ~np.isin(positions, before_refine)
    reason = reasons(rank, sizes[owners], result.used_topk[owners], unit, swapped)
    explanation = Explanation(rank, score_gain, calibration_gain, reason)
    if codes.order_by_score:
        order = np.lexsort((positions, -lists.scores[positions], owners))
        positions = positions[order]
        explanation = Explanation(rank[order], score_gain[order], calibration_gain[order], reason[order])
    return dataclasses.replace(result, positions=positions, items=lists.items[positions], explanation=explanation)


def result_divergences(problem, options, result) -> np.ndarray:
    """``C(P_u ∪ L_u)`` of each user's output list (as returned, after its shown prefix)."""
    lists = problem.lists
    sizes = np.diff(result.indptr)
    owners = np.repeat(np.arange(lists.n_users, dtype=np.int64), sizes)
    shown = problem.shown if problem.shown is not None else ShownPrefix.empty(lists.n_users)
    out = np.zeros(lists.n_users)
    if lists.n_users:
        attributes = problem.attributes
        cats = CategoryCSR.of(problem.categories, None if attributes is None else attributes.category_weights())
        rank_w = options.weights(int(sizes.max(initial=0)) + shown.longest + 1)
        with kernel_lock():
            list_divergences(
                lists, cats, problem.targets, problem.target_rows, rank_w, shown, result.indptr,
                result.positions - lists.indptr[owners], options.alpha, options.validate().divergence, out,
            )
    return out
