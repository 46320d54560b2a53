"""``refine="swap"``: a local search that improves the greedy's list by single swaps (issue 13).

For user ``u`` with list ``L`` of ``k' = min(k, n)`` positions (rank weights ``w_1..w_k'``,
``W = Σ_r w_r``) the objective is Steck's

    F(L) = (1-λ) Σ_{l∈L} s_l  -  λ C(p, q(L)),   q_g(L) = M_g / W,   M_g = Σ_r w_r A[L_r, g].

A **swap** ``(r, c)`` puts a candidate ``c ∉ L`` at position ``r`` in place of ``o = L_r``; the
position keeps its rank weight. Only the categories of ``o`` and ``c`` change:

    M'_g = M_g - w_r A[o, g] + w_r A[c, g].

**Incremental evaluation** (the greedy's per-(category, share) tables,
:func:`rerank.engine.greedy.gather_user`, with the list length fixed at ``k'``). Every divergence
is ``finish(Σ_g term(p_g, q_g))`` (:mod:`rerank.engine.divergences`). For an out position ``r`` let
``M⁻_g = M_g - w_r A[o, g]`` (equal to ``M_g`` unless ``g ∈ cats(o)``), ``B⁻_g = term(p_g, M⁻_g/W)``
and ``S⁻ = Σ_g B⁻_g = S + Σ_{g∈cats(o)} (B⁻_g - B_g)``. Then

    D(r, c) = S⁻ + Σ_{(g, a) ∈ slots(c)} [ term(p_g, (M⁻_g + w_r a)/W) - B⁻_g ]
    F(r, c) = (1-λ) (Σ_{l∈L} s_l - s_o + s_c) - λ finish(D(r, c))

For a slot whose category is not in ``cats(o)`` the bracket depends on ``r`` only through
``w_r``; only the slots of ``o``'s categories are recomputed per position. ``M⁻_g`` is exactly 0
when ``o`` is the list's only item carrying ``g`` (so no rounding residue reaches a square root).
Two paths choose the same swaps:

* **fast** (uniform rank weights, KL or χ², no quotas): with one weight and ``finish = id``,
  ``F(r, c) = A_r + key_c`` for every ``c`` without an entry in ``o``'s categories, where
  ``A_r = (1-λ)(Σs - s_o) - λ S⁻`` and ``key_c = (1-λ) s_c - λ Σ_{slots(c)} fixed`` (the bracket
  with ``M⁻ = M``). The keys are kept per candidate and only the best few are ranked; per
  position only ``o``'s category neighbours (a category → candidates index) are scored in
  full. After a swap only the two items' categories change, so only their slots' values and
  their candidates' keys are recomputed (:func:`_refine_fast`). A position costs
  ``O(ḡ·shares)`` term evaluations and ``O(n ḡ² / G)`` additions, not ``O(n ḡ)``.
* **scan** (any divergence, any rank weights, quota mode): every ``(r, c)`` scored from the
  same tables (:func:`_best_swap_scan`).

**Search (decisions, docs/guarantees.md §6).** A swap is *improving* when

    F(r, c) > F(L) + TIE_RTOL · (1 + max(|F(r, c)|, |F(L)|))

(the library's tie tolerance, :mod:`rerank.engine.ties`). Positions are visited in list order,
cyclically, starting after the position of the last swap (at position 1 first); at the first
position that has improving swaps, the best of them by the tie rule (objective within the
tolerance, then higher score of ``c``, then earlier input position of ``c``) is made
(*first improvement over positions, best improvement within one*). ``F`` grows by more than
the tolerance at every swap, so no list comes back: the search cannot cycle. It stops at a
**1-swap local optimum** — a whole round of positions without an improving swap — or when
``max_swaps`` swaps are made and an improving swap remains (*cap hit*). After each swap the
list's masses are recomputed from scratch (no drift; a category the swap did not touch gets
bit-identical values, which is what lets the fast path keep its tables).

**Quota mode.** A swap is admissible only when the list keeps ``met(L') ≥ M*`` quota units
(:mod:`rerank.engine.quota`; ``met`` counts membership ``A[i, g] > 0``): with ``c⁻_g`` the list's
carriers of ``g`` without ``o`` and ``met⁻ = Σ_g min(r_g, c⁻_g)``, candidate ``c`` adds one unit
per protected category it carries with ``c⁻_g < r_g``. The local optimum is then over the
lists meeting ``M*``.
"""

