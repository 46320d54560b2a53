"""``refine="swap"``: a local search that improves the greedy's list by single swaps (issue 13).

A **swap** ``(r, c)`` puts a candidate ``c`` outside the list ``L`` at position ``r`` in place of
``o = L_r``; the position keeps its rank weight. Each swap is scored incrementally from the
greedy's per-(category, share) tables (:mod:`rerank.engine.swap_terms`, which has the
formulas). Two paths choose the same swaps:

* **fast** (uniform rank weights, KL or χ², no quotas): per position only the out item's
  category neighbours are scored in full, the rest from per-candidate keys
  (:mod:`rerank.engine.refine_fast`);
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

import numpy as np

from rerank._numba import compiled
from rerank.engine.divergences import DIV_HELLINGER
from rerank.engine.greedy import gather_user
from rerank.engine.refine_fast import refine_fast
from rerank.engine.scoring import list_objective
from rerank.engine.swap_terms import (
    fixed_value,
    improves,
    list_state,
    new_refine_work,
    remove_out,
    removed_value,
    swap_objective,
)
from rerank.engine.ties import is_better
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


@compiled()
def refine_buffers(n_cat, buf, params):
    """Work buffers of :func:`refine_one_user` for one block, sized by the greedy's
    :class:`~rerank.engine.greedy.Buffers` ``buf`` (empty when ``params.refine`` is off)."""
    if params.refine == REFINE_NONE:
        return new_refine_work(n_cat, 1, 1, 1)
    return new_refine_work(n_cat, buf.slot_cat.shape[0], params.max_n, buf.ent_slot.shape[0])


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
                fixed[used[i]] = fixed_value(used[i], p, alpha, divergence, w, total_w, slot_cat, slot_share, mass,
                                              base)
            table_w = w
        shared = remove_out(r, o, w, p, alpha, divergence, total_w, shared_all, ent_count, ent_slot, width, slot_cat,
                             slot_share, mass, base, count, rem_mass, rem_base, rem_carry, mark)
        for i in range(n_used):
            slot = used[i]
            if mark[slot_cat[slot]] == r:
                eff[slot] = removed_value(slot, p, alpha, divergence, w, total_w, slot_cat, slot_share, rem_mass,
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
            obj = swap_objective(rest + s[c], total, lam, divergence)
            if improves(obj, current) and (best_c < 0 or is_better(obj, s[c], c, best_obj, s[best_c], best_c)):
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
        score_sum, shared, met = list_state(
            kk, chosen, s, p, alpha, divergence, rank_w, total_w, ent_count, ent_slot, width, slot_cat, slot_share,
            quota_row, use_quota, mass, base, work[6],
        )
        current = swap_objective(score_sum, shared, lam, divergence)
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


@compiled()
def refine_one_user(
    n, kk, s, p, lam, alpha, divergence, rank_w, chosen, taken, max_swaps, quota_row, quota_target, use_quota,
    ent_count, ent_slot, width, slot_cat, slot_share, used, n_used, mass, base, work,
):
    """Improve ``chosen[:kk]`` in place by improving single swaps (module docstring).

    The slot layout (``ent_count``, ``ent_slot``, ``slot_cat``, ``slot_share``,
    ``used[:n_used]``) is the one :func:`rerank.engine.greedy.gather_user` built for this user;
    ``mass``/``base`` are G-buffers, ``taken`` an n-buffer, ``work`` from
    :func:`refine_buffers`. ``max_swaps < 0`` means no cap. Returns ``(swaps, cap_hit)``:
    ``cap_hit`` is True when the cap stopped the search while an improving swap remained.
    Uniform rank weights with KL or χ² and no quotas take :func:`refine_fast`, everything
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
        return refine_fast(n, kk, s, p, lam, alpha, divergence, rank_w, total_w, chosen, taken, max_swaps,
                            ent_count, ent_slot, width, slot_cat, slot_share, used, n_used, mass, base, work)
    return _refine_scan(n, kk, s, p, lam, alpha, divergence, rank_w, total_w, chosen, taken, max_swaps, quota_row,
                        quota_target, use_quota, ent_count, ent_slot, width, slot_cat, slot_share, used, n_used, mass,
                        base, work)


@compiled()
def refine_user(n, kk, s, items, cats, p, lam, params, rank_w, start_mass, start_w, qrow, target, use_quota, width,
                n_used, pairs, user, objective, used_topk, buf, work):
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
        objective = list_objective(  # no prefix and one attribute here (docs/design.md §9): zeros, weights 1
            buf.chosen, kk, s, items, cats, p, lam, params.alpha, params.divergence, rank_w, buf.mass, start_mass,
            start_w,
        )
        used_topk = False
    return objective, used_topk, swaps, cap_hit
