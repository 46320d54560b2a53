"""``refine="swap"``: a local search that improves the greedy's list by single swaps (issue 13).

For user ``u`` with list ``L`` of ``k' = min(k, n)`` positions (rank weights ``w_1..w_k'``,
``W = Σ_r w_r``) the objective is Steck's

    F(L) = (1-λ) Σ_{l∈L} s_l  -  λ C(p, q(L)),   q_g(L) = M_g / W,   M_g = Σ_r w_r A[L_r, g].

A **swap** ``(r, c)`` puts a candidate ``c ∉ L`` at position ``r`` in place of ``o = L_r``; the
position keeps its rank weight. Only the categories of ``o`` and ``c`` change:

    M'_g = M_g - w_r A[o, g] + w_r A[c, g].

**Incremental evaluation** (the greedy's per-(category, share) tables,
:func:`rerank.kernel.gather_user`, with the list length fixed at ``k'``). Every divergence is
``finish(Σ_g term(p_g, q_g))`` (:mod:`rerank.divergences`). For an out position ``r`` let
``M⁻_g = M_g - w_r A[o, g]`` (equal to ``M_g`` unless ``g ∈ cats(o)``), ``B⁻_g = term(p_g, M⁻_g/W)``
and ``S⁻ = Σ_g B⁻_g = S + Σ_{g∈cats(o)} (B⁻_g - B_g)``. Then

    D(r, c) = S⁻ + Σ_{(g, a) ∈ slots(c)} [ term(p_g, (M⁻_g + w_r a)/W) - B⁻_g ]
    F(r, c) = (1-λ) (Σ_{l∈L} s_l - s_o + s_c) - λ finish(D(r, c))

For a slot whose category is not in ``cats(o)`` the bracket depends on ``r`` only through
``w_r``: it is computed once per pass and per distinct rank weight (once per pass with uniform
weights); only the slots of ``o``'s categories are recomputed per position. A pass costs
``O(slots + k'·ḡ·shares)`` term evaluations plus ``k'·n·ḡ`` additions. ``M⁻_g`` is exactly 0
when ``o`` is the list's only item carrying ``g`` (so no rounding residue reaches a square root).

**Search (decisions, docs/guarantees.md §6).** *Best improvement*: each pass scans every
``(r, c)``. A swap is *improving* when

    F(r, c) > F(L) + TIE_RTOL · (1 + max(|F(r, c)|, |F(L)|))

(the library's tie tolerance, :mod:`rerank.ties`); among the improving swaps the best by the
tie rule is applied (objective within the tolerance, then higher score of ``c``, then earlier
position of ``c``, then earlier ``r``). ``F`` grows by more than the tolerance at every swap, so
no list comes back: the search cannot cycle. It stops at a **1-swap local optimum** (no
improving swap) or when ``max_swaps`` swaps are made and an improving swap remains (*cap hit*).
After each swap the list's masses and terms are recomputed from scratch (no drift).

**Quota mode.** A swap is admissible only when the list keeps ``met(L') ≥ M*`` quota units
(:mod:`rerank.quota`; ``met`` counts membership ``A[i, g] > 0``): with ``c⁻_g`` the list's
carriers of ``g`` without ``o`` and ``met⁻ = Σ_g min(r_g, c⁻_g)``, candidate ``c`` adds one unit
per protected category it carries with ``c⁻_g < r_g``. The local optimum is then over the
lists meeting ``M*``.
"""

from __future__ import annotations

import numpy as np

from rerank._numba import compiled
from rerank.divergences import divergence_finish, divergence_term
from rerank.errors import InputError
from rerank.ties import TIE_RTOL, is_better

__all__ = ["DEFAULT_MAX_SWAPS", "REFINE_CODES", "check_refine", "refine_buffers", "refine_one_user"]

REFINE_NONE = 0
REFINE_SWAP = 1
REFINE_CODES = {None: REFINE_NONE, "swap": REFINE_SWAP}
NO_CAP = -1
DEFAULT_MAX_SWAPS = 10


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