from __future__ import annotations

from collections import namedtuple

import numpy as np

from rerank._numba import compiled
from rerank.engine.divergences import DIV_HELLINGER, divergence_finish, divergence_term
from rerank.engine.greedy import gather_user
from rerank.engine.scoring import insert_ranked, list_objective
from rerank.engine.ties import TIE_RTOL, is_better
from rerank.errors import InputError

__all__ = ["DEFAULT_MAX_SWAPS", "REFINE_CODES", "check_refine", "refine_buffers", "refine_one_user", "refine_user"]

REFINE_NONE = 0
REFINE_SWAP = 1
REFINE_CODES = {None: REFINE_NONE, "swap": REFINE_SWAP}
NO_CAP = -1
DEFAULT_MAX_SWAPS = 30  # above every count seen on the grid of docs/guarantees.md §6 (max 21)


def check_refine(refine, max_swaps, method_is_pm2: bool) -> tuple[int, int]:
    """Validate ``refine`` / ``max_swaps``; returns the kernel codes ``(refine, max_swaps)``
    (``max_swaps=None``: no cap, code -1)."""
    if refine not in REFINE_CODES:
        raise InputError(f"refine must be None or 'swap'; got {refine!r}")
    if max_swaps is not None and (
        isinstance(max_swaps, bool) or not isinstance(max_swaps, int | np.integer) or max_swaps < 0
    ):
        raise InputError(f"max_swaps must be None (no cap) or a whole number >= 0; got {max_swaps!r}")
    if refine is not None and method_is_pm2:
        raise InputError(
            "refine='swap' improves Steck's objective, which method='pm2' does not optimise: "
            "use refine=None with method='pm2'"
        )
    return REFINE_CODES[refine], NO_CAP if max_swaps is None else int(max_swaps)


TOP_KEYS = 8  # candidates kept by key on the fast path (see _best_swap_fast)

RefineWork = namedtuple(
    "RefineWork",
    ["fixed", "eff", "rem_mass", "rem_base", "rem_carry", "mark", "count", "keys", "seen", "cand_start", "cands",
     "slot_start", "slots", "top", "blocked"],
)


@compiled()
def refine_buffers(n_cat, buf, params):
    """Work buffers of :func:`refine_one_user` for one block, sized by the greedy's
    :class:`~rerank.engine.greedy.Buffers` ``buf`` (empty when ``params.refine`` is off)."""
    if params.refine == REFINE_NONE:
        return new_refine_work(n_cat, 1, 1, 1)
    return new_refine_work(n_cat, buf.slot_cat.shape[0], params.max_n, buf.ent_slot.shape[0])


@compiled()
def new_refine_work(n_cat, n_slots, n_cand, n_entries):
    """Work buffers of :func:`refine_one_user` (sizes: categories, slots, candidates, candidate
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
def _masses(kk, chosen, s, rank_w, ent_count, ent_slot, width, slot_cat, slot_share, mass, count):
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
def _list_state(kk, chosen, s, p, alpha, divergence, rank_w, total_w, ent_count, ent_slot, width, slot_cat,
                slot_share, quota_row, use_quota, mass, base, count):
    """Masses ``M_g``, terms ``B_g``, carriers per category; returns ``(Σ s, S = Σ_g B_g, met)``."""
    n_cat = p.shape[0]
    score_sum = _masses(kk, chosen, s, rank_w, ent_count, ent_slot, width, slot_cat, slot_share, mass, count)
    total = 0.0
    met = 0
    for g in range(n_cat):
        base[g] = divergence_term(p[g], mass[g] / total_w, alpha, divergence)
        total += base[g]
        if use_quota:
            met += min(quota_row[g], count[g])
    return score_sum, total, met


@compiled(inline="always")
def _objective(score_sum, total, lam, divergence):
    # λ = 1: no score term (0·Σs would be NaN when Σs of extreme finite scores overflows)
    score_term = (1.0 - lam) * score_sum if lam != 1.0 else 0.0
    return score_term - lam * divergence_finish(total, divergence)


@compiled(inline="always")
def _improves(obj, current):
    """The swap's objective beats the list's by more than the tie tolerance."""
    return obj > current and obj > current + TIE_RTOL * (1.0 + max(abs(obj), abs(current)))


@compiled(inline="always")
def _fixed_value(slot, p, alpha, divergence, w, total_w, slot_cat, slot_share, mass, base):
    """``term(p_g, (M_g + w a)/W) - B_g``: the slot's value when the out item has no entry in ``g``."""
    g = slot_cat[slot]
    return divergence_term(p[g], (mass[g] + w * slot_share[slot]) / total_w, alpha, divergence) - base[g]


