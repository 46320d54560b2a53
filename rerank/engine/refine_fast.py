"""The fast path of ``refine="swap"``: uniform rank weights, KL or χ², no quotas.

With one weight ``w`` and ``finish = id`` the objective of a swap (notation of
:mod:`rerank.engine.swap_terms`) splits as

    F(r, c) = A_r + key_c    for every c without an entry in o's categories,
    A_r = (1-λ)(Σs - s_o) - λ S⁻_r,   key_c = (1-λ) s_c - λ Σ_{slots(c)} fixed

(the bracket with ``M⁻ = M``). The keys are kept per candidate and only the best
:data:`~rerank.engine.swap_terms.TOP_KEYS` are ranked; per position only ``o``'s category
neighbours (a category → candidates index) are scored in full. After a swap only the two
items' categories change, so only their slots' values and their candidates' keys are
recomputed. A position costs ``O(ḡ·shares)`` term evaluations and ``O(n ḡ² / G)`` additions,
not ``O(n ḡ)``. It chooses the same swaps as the scan of :mod:`rerank.engine.refine`.
"""

from __future__ import annotations

import numpy as np

from rerank._numba import compiled
from rerank.engine.divergences import divergence_term
from rerank.engine.scoring import insert_ranked
from rerank.engine.swap_terms import (
    TOP_KEYS,
    fixed_value,
    improves,
    list_masses,
    list_state,
    remove_out,
    removed_value,
    swap_objective,
)
from rerank.engine.ties import TIE_RTOL, is_better

__all__ = ["refine_fast"]


@compiled(inline="always")
def _csr_starts(starts, n_cat):
    """Counts in ``starts[1:]`` → exclusive prefix sums (the first free place of each row)."""
    for g in range(n_cat):
        starts[g + 1] += starts[g]


@compiled(inline="always")
def _csr_shift(starts, n_cat):
    """After filling (each ``starts[g]`` advanced to the row's end): back to row starts."""
    for g in range(n_cat, 0, -1):
        starts[g] = starts[g - 1]
    starts[0] = 0


@compiled()
def _build_indexes(n, ent_count, ent_slot, width, slot_cat, used, n_used, n_cat, cand_start, cands, slot_start,
                   slots):
    """Category → candidates with an entry in it (``cands``), category → used slots (``slots``).

    Every candidate row is read with the same trip count ``width``: the padding slot 0 gets the
    extra category ``n_cat`` (``slot_cat[0]``, never read by the greedy), a row of its own.
    """
    slot_cat[0] = n_cat
    cand_start[:] = 0
    slot_start[:] = 0
    for j in range(n):
        for e in range(width):
            cand_start[slot_cat[ent_slot[j * width + e]] + 1] += 1
    for i in range(n_used):
        slot_start[slot_cat[used[i]] + 1] += 1
    _csr_starts(cand_start, n_cat + 1)
    _csr_starts(slot_start, n_cat)
    for j in range(n):
        for e in range(width):
            g = slot_cat[ent_slot[j * width + e]]
            cands[cand_start[g]] = j
            cand_start[g] += 1
    for i in range(n_used):
        g = slot_cat[used[i]]
        slots[slot_start[g]] = used[i]
        slot_start[g] += 1
    _csr_shift(cand_start, n_cat + 1)
    _csr_shift(slot_start, n_cat)


@compiled(inline="always")
def _key(c, s, lam, divergence, ent_slot, width, fixed):
    """``key_c = (1-λ) s_c - λ Σ_{slots(c)} fixed``."""
    total = 0.0
    for e in range(width):
        total += fixed[ent_slot[c * width + e]]
    return swap_objective(s[c], total, lam, divergence)