@compiled()
def refine_buffers(n_cat, n_slots):
    """Work buffers of :func:`refine_one_user`: per-slot values (fixed part, effective) and
    per-category removal state, carrier counts and marks."""
    return (
        np.zeros(n_slots, dtype=np.float64),
        np.zeros(n_slots, dtype=np.float64),
        np.empty(n_cat, dtype=np.float64),
        np.empty(n_cat, dtype=np.float64),
        np.empty(n_cat, dtype=np.int64),
        np.empty(n_cat, dtype=np.int64),
        np.empty(n_cat, dtype=np.int64),
    )


@compiled()
def _list_state(kk, chosen, s, p, alpha, divergence, rank_w, total_w, ent_count, ent_slot, width, slot_cat,
                slot_share, quota_row, use_quota, mass, base, count):
    """Masses ``M_g``, terms ``B_g``, carriers per category; returns ``(Σ s, S = Σ_g B_g, met)``."""
    n_cat = p.shape[0]
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


@compiled()
def _best_swap(n, kk, s, p, lam, alpha, divergence, rank_w, total_w, chosen, taken, score_sum, shared_all,
               current, met, quota_row, quota_target, use_quota, ent_count, ent_slot, width, slot_cat,
               slot_share, used, n_used, mass, base, count, work):
    """The best improving swap ``(r, c)`` by the module's rule, or ``(-1, -1)``."""
    fixed, eff, rem_mass, rem_base, rem_carry, mark, _ = work
    n_cat = p.shape[0]
    for g in range(n_cat):
        mark[g] = -1
    eff[0] = 0.0  # the padding slot of every candidate row
    best_r = -1
    best_c = -1
    best_obj = 0.0
    table_w = -1.0  # rank weights are > 0: the first position fills the table
    for r in range(kk):
        o = chosen[r]
        w = rank_w[r]
        if w != table_w:
            for i in range(n_used):
                slot = used[i]
                g = slot_cat[slot]
                q = (mass[g] + w * slot_share[slot]) / total_w
                fixed[slot] = divergence_term(p[g], q, alpha, divergence) - base[g]
            table_w = w
        shared = shared_all
        met_out = met
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
            if use_quota and carries and count[g] <= quota_row[g]:
                met_out -= 1
        for i in range(n_used):
            slot = used[i]
            g = slot_cat[slot]
            if mark[g] == r:
                q = (rem_mass[g] + w * slot_share[slot]) / total_w
                eff[slot] = divergence_term(p[g], q, alpha, divergence) - rem_base[g]
            else:
                eff[slot] = fixed[slot]
        need = quota_target - met_out if use_quota else 0
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
            if not obj > current + TIE_RTOL * (1.0 + max(abs(obj), abs(current))):
                continue
            if best_c < 0 or is_better(obj, s[c], c, best_obj, s[best_c], best_c):
                best_r = r
                best_c = c
                best_obj = obj
    return best_r, best_c


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
    """
    count = work[6]
    total_w = 0.0
    for r in range(kk):
        total_w += rank_w[r]
    taken[:n] = False
    for r in range(kk):
        taken[chosen[r]] = True
    score_sum, shared, met = _list_state(
        kk, chosen, s, p, alpha, divergence, rank_w, total_w, ent_count, ent_slot, width, slot_cat, slot_share,
        quota_row, use_quota, mass, base, count,
    )
    swaps = 0
    while True:
        current = _objective(score_sum, shared, lam, divergence)
        r, c = _best_swap(
            n, kk, s, p, lam, alpha, divergence, rank_w, total_w, chosen, taken, score_sum, shared, current, met,
            quota_row, quota_target, use_quota, ent_count, ent_slot, width, slot_cat, slot_share, used, n_used,
            mass, base, count, work,
        )
        if c < 0:
            return swaps, False
        if swaps == max_swaps:
            return swaps, True
        taken[chosen[r]] = False
        taken[c] = True
        chosen[r] = c
        swaps += 1
        score_sum, shared, met = _list_state(
            kk, chosen, s, p, alpha, divergence, rank_w, total_w, ent_count, ent_slot, width, slot_cat,
            slot_share, quota_row, use_quota, mass, base, count,
        )