@compiled(inline="always")
def _remove_out(r, o, w, p, alpha, divergence, total_w, shared_all, ent_count, ent_slot, width, slot_cat,
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
def _removed_value(slot, p, alpha, divergence, w, total_w, slot_cat, slot_share, rem_mass, rem_base):
    """``term(p_g, (M⁻_g + w a)/W) - B⁻_g`` for a slot of a marked category."""
    g = slot_cat[slot]
    q = (rem_mass[g] + w * slot_share[slot]) / total_w
    return divergence_term(p[g], q, alpha, divergence) - rem_base[g]


@compiled()
def _best_swap_scan(n, kk, s, p, lam, alpha, divergence, rank_w, total_w, chosen, taken, score_sum, shared_all,
                    current, first, met, quota_row, quota_target, use_quota, ent_count, ent_slot, width, slot_cat,
                    slot_share, used, n_used, mass, base, work):
    """The swap to make by the module's rule, or ``(-1, -1)``: positions from ``first`` on
    (cyclically), the best improving swap at the first position that has one; every ``(r, c)``
    scored (any divergence and rank weights, quota mode)."""
    (fixed, eff, rem_mass, rem_base, rem_carry, mark, count, keys, seen, cand_start, cands, slot_start, slots, top,
     blocked) = work  # locals: a field read in a loop would cost a reference count each time
    for g in range(p.shape[0]):
        mark[g] = -1
    eff[0] = 0.0  # the padding slot of every candidate row
    best_r = -1
    best_c = -1
    best_obj = 0.0
    table_w = -1.0  # rank weights are > 0: the first position fills the table
    for step in range(kk):
        r = (first + step) % kk
        o = chosen[r]
        w = rank_w[r]
        if w != table_w:
            for i in range(n_used):
                fixed[used[i]] = _fixed_value(used[i], p, alpha, divergence, w, total_w, slot_cat, slot_share, mass,
                                              base)
            table_w = w
        shared = _remove_out(r, o, w, p, alpha, divergence, total_w, shared_all, ent_count, ent_slot, width, slot_cat,
                             slot_share, mass, base, count, rem_mass, rem_base, rem_carry, mark)
        for i in range(n_used):
            slot = used[i]
            if mark[slot_cat[slot]] == r:
                eff[slot] = _removed_value(slot, p, alpha, divergence, w, total_w, slot_cat, slot_share, rem_mass,
                                           rem_base)
            else:
                eff[slot] = fixed[slot]
        need = 0
        if use_quota:  # quota units the list keeps without o
            met_out = met
            for e in range(ent_count[o]):
                g = slot_cat[ent_slot[o * width + e]]
                if rem_carry[g] and count[g] <= quota_row[g]:
                    met_out -= 1
            need = quota_target - met_out
        rest = score_sum - s[o]
        for c in range(n):
            if taken[c]:
                continue
            crow = c * width
            if need > 0:
                gain = 0
                for e in range(ent_count[c]):
                    slot = ent_slot[crow + e]
                    g = slot_cat[slot]
                    if slot_share[slot] > 0.0 and quota_row[g] > 0:
                        left = count[g] - (rem_carry[g] if mark[g] == r else 0)
                        if left < quota_row[g]:
                            gain += 1
                if gain < need:
                    continue
            total = shared
            for e in range(width):
                total += eff[ent_slot[crow + e]]
            obj = _objective(rest + s[c], total, lam, divergence)
            if _improves(obj, current) and (best_c < 0 or is_better(obj, s[c], c, best_obj, s[best_c], best_c)):
                best_r = r
                best_c = c
                best_obj = obj
        if best_c >= 0:
            break
    return best_r, best_c


@compiled()
def _refine_scan(n, kk, s, p, lam, alpha, divergence, rank_w, total_w, chosen, taken, max_swaps, quota_row,
                 quota_target, use_quota, ent_count, ent_slot, width, slot_cat, slot_share, used, n_used, mass, base,
                 work):
    """The swap loop with :func:`_best_swap_scan`; returns ``(swaps, cap_hit)``."""
    swaps = 0
    first = 0
    while True:
        score_sum, shared, met = _list_state(
            kk, chosen, s, p, alpha, divergence, rank_w, total_w, ent_count, ent_slot, width, slot_cat, slot_share,
            quota_row, use_quota, mass, base, work[6],
        )
        current = _objective(score_sum, shared, lam, divergence)
        r, c = _best_swap_scan(
            n, kk, s, p, lam, alpha, divergence, rank_w, total_w, chosen, taken, score_sum, shared, current, first,
            met, quota_row, quota_target, use_quota, ent_count, ent_slot, width, slot_cat, slot_share, used, n_used,
            mass, base, work,
        )
        if c < 0:
            return swaps, False
        if swaps == max_swaps:
            return swaps, True
        taken[chosen[r]] = False
        taken[c] = True
        chosen[r] = c
        swaps += 1
        first = (r + 1) % kk


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
    return _objective(s[c], total, lam, divergence)


@compiled()
def _best_swap_fast(n, kk, s, lam, alpha, divergence, p, w, total_w, chosen, taken, score_sum, shared_all, current,
                    first, ent_count, ent_slot, width, slot_cat, slot_share, mass, base, work):
    """:func:`_best_swap_scan` without scoring every ``(r, c)``; uniform rank weights, a
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
        shared = _remove_out(r, o, w, p, alpha, divergence, total_w, shared_all, ent_count, ent_slot, width,
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
                    eff[slot] = _removed_value(slot, p, alpha, divergence, w, total_w, slot_cat, slot_share,
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
                obj = _objective(rest + s[c], total, lam, divergence) + blocked[c]
                if _improves(obj, current) and (best_c < 0 or is_better(obj, s[c], c, best_obj, s[best_c], best_c)):
                    best_r = r
                    best_c = c
                    best_obj = obj
        for e in range(ent_count[o]):
            g = slot_cat[ent_slot[row + e]]
            for i in range(slot_start[g], slot_start[g + 1]):
                eff[slots[i]] = fixed[slots[i]]
        offset = _objective(rest, shared, lam, divergence)  # A_r
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
            if _improves(obj, current) and (best_c < 0 or is_better(obj, s[c], c, best_obj, s[best_c], best_c)):
                best_r = r
                best_c = c
                best_obj = obj
        if exhausted and n_free > n_top:  # the kept keys ran out: every other candidate
            for c in range(n):
                if taken[c] or seen[c] == r:
                    continue
                obj = offset + keys[c]
                if _improves(obj, current) and (best_c < 0 or is_better(obj, s[c], c, best_obj, s[best_c], best_c)):
                    best_r = r
                    best_c = c
                    best_obj = obj
        if best_c >= 0:  # the first position with an improving swap
            break
    return best_r, best_c


@compiled()
def _refine_fast(n, kk, s, p, lam, alpha, divergence, rank_w, total_w, chosen, taken, max_swaps, ent_count, ent_slot,
                 width, slot_cat, slot_share, used, n_used, mass, base, work):
    """The swap loop with :func:`_best_swap_fast`. After a swap only the categories of the two
    items change: only their slots' ``fixed`` values and the keys of the candidates with an
    entry in them are recomputed (the others are bit-identical to a recomputation, see
    :func:`_list_state`). Returns ``(swaps, cap_hit)``."""
    (fixed, eff, rem_mass, rem_base, rem_carry, mark, count, keys, seen, cand_start, cands, slot_start, slots, top,
     blocked) = work  # locals: a field read in a loop would cost a reference count each time
    w = rank_w[0]
    _build_indexes(n, ent_count, ent_slot, width, slot_cat, used, n_used, p.shape[0], cand_start, cands,
                   slot_start, slots)
    score_sum, shared, _ = _list_state(
        kk, chosen, s, p, alpha, divergence, rank_w, total_w, ent_count, ent_slot, width, slot_cat, slot_share,
        count, False, mass, base, count,
    )
    eff[0] = 0.0
    fixed[0] = 0.0  # the padding slot of every candidate row
    for i in range(n_used):
        fixed[used[i]] = _fixed_value(used[i], p, alpha, divergence, w, total_w, slot_cat, slot_share, mass, base)
        eff[used[i]] = fixed[used[i]]
    for c in range(n):
        keys[c] = _key(c, s, lam, divergence, ent_slot, width, fixed)
        blocked[c] = -np.inf if taken[c] else 0.0
    swaps = 0
    first = 0
    while True:
        current = _objective(score_sum, shared, lam, divergence)
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
        score_sum = _masses(kk, chosen, s, rank_w, ent_count, ent_slot, width, slot_cat, slot_share, mass, count)
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
                    fixed[slot] = _fixed_value(slot, p, alpha, divergence, w, total_w, slot_cat, slot_share, mass,
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


@compiled()
def refine_one_user(
    n, kk, s, p, lam, alpha, divergence, rank_w, chosen, taken, max_swaps, quota_row, quota_target, use_quota,
    ent_count, ent_slot, width, slot_cat, slot_share, used, n_used, mass, base, work,
):
    """Improve ``chosen[:kk]`` in place by best-improvement swaps (module docstring).

    The slot layout (``ent_count``, ``ent_slot``, ``slot_cat``, ``slot_share``,
    ``used[:n_used]``) is the one :func:`rerank.kernel.gather_user` built for this user;
    ``mass``/``base`` are G-buffers, ``taken`` an n-buffer, ``work`` from
    :func:`refine_buffers`. ``max_swaps < 0`` means no cap. Returns ``(swaps, cap_hit)``:
    ``cap_hit`` is True when the cap stopped the search while an improving swap remained.
    Uniform rank weights with KL or χ² and no quotas take :func:`_refine_fast`, everything
    else :func:`_refine_scan`; both choose the same swaps.
    """
    total_w = 0.0
    uniform = True
    for r in range(kk):
        total_w += rank_w[r]
        uniform = uniform and rank_w[r] == rank_w[0]
    taken[:n] = False
    for r in range(kk):
        taken[chosen[r]] = True
    if uniform and not use_quota and divergence != DIV_HELLINGER:
        return _refine_fast(n, kk, s, p, lam, alpha, divergence, rank_w, total_w, chosen, taken, max_swaps,
                            ent_count, ent_slot, width, slot_cat, slot_share, used, n_used, mass, base, work)
    return _refine_scan(n, kk, s, p, lam, alpha, divergence, rank_w, total_w, chosen, taken, max_swaps, quota_row,
                        quota_target, use_quota, ent_count, ent_slot, width, slot_cat, slot_share, used, n_used, mass,
                        base, work)


@compiled()
def refine_user(n, kk, s, items, cats, p, lam, params, rank_w, qrow, target, use_quota, width, n_used, pairs, user,
                objective, used_topk, buf, work):
    """The kernel's refinement step for one user whose list is in ``buf.chosen`` (the better of
    the built list and top-k, with its ``objective``): gathers the slots if the list builder
    did not (``n_used < 0``), refines, and returns ``(objective, used_topk, swaps, cap_hit)``;
    after a swap the objective is recomputed by :func:`rerank.engine.scoring.list_objective`
    and the list is no longer plain top-k."""
    if n_used < 0:
        n_used = gather_user(n, width, items, cats, pairs, user, buf)
    swaps, cap_hit = refine_one_user(
        n, kk, s, p, lam, params.alpha, params.divergence, rank_w, buf.chosen, buf.taken, params.max_swaps, qrow,
        target, use_quota, buf.ent_count, buf.ent_slot, width, buf.slot_cat, buf.slot_share, buf.used, n_used,
        buf.mass, buf.base, work,
    )
    if swaps:
        objective = list_objective(
            buf.chosen, kk, s, items, cats, p, lam, params.alpha, params.divergence, rank_w, buf.mass,
        )
        used_topk = False
    return objective, used_topk, swaps, cap_hit
