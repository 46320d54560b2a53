"""The swap step's incremental evaluation (``refine="swap"``, :mod:`rerank.engine.refine`).

For user ``u`` with list ``L`` of ``k' = min(k, n)`` positions (rank weights ``w_1..w_k'``,
``W = Σ_r w_r``) the objective is Steck's

    F(L) = (1-λ) Σ_{l∈L} s_l  -  λ C(p, q(L)),   q_g(L) = M_g / W,   M_g = Σ_r w_r A[L_r, g].

A **swap** ``(r, c)`` puts a candidate ``c ∉ L`` at position ``r`` in place of ``o = L_r``; the
position keeps its rank weight. Only the categories of ``o`` and ``c`` change:

    M'_g = M_g - w_r A[o, g] + w_r A[c, g].

The greedy's per-(category, share) tables (:func:`rerank.engine.greedy.gather_user`) are used
with the list length fixed at ``k'``. Every divergence is ``finish(Σ_g term(p_g, q_g))``
(:mod:`rerank.engine.divergences`). For an out position ``r`` let ``M⁻_g = M_g - w_r A[o, g]``
(equal to ``M_g`` unless ``g ∈ cats(o)``), ``B⁻_g = term(p_g, M⁻_g/W)`` and
``S⁻ = Σ_g B⁻_g = S + Σ_{g∈cats(o)} (B⁻_g - B_g)`` (:func:`remove_out`). Then

    D(r, c) = S⁻ + Σ_{(g, a) ∈ slots(c)} [ term(p_g, (M⁻_g + w_r a)/W) - B⁻_g ]
    F(r, c) = (1-λ) (Σ_{l∈L} s_l - s_o + s_c) - λ finish(D(r, c))

For a slot whose category is not in ``cats(o)`` the bracket is :func:`fixed_value` and depends
on ``r`` only through ``w_r``; the slots of ``o``'s categories get :func:`removed_value`.
``M⁻_g`` is exactly 0 when ``o`` is the list's only item carrying ``g`` (so no rounding residue
reaches a square root). A swap is *improving* (:func:`improves`) when

    F(r, c) > F(L) + TIE_RTOL · (1 + max(|F(r, c)|, |F(L)|)).
"""

from __future__ import annotations

from collections import namedtuple

import numpy as np

from rerank._numba import compiled
from rerank.engine.divergences import divergence_finish, divergence_term
from rerank.engine.ties import TIE_RTOL

__all__ = [
    "TOP_KEYS", "RefineWork", "fixed_value", "improves", "list_masses", "list_state", "new_refine_work",
    "remove_out", "removed_value", "swap_objective",
]

TOP_KEYS = 8  # candidates kept by key on the fast path (rerank.engine.refine_fast)

RefineWork = namedtuple(
    "RefineWork",
    ["fixed", "eff", "rem_mass", "rem_base", "rem_carry", "mark", "count", "keys", "seen", "cand_start", "cands",
     "slot_start", "slots", "top", "blocked"],
)


@compiled()
def new_refine_work(n_cat, n_slots, n_cand, n_entries):
    """Work buffers of :func:`rerank.engine.refine.refine_one_user` (sizes: categories, slots, candidates, candidate
    category entries): per slot its value without and with the out item's categories changed;
    per category the removal state, carriers and marks; per candidate its key and a mark;
    category → candidates and category → slots indexes; the kept keys."""
    return RefineWork(
        np.zeros(n_slots, dtype=np.float64),
        np.zeros(n_slots, dtype=np.float64),
        np.empty(n_cat, dtype=np.float64),
        np.empty(n_cat, dtype=np.float64),
        np.empty(n_cat, dtype=np.int64),
        np.empty(n_cat, dtype=np.int64),
        np.empty(n_cat, dtype=np.int64),
        np.empty(n_cand, dtype=np.float64),
        np.empty(n_cand, dtype=np.int64),
        np.empty(n_cat + 2, dtype=np.int64),
        np.empty(max(n_entries, 1), dtype=np.int64),
        np.empty(n_cat + 1, dtype=np.int64),
        np.empty(n_slots, dtype=np.int64),
        np.empty(TOP_KEYS, dtype=np.int64),
        np.empty(n_cand, dtype=np.float64),
    )