@compiled()
def _best_swap_fast(n, kk, s, lam, alpha, divergence, p, w, total_w, chosen, taken, score_sum, shared_all, current,
                    first, ent_count, ent_slot, width, slot_cat, slot_share, mass, base, work):
    """:func:`rerank.engine.refine._best_swap_scan` without scoring every ``(r, c)``; uniform rank weights, a
    divergence with ``finish = id`` (KL, χ²), no quotas; ``work.fixed`` and ``work.keys`` current.

    With one weight ``w`` the objective splits as ``F(r, c) = A_r + key_c`` for every ``c``
    without an entry in ``o``'s categories, ``A_r = (1-λ)(Σs - s_o) - λ S⁻_r``. The best
    :data:`TOP_KEYS` keys are kept (by key, then score, then position); per ``r`` the candidates
    sharing a category with ``o`` (category index) are scored in full, the others come from the
    kept keys: the first not sharing one, and those within the tie tolerance of it. When the
    kept keys run out first, every candidate's key is looked at, as the scan would.
    """
    (fixed, eff, rem_mass, rem_base, rem_carry, mark, count, keys, seen, cand_start, cands, slot_start, slots, top,
     blocked) = work  # locals: a field read in a loop would cost a reference count each time
    for g in range(p.shape[0]):
        mark[g] = -1
    n_top = 0
    n_free = 0
    for c in range(n):
        seen[c] = -1
        if taken[c]:
            continue
        n_free += 1
        n_top = insert_ranked(top, n_top, TOP_KEYS, c, keys, s)
    best_r = -1
    best_c = -1
    best_obj = 0.0
    for step in range(kk):
        r = (first + step) % kk
        o = chosen[r]
        shared = remove_out(r, o, w, p, alpha, divergence, total_w, shared_all, ent_count, ent_slot, width,
                             slot_cat, slot_share, mass, base, count, rem_mass, rem_base, rem_carry, mark)
        row = o * width
        for e in range(ent_count[o]):  # eff = the removed values on o's categories (restored below)
            g = slot_cat[ent_slot[row + e]]
            share = slot_share[ent_slot[row + e]]
            for i in range(slot_start[g], slot_start[g + 1]):
                slot = slots[i]
                if slot_share[slot] == share:  # c brings g back to M_g: the list's own term
                    eff[slot] = base[g] - rem_base[g]
                else:
                    eff[slot] = removed_value(slot, p, alpha, divergence, w, total_w, slot_cat, slot_share,
                                               rem_mass, rem_base)
        rest = score_sum - s[o]
        # Candidates sharing a category with o, in full: a fixed trip count and no branch per
        # candidate (one carrying two of o's categories is scored twice, to the same value;
        # `blocked` is -inf for listed candidates).
        for e in range(ent_count[o]):
            g = slot_cat[ent_slot[row + e]]
            for i in range(cand_start[g], cand_start[g + 1]):
                c = cands[i]
                seen[c] = r
                total = shared
                crow = c * width
                for f in range(width):
                    total += eff[ent_slot[crow + f]]
                obj = swap_objective(rest + s[c], total, lam, divergence) + blocked[c]
                if improves(obj, current) and (best_c < 0 or is_better(obj, s[c], c, best_obj, s[best_c], best_c)):
                    best_r = r
                    best_c = c
                    best_obj = obj
        for e in range(ent_count[o]):
            g = slot_cat[ent_slot[row + e]]
            for i in range(slot_start[g], slot_start[g + 1]):
                eff[slots[i]] = fixed[slots[i]]
        offset = swap_objective(rest, shared, lam, divergence)  # A_r
        lead = 0.0  # the first kept key not sharing a category with o
        found = False
        exhausted = True
        for i in range(n_top):
            c = top[i]
            if seen[c] == r:
                continue
            obj = offset + keys[c]
            if not found:
                lead = obj
                found = True
            elif obj < lead - TIE_RTOL * (1.0 + max(abs(obj), abs(lead))):
                exhausted = False
                break
            if improves(obj, current) and (best_c < 0 or is_better(obj, s[c], c, best_obj, s[best_c], best_c)):
                best_r = r
                best_c = c
                best_obj = obj
        if exhausted and n_free > n_top:  # the kept keys ran out: every other candidate
            for c in range(n):
                if taken[c] or seen[c] == r:
                    continue
                obj = offset + keys[c]
                if improves(obj, current) and (best_c < 0 or is_better(obj, s[c], c, best_obj, s[best_c], best_c)):
                    best_r = r
                    best_c = c
                    best_obj = obj
        if best_c >= 0:  # the first position with an improving swap
            break
    return best_r, best_c


