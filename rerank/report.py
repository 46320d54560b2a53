"""What a reranking did besides plain reranking: the per-call :class:`RerankReport`, the
"nothing lost" accounting it shares with the streaming report, and the one-line summary."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from rerank.engine.exact import GAP_TOL
from rerank.ids import cached_near_miss, show_id
from rerank.schemas import empty_skipped

__all__ = [
    "RerankReport", "RerankWarning", "RowAccounting", "RunContext", "describe", "match_warnings", "reconciles",
    "safeguard_applies", "summary_line",
]


class RowAccounting:
    """Nothing-lost accounting shared by :class:`RerankReport` and the streaming report.

    Needs ``n_users``, ``skipped``, ``n_candidates``, ``n_rows_reranked``,
    ``n_rows_without_user``, ``n_output_rows`` and ``n_expected_output_rows``.
    """

    @property
    def n_users_in(self) -> int:
        """Distinct users in the input: reranked + skipped."""
        return self.n_users + len(self.skipped)

    @property
    def reconciles(self) -> bool:
        """Every input row and user is accounted for: see :func:`reconciles`."""
        return reconciles(
            self.n_candidates, self.n_rows_reranked, int(self.skipped["n_rows"].sum()),
            self.n_rows_without_user, self.n_output_rows, self.n_expected_output_rows,
        )


@dataclass(frozen=True)
class RunContext:
    """What ran and against what: ``method`` the list builder and its settings (:func:`describe`),
    ``safeguard`` whether the safeguard applies to it, and the users and items ``fit`` saw."""

    method: str = ""
    safeguard: bool = True
    n_fitted_users: int = 0
    n_fitted_items: int = 0


@dataclass(frozen=True)
class RerankReport(RowAccounting):
    """What one ``rerank`` call did besides plain reranking (returned with the result by
    ``rerank(..., return_report=True)``; the last one is also kept as ``reranker.report_``).

    ``n_users``: users reranked (each has ``min(k, n_u)`` output rows); ``cold_users``: users
    given the population target; ``short_users``: users with fewer candidates than k (all
    returned); ``topk_users``: users for whom the safeguard kept plain top-k (greedy and quota
    mode only: PM-2 has no safeguard and the exact solver needs none).

    Nothing lost: ``skipped`` lists the users left out with ``on_invalid="skip"``
    (``user_id, reason, n_rows``); ``n_rows_without_user`` counts rows dropped for a null
    ``user_id``; :attr:`reconciles` checks ``n_candidates = n_rows_reranked + rows of skipped users
    + n_rows_without_user`` and ``n_output_rows = Σ_u min(k, n_u)`` over the reranked users.

    Quota mode (``min_share``): ``quota_shortfall`` is a Series ``user_id -> units`` over the
    reranked users, ``Σ_g max(0, r_g - c_g)`` quota units the list misses because no k-subset of
    that user's candidates meets every quota (0 for everyone whose quotas are feasible; see
    :mod:`rerank.engine.quota`); ``None`` without ``min_share``. ``solver="exact"``: ``exact_gap``
    is a Series ``user_id -> certified relative optimality gap`` (:mod:`rerank.engine.exact`).
    ``shown=``: ``shown_removed`` is a Series ``user_id -> candidates left out because they were
    shown already`` (those rows are reranked rows that produce no output, so ``n_output_rows``
    is ``Σ_u min(k, n_u − shown_u)``). ``explain=True``: ``reasons`` counts the output rows per
    reason (``score``, ``calibration``, ``quota``, ``swap``, ``safeguard``; docs/design.md §9.4),
    and :meth:`summary` lists them. ``lam="auto"``: ``lam`` the λ chosen per user,
    ``miscalibration`` each list's ``C``, ``max_miscalibration`` the budget τ and
    :attr:`over_budget` the users above it (all at λ = 1).
    ``refine="swap"``: ``swaps`` is a Series ``user_id -> swaps made`` and ``swap_cap_hit`` a
    Series ``user_id -> bool``, True where ``max_swaps`` stopped the search while an improving
    swap remained (:mod:`rerank.engine.refine`); both ``None`` without refinement.
    ``context`` (:class:`RunContext`) names the list builder and what ``fit`` saw.
    ``n_rows_unknown_item`` counts candidate rows whose item is not in ``item_categories``; with
    the context and ``id_hints`` (an unmatched id and the fitted id it nearly equals, per column)
    they give :attr:`warnings`, which ``rerank`` also issues as :class:`RerankWarning`.
    """

    n_users: int
    n_candidates: int
    n_output_rows: int
    cold_users: pd.Index
    short_users: pd.Index
    topk_users: pd.Index
    skipped: pd.DataFrame = field(default_factory=empty_skipped)
    n_rows_without_user: int = 0
    n_rows_reranked: int | None = None
    n_expected_output_rows: int | None = None
    quota_shortfall: pd.Series | None = None
    exact_gap: pd.Series | None = None
    shown_removed: pd.Series | None = None
    reasons: pd.Series | None = None
    lam: pd.Series | None = None
    miscalibration: pd.Series | None = None
    max_miscalibration: float | None = None

    @property
    def over_budget(self) -> pd.Index:
        """``lam="auto"``: the users whose list exceeds the budget even at λ = 1."""
        if self.lam is None:
            return pd.Index([])
        return self.miscalibration.index[(self.miscalibration > self.max_miscalibration).to_numpy()]
    swaps: pd.Series | None = None
    swap_cap_hit: pd.Series | None = None
    context: RunContext = field(default_factory=RunContext)
    n_rows_unknown_item: int = 0
    id_hints: dict = field(default_factory=dict)

    @property
    def warnings(self) -> tuple[str, ...]:
        """What looks wrong though valid (:func:`match_warnings`), each saying what to do."""
        return match_warnings(self.n_users, len(self.cold_users), self.n_rows_reranked or 0,
                              self.n_rows_unknown_item, self.context, self.id_hints)

    def summary(self) -> str:
        """One line: where every user and row went, what the method did (safeguard, quotas,
        exact gaps, reasons, the λ budget) and whether the counts reconcile ("nothing lost")."""
        shortfall = self.quota_shortfall
        gap = self.exact_gap
        line = summary_line(
            n_users=self.n_users, skipped=self.skipped, n_candidates=self.n_candidates,
            n_rows_reranked=self.n_rows_reranked, n_rows_without_user=self.n_rows_without_user,
            n_output_rows=self.n_output_rows, n_cold=len(self.cold_users),
            n_short=len(self.short_users), n_topk=len(self.topk_users) if self.context.safeguard else None,
            quota=None if shortfall is None else (int((shortfall > 0).sum()), int(shortfall.sum())),
            exact=None if gap is None else (float(gap.max()) if len(gap) else 0.0, int((gap > GAP_TOL).sum())),
            method=self.context.method, ok=self.reconciles,
            swaps=None if self.swaps is None else (int(self.swaps.sum()), int(self.swap_cap_hit.sum())),
        )
        line = with_reasons(line, self.reasons)
        if self.lam is not None:
            line = with_budget(line, len(self.lam), int((self.lam == 1.0).sum()), len(self.over_budget),
                               self.max_miscalibration)
        return line


def near_miss_hints(reranker, cold_users, unknown_items) -> dict:
    """The near-miss hints of one call (:func:`rerank.ids.cached_near_miss`): cold users against
    the fitted users, unknown items against the fitted items; the fitted side of each is built
    once per fit, not on every call (at 1M fitted users it cost ≈ 2 s per call)."""
    hints = {}
    table, items = reranker.target_table_, reranker.item_categories_
    if len(cold_users) and table.n_users:
        hints["user_id"] = cached_near_miss(reranker, "user_id", table, cold_users, lambda: table.users.ids)
    if len(unknown_items) and len(items.items):
        hints["item_id"] = cached_near_miss(reranker, "item_id", items, unknown_items, lambda: items.items)
    return hints


def per_user_series(users: pd.Index, values, name: str) -> pd.Series | None:
    """``values`` (one per user, or ``None``) as a Series indexed by ``user_id``."""
    if values is None:
        return None
    return pd.Series(values, index=pd.Index(users, name="user_id"), name=name)


def with_budget(line: str, n_users: int, n_at_one: int, n_over: int, budget: float) -> str:
    """The summary line with the ``lam="auto"`` outcome before its final verdict."""
    head, tail = line.rsplit("; ", 1)
    return (f"{head}; λ from the budget C ≤ {budget:g}: {n_users - n_over} users meet it, {n_at_one} at λ = 1 "
            f"({n_over} of them still above it); {tail}")


def reason_counts(codes, names) -> pd.Series:
    """Output rows per reason (every reason listed, 0 when unused), ``explain=True``."""
    return pd.Series(np.bincount(codes, minlength=len(names)), index=pd.Index(names, name="reason"), name="rows")


def with_reasons(line: str, reasons: pd.Series | None) -> str:
    """The summary line with the reason counts before its final verdict (``explain=True``)."""
    if reasons is None:
        return line
    head, tail = line.rsplit("; ", 1)
    counts = ", ".join(f"{int(n)} {name}" for name, n in reasons.items())
    return f"{head}; why each item is there: {counts}; {tail}"


class RerankWarning(UserWarning):
    """Input that is valid but most likely not what was meant (ids that match nothing,
    pipe-joined categories): the message says what to do."""


def describe(options) -> str:
    """The list builder of a :class:`rerank.RerankOptions` and its settings, for a summary."""
    if options.solver == "exact":
        builder = f"exact solver (certified gap <= {GAP_TOL:g})"
    elif options.method == "pm2":
        builder = f"PM-2 (theta={options.pm2_theta:g})"
    elif options.min_share:
        rho = 1.0 if options.min_share is True else float(options.min_share)
        builder = f"quota greedy (rho={rho:g}, threshold={options.min_share_threshold:g})"
    else:
        builder = "Steck's greedy"
    if safeguard_applies(options):
        builder += " + top-k safeguard"
    lam = ("per user" if options.lam is None else
           f"auto (C <= {options.max_miscalibration:g})" if options.lam == "auto" else f"{options.lam:g}")
    return f"{builder}, {options.divergence}, lam={lam}, k={options.k}, normalize={options.normalize}"


def safeguard_applies(options) -> bool:
    """The safeguard runs for the greedy and quota builders when asked (not PM-2, not exact)."""
    return bool(options.safeguard) and options.method != "pm2" and options.solver != "exact"


def match_warnings(n_users, n_cold, n_rows, n_unknown, context: RunContext, hints) -> tuple[str, ...]:
    """Warnings when most ids match nothing that was fitted (and something was): more than half
    of the users cold, or more than half of the candidate rows on items unknown to
    ``item_categories``. ``hints`` maps a column to ``(unmatched id, fitted id)`` that differ only
    in leading zeros, case, spaces or a trailing ``.0``."""
    found = []
    checks = (
        ("user_id", n_cold, n_users, context.n_fitted_users, "users have no usable history (population target)",
         "history"),
        ("item_id", n_unknown, n_rows, context.n_fitted_items,
         "candidate rows hold items unknown to item_categories (no category mass)", "item_categories"),
    )
    for column, n_bad, n_all, n_fitted, what, other in checks:
        if not (n_fitted and n_all and 2 * n_bad > n_all):
            continue
        hint = hints.get(column)
        near = f"; e.g. {show_id(hint[0])} is not {show_id(hint[1])}" if hint else ""
        found.append(
            f"{n_bad} of {n_all} {what}: ids are compared exactly{near}. If that is not expected, make the "
            f"candidates' {column} match the {other}'s (same text: leading zeros, case and spaces count)"
        )
    return tuple(found)


def reconciles(n_in, n_reranked, n_skipped_rows, n_without_user, n_out, n_expected_out) -> bool:
    """Row counts add up: in = reranked + skipped + without user; out = Σ min(k, n_u)."""
    if n_reranked is None or n_expected_out is None:
        return True
    return n_in == n_reranked + n_skipped_rows + n_without_user and n_out == n_expected_out


def summary_line(
    *, n_users, skipped, n_candidates, n_rows_reranked, n_rows_without_user, n_output_rows,
    n_cold, n_short, n_topk, ok, quota=None, exact=None, method="", swaps=None,
) -> str:
    """One line saying where every user and row went (the "nothing lost" summary).

    ``n_topk`` is ``None`` when the safeguard does not apply; ``quota`` ``(users short, units
    short)`` in quota mode; ``exact`` ``(largest gap, users past the gap tolerance)`` with the
    exact solver; ``swaps`` ``(swaps made, users whose search the cap stopped)`` with
    ``refine="swap"``; ``method`` from :func:`describe`.
    """
    reasons = ""
    if len(skipped):
        counts = skipped["reason"].value_counts(sort=True)
        reasons = " (" + ", ".join(f"{n} {reason}" for reason, n in counts.items()) + ")"
    n_skipped_rows = int(skipped["n_rows"].sum())
    reranked = n_candidates - n_skipped_rows - n_rows_without_user if n_rows_reranked is None else n_rows_reranked
    parts = [
        f"{n_users + len(skipped)} users in: {n_users} reranked, {len(skipped)} skipped{reasons}",
        f"{n_candidates} candidate rows in: {reranked} reranked, {n_skipped_rows} of skipped users, "
        f"{n_rows_without_user} without user_id",
        f"{n_output_rows} output rows",
        f"{n_cold} cold users (population target), {n_short} with fewer than k candidates"
        + ("" if n_topk is None else f", {n_topk} kept plain top-k (safeguard)"),
    ]
    if quota is not None:
        parts.append(
            f"{quota[0]} users short of their quotas ({quota[1]} quota units in all; no k-subset of their "
            "candidates meets them)"
        )
    if exact is not None:
        parts.append(
            f"exact: largest certified gap {exact[0]:.2g}, {exact[1]} users above {GAP_TOL:g} (time limit)"
        )
    if swaps is not None:
        parts.append(f"{swaps[0]} improving swaps, swap cap hit for {swaps[1]} users")
    if method:
        parts.append(f"method: {method}")
    parts.append("nothing lost" if ok else "ROW COUNTS DO NOT RECONCILE")
    return "; ".join(parts)