@compiled(inline="always")
def list_masses(kk, chosen, s, rank_w, ent_count, ent_slot, width, slot_cat, slot_share, mass, count):
    """``M_g`` and carriers per category of the list, from scratch; returns ``Σ s``. A category
    a swap did not touch gets the same sum in the same order: bit-identical values."""
    mass[:] = 0.0
    count[:] = 0
    score_sum = 0.0
    for r in range(kk):
        j = chosen[r]
        w = rank_w[r]
        score_sum += s[j]
        row = j * width
        for e in range(ent_count[j]):
            slot = ent_slot[row + e]
            g = slot_cat[slot]
            mass[g] += w * slot_share[slot]
            if slot_share[slot] > 0.0:
                count[g] += 1
    return score_sum


@compiled()
def list_state(kk, chosen, s, p, alpha, divergence, rank_w, total_w, ent_count, ent_slot, width, slot_cat,
                slot_share, quota_row, use_quota, mass, base, count):
    """Masses ``M_g``, terms ``B_g``, carriers per category; returns ``(Σ s, S = Σ_g B_g, met)``."""
    n_cat = p.shape[0]
    score_sum = list_masses(kk, chosen, s, rank_w, ent_count, ent_slot, width, slot_cat, slot_share, mass, count)
    total = 0.0
    met = 0
    for g in range(n_cat):
        base[g] = divergence_term(p[g], mass[g] / total_w, alpha, divergence)
        total += base[g]
        if use_quota:
            met += min(quota_row[g], count[g])
    return score_sum, total, met


@compiled(inline="always")
def swap_objective(score_sum, total, lam, divergence):
    # λ = 1: no score term (0·Σs would be NaN when Σs of extreme finite scores overflows)
    score_term = (1.0 - lam) * score_sum if lam != 1.0 else 0.0
    return score_term - lam * divergence_finish(total, divergence)


@compiled(inline="always")
def improves(obj, current):
    """The swap's objective beats the list's by more than the tie tolerance."""
    return obj > current and obj > current + TIE_RTOL * (1.0 + max(abs(obj), abs(current)))


@compiled(inline="always")
def fixed_value(slot, p, alpha, divergence, w, total_w, slot_cat, slot_share, mass, base):
    """``term(p_g, (M_g + w a)/W) - B_g``: the slot's value when the out item has no entry in ``g``."""
    g = slot_cat[slot]
    return divergence_term(p[g], (mass[g] + w * slot_share[slot]) / total_w, alpha, divergence) - base[g]


@compiled(inline="always")
def remove_out(r, o, w, p, alpha, divergence, total_w, shared_all, ent_count, ent_slot, width, slot_cat,
                slot_share, mass, base, count, rem_mass, rem_base, rem_carry, mark):
    """Take ``o`` out of position ``r``: ``M⁻_g``, ``B⁻_g`` of its categories, which get
    ``mark = r``; returns ``S⁻``. ``M⁻_g`` is exactly 0 when ``o`` is the only carrier of ``g``."""
    shared = shared_all
    row = o * width
    for e in range(ent_count[o]):
        slot = ent_slot[row + e]
        g = slot_cat[slot]
        a = slot_share[slot]
        carries = 1 if a > 0.0 else 0
        m = 0.0 if (carries and count[g] == 1) else max(mass[g] - w * a, 0.0)
        rem_mass[g] = m
        rem_base[g] = divergence_term(p[g], m / total_w, alpha, divergence)
        rem_carry[g] = carries
        shared += rem_base[g] - base[g]
        mark[g] = r
    return shared


@compiled(inline="always")
def removed_value(slot, p, alpha, divergence, w, total_w, slot_cat, slot_share, rem_mass, rem_base):
    """``term(p_g, (M⁻_g + w a)/W) - B⁻_g`` for a slot of a marked category."""
    g = slot_cat[slot]
    q = (rem_mass[g] + w * slot_share[slot]) / total_w
    return divergence_term(p[g], q, alpha, divergence) - rem_base[g]