@compiled()
def refine_fast(n, kk, s, p, lam, alpha, divergence, rank_w, total_w, chosen, taken, max_swaps, ent_count, ent_slot,
                 width, slot_cat, slot_share, used, n_used, mass, base, work):
    """The swap loop with :func:`_best_swap_fast`. After a swap only the categories of the two
    items change: only their slots' ``fixed`` values and the keys of the candidates with an
    entry in them are recomputed (the others are bit-identical to a recomputation, see
    :func:`list_state`). Returns ``(swaps, cap_hit)``."""
    (fixed, eff, rem_mass, rem_base, rem_carry, mark, count, keys, seen, cand_start, cands, slot_start, slots, top,
     blocked) = work  # locals: a field read in a loop would cost a reference count each time
    w = rank_w[0]
    _build_indexes(n, ent_count, ent_slot, width, slot_cat, used, n_used, p.shape[0], cand_start, cands,
                   slot_start, slots)
    score_sum, shared, _ = list_state(
        kk, chosen, s, p, alpha, divergence, rank_w, total_w, ent_count, ent_slot, width, slot_cat, slot_share,
        count, False, mass, base, count,
    )
    eff[0] = 0.0
    fixed[0] = 0.0  # the padding slot of every candidate row
    for i in range(n_used):
        fixed[used[i]] = fixed_value(used[i], p, alpha, divergence, w, total_w, slot_cat, slot_share, mass, base)
        eff[used[i]] = fixed[used[i]]
    for c in range(n):
        keys[c] = _key(c, s, lam, divergence, ent_slot, width, fixed)
        blocked[c] = -np.inf if taken[c] else 0.0
    swaps = 0
    first = 0
    while True:
        current = swap_objective(score_sum, shared, lam, divergence)
        r, c = _best_swap_fast(n, kk, s, lam, alpha, divergence, p, w, total_w, chosen, taken, score_sum, shared,
                               current, first, ent_count, ent_slot, width, slot_cat, slot_share, mass, base, work)
        if c < 0:
            return swaps, False
        if swaps == max_swaps:
            return swaps, True
        o = chosen[r]
        taken[o] = False
        taken[c] = True
        blocked[o] = 0.0
        blocked[c] = -np.inf
        chosen[r] = c
        swaps += 1
        first = (r + 1) % kk
        score_sum = list_masses(kk, chosen, s, rank_w, ent_count, ent_slot, width, slot_cat, slot_share, mass, count)
        for j in (o, c):  # the changed categories: their terms, the same as from scratch
            for e in range(ent_count[j]):
                g = slot_cat[ent_slot[j * width + e]]
                base[g] = divergence_term(p[g], mass[g] / total_w, alpha, divergence)
        shared = 0.0
        for g in range(p.shape[0]):
            shared += base[g]
        for j in (o, c):  # their slots' values
            for e in range(ent_count[j]):
                g = slot_cat[ent_slot[j * width + e]]
                for i in range(slot_start[g], slot_start[g + 1]):
                    slot = slots[i]
                    fixed[slot] = fixed_value(slot, p, alpha, divergence, w, total_w, slot_cat, slot_share, mass,
                                               base)
                    eff[slot] = fixed[slot]
        stamp = -1 - swaps  # then the keys of their candidates, each once
        for j in (o, c):
            for e in range(ent_count[j]):
                g = slot_cat[ent_slot[j * width + e]]
                for i in range(cand_start[g], cand_start[g + 1]):
                    d = cands[i]
                    if seen[d] != stamp:
                        seen[d] = stamp
                        keys[d] = _key(d, s, lam, divergence, ent_slot, width, fixed)

