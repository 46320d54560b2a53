"""Rerank candidates batch by batch, holding one batch at a time (``rerank apply`` uses it).

    stream = rerank_batches(reranker, batches)      # batches: iterable of candidate frames
    for out in stream:                               # one output frame per batch
        write(out)
    print(stream.report.summary())                   # where every user and row went

Contract: each batch holds *whole* users (all of a user's candidate rows are in one batch).
A user seen in an earlier batch raises :class:`rerank.errors.InputError` (with
``check_repeats``; the set of seen users costs 8 bytes per user: 64-bit hashes, kept sorted in
a few merged runs). Nothing is accumulated besides the counts, the skipped users
(``on_invalid="skip"``) and those hashes, so peak memory is one batch's frames plus the fitted
reranker.
"""

from __future__ import annotations

import warnings
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from rerank.engine.exact import GAP_TOL
from rerank.errors import InputError, InputTypeError
from rerank.ids import id_array, show_id
from rerank.params import check_bool
from rerank.report import (
    RerankReport,
    RerankWarning,
    RowAccounting,
    RunContext,
    match_warnings,
    summary_line,
    with_budget,
    with_reasons,
)
from rerank.reranker import CalibratedReranker
from rerank.schemas import at_row, check_on_invalid, empty_skipped, validate_shown


class SeenIds:
    """A set of ids stored as sorted runs of 64-bit hashes (8 bytes per id).

    ``add_new(ids)`` returns the position of the first id already in the set (or ``-1``) and
    adds them all. Runs are merged when the newest is at least half the size of the one before
    (as in a log-structured merge), so there are O(log n) runs. Two distinct ids collide with
    probability about ``n² / 2⁶⁵`` (≈ 3·10⁻⁶ for 10⁷ users).
    """

    def __init__(self) -> None:
        self._runs: list[np.ndarray] = []

    def __len__(self) -> int:
        return sum(run.size for run in self._runs)

    @staticmethod
    def hashes(ids) -> np.ndarray:
        """64-bit hashes of ids (exact keys: :func:`rerank.ids.id_array`); whole-number floats
        hash like the integers they equal."""
        values = id_array(pd.Index(ids))
        if values.dtype.kind == "f":
            if np.all(np.abs(values) < 2.0**63):
                values = values.astype(np.int64)
            else:  # beyond int64: compare as Python integers
                values = np.array([int(v) for v in values], dtype=object)
        elif values.dtype.kind not in "iu":
            values = values.astype(object)
        return pd.util.hash_array(values)

    def add_new(self, ids) -> int:
        hashed = self.hashes(ids)
        first = -1
        for run in self._runs:
            pos = np.searchsorted(run, hashed)
            hit = (pos < run.size) & (run[np.minimum(pos, run.size - 1)] == hashed)
            if hit.any():
                at = int(np.flatnonzero(hit)[0])
                first = at if first < 0 else min(first, at)
        self._runs.append(np.unique(hashed))
        while len(self._runs) > 1 and 2 * self._runs[-1].size >= self._runs[-2].size:
            newest = self._runs.pop()
            self._runs[-1] = np.union1d(self._runs[-1], newest)
        return first


@dataclass
class StreamReport(RowAccounting):
    """Running totals over the batches (the streaming counterpart of :class:`RerankReport`).

    Holds counts only (plus the skipped users), never the ids of reranked users.
    """

    n_batches: int = 0
    n_users: int = 0
    n_candidates: int = 0
    n_rows_reranked: int = 0
    n_rows_without_user: int = 0
    n_output_rows: int = 0
    n_expected_output_rows: int = 0
    n_cold: int = 0
    n_short: int = 0
    n_topk: int = 0
    n_quota_short: int | None = None  # quota mode: users whose list misses some quota units
    reasons: pd.Series | None = None  # explain=True: output rows per reason
    budget: float | None = None  # lam="auto": the budget τ, users at λ = 1 and users above τ
    n_lam_one: int = 0
    n_over_budget: int = 0
    n_swaps: int | None = None  # refine="swap": swaps made over all users
    n_swap_cap_hits: int | None = None  # refine="swap": users whose search the swap cap stopped
    n_quota_units_short: int = 0
    exact_max_gap: float | None = None  # exact solver: the largest certified gap
    n_exact_uncertified: int = 0
    context: RunContext = field(default_factory=RunContext)
    n_rows_unknown_item: int = 0
    id_hints: dict = field(default_factory=dict)
    _skipped: list[pd.DataFrame] = field(default_factory=list, repr=False)

    def add(self, report: RerankReport) -> None:
        self.n_batches += 1
        self.n_users += report.n_users
        self.n_candidates += report.n_candidates
        self.n_rows_reranked += report.n_rows_reranked
        self.n_rows_without_user += report.n_rows_without_user
        self.n_output_rows += report.n_output_rows
        self.n_expected_output_rows += report.n_expected_output_rows
        self.n_cold += len(report.cold_users)
        self.n_short += len(report.short_users)
        self.n_topk += len(report.topk_users)
        self.context = report.context
        self.n_rows_unknown_item += report.n_rows_unknown_item
        for column, hint in report.id_hints.items():
            self.id_hints.setdefault(column, hint)
        shortfall = report.quota_shortfall
        if shortfall is not None:
            self.n_quota_short = (self.n_quota_short or 0) + int((shortfall > 0).sum())
            self.n_quota_units_short += int(shortfall.sum())
        gap = report.exact_gap
        if gap is not None:
            self.exact_max_gap = max(self.exact_max_gap or 0.0, float(gap.max()) if len(gap) else 0.0)
            self.n_exact_uncertified += int((gap > GAP_TOL).sum())
        swaps = report.swaps
        if swaps is not None:
            self.n_swaps = (self.n_swaps or 0) + int(swaps.sum())
            self.n_swap_cap_hits = (self.n_swap_cap_hits or 0) + int(report.swap_cap_hit.sum())
        if len(report.skipped):
            self._skipped.append(report.skipped)
        if report.reasons is not None:
            self.reasons = report.reasons if self.reasons is None else self.reasons + report.reasons
        if report.lam is not None:
            self.budget = report.max_miscalibration
            self.n_lam_one += int((report.lam == 1.0).sum())
            self.n_over_budget += len(report.over_budget)

    @property
    def skipped(self) -> pd.DataFrame:
        """Skipped users: ``user_id, reason, n_rows``."""
        if not self._skipped:
            return empty_skipped()
        if len(self._skipped) > 1:
            self._skipped = [pd.concat(self._skipped, ignore_index=True)]
        return self._skipped[0]

    @property
    def warnings(self) -> tuple[str, ...]:
        """The :func:`rerank.report.match_warnings` of the totals (once per run, not per batch)."""
        return match_warnings(self.n_users, self.n_cold, self.n_rows_reranked, self.n_rows_unknown_item,
                              self.context, self.id_hints)

    def summary(self) -> str:
        line = summary_line(
            n_users=self.n_users, skipped=self.skipped, n_candidates=self.n_candidates,
            n_rows_reranked=self.n_rows_reranked, n_rows_without_user=self.n_rows_without_user,
            n_output_rows=self.n_output_rows, n_cold=self.n_cold, n_short=self.n_short,
            n_topk=self.n_topk if self.context.safeguard else None, ok=self.reconciles,
            quota=None if self.n_quota_short is None else (self.n_quota_short, self.n_quota_units_short),
            exact=None if self.exact_max_gap is None else (self.exact_max_gap, self.n_exact_uncertified),
            method=self.context.method,
            swaps=None if self.n_swaps is None else (self.n_swaps, self.n_swap_cap_hits),
        )
        line = with_reasons(line, self.reasons)
        if self.budget is not None:
            line = with_budget(line, self.n_users, self.n_lam_one, self.n_over_budget, self.budget)
        return line

    def as_dict(self) -> dict:
        """JSON-ready counts, the skipped users and whether everything reconciles."""
        skipped = self.skipped
        return {
            "users_in": self.n_users_in,
            "users_reranked": self.n_users,
            "users_skipped": len(skipped),
            "skipped_by_reason": {str(k): int(v) for k, v in skipped["reason"].value_counts().items()},
            "candidate_rows_in": self.n_candidates,
            "rows_reranked": self.n_rows_reranked,
            "rows_of_skipped_users": int(skipped["n_rows"].sum()),
            "rows_without_user_id": self.n_rows_without_user,
            "output_rows": self.n_output_rows,
            "cold_users": self.n_cold,
            "users_with_fewer_than_k": self.n_short,
            "users_kept_top_k": self.n_topk if self.context.safeguard else None,
            "batches": self.n_batches,
            "users_short_of_quotas": self.n_quota_short,
            "users_at_lambda_1": self.n_lam_one if self.budget is not None else None,
            "users_over_budget": self.n_over_budget if self.budget is not None else None,
            "rows_by_reason": None if self.reasons is None else {str(k): int(v) for k, v in self.reasons.items()},
            "swaps": self.n_swaps,
            "users_swap_cap_hit": self.n_swap_cap_hits,
            "quota_units_short": self.n_quota_units_short if self.n_quota_short is not None else None,
            "exact_max_gap": self.exact_max_gap,
            "exact_users_above_gap_tolerance": self.n_exact_uncertified if self.exact_max_gap is not None else None,
            "candidate_rows_on_unknown_items": self.n_rows_unknown_item,
            "method": self.context.method,
            "warnings": list(self.warnings),
            "reconciles": self.reconciles,
        }


class RerankStream:
    """Iterable of output frames, one per input batch; ``report`` is updated as it goes."""

    def __init__(
        self,
        reranker: CalibratedReranker,
        batches: Iterable[pd.DataFrame],
        *,
        on_invalid: str = "raise",
        check_repeats: bool = True,
        warn: bool = True,
        shown=None,
        explain: bool = False,
    ):
        if not isinstance(reranker, CalibratedReranker):
            raise InputTypeError(
                f"reranker must be a fitted CalibratedReranker, got {type(reranker).__name__}"
            )
        reranker.check_fitted()
        self.reranker = reranker
        self.batches = batches
        self.on_invalid = check_on_invalid(on_invalid)
        self.check_repeats = check_bool("check_repeats", check_repeats)
        self.warn = check_bool("warn", warn)
        self.report = StreamReport()
        self.shown = None if shown is None else validate_shown(shown)  # checked once for every batch
        self.explain = check_bool("explain", explain)
        self._seen = SeenIds() if self.check_repeats else None

    def _check_new_users(self, batch: pd.DataFrame) -> None:
        users = batch["user_id"]
        present = users.notna().to_numpy()
        distinct = pd.unique(users[present] if not present.all() else users)
        if not len(distinct):
            return
        at = self._seen.add_new(distinct)
        if at >= 0:
            user = distinct[at]
            row = batch.index[np.flatnonzero((users == user).to_numpy())[0]]
            where = at_row(batch.index, row)
            raise InputError(
                f"candidates: user {show_id(user)} at {where} already appeared in an earlier batch; "
                "each user's rows must be contiguous, in one batch (sort or group the candidates by user_id)"
            )

    def __iter__(self) -> Iterator[pd.DataFrame]:
        batches = iter(self.batches)
        done = object()
        while (batch := next(batches, done)) is not done:
            # warnings: once, from the totals
            out, report = self.reranker._rerank(batch, self.on_invalid, shown=self.shown, explain=self.explain)
            if self._seen is not None:
                self._check_new_users(batch)
            self.report.add(report)
            # hold no batch while the caller writes this output or the source reads the next one:
            # at most one input batch is alive at a time
            del batch, report
            yield out
            del out
        if self.warn:
            for message in self.report.warnings:
                warnings.warn(message, RerankWarning, stacklevel=2)


def rerank_batches(
    reranker: CalibratedReranker,
    batches: Iterable[pd.DataFrame],
    *,
    on_invalid: str = "raise",
    check_repeats: bool = True,
    warn: bool = True,
    shown=None,
    explain: bool = False,
) -> RerankStream:
    """Rerank an iterable of candidate frames, each holding whole users; yields one output frame
    (``user_id, item_id, score, rank``) per batch, exactly ``reranker.rerank(batch)``.

    ``stream.report`` (a :class:`StreamReport`) sums the per-batch reports: users and rows in,
    reranked, skipped (``on_invalid="skip"``) and out, and whether they reconcile. With
    ``check_repeats`` a user appearing in two batches raises ``InputError``. Ids that match
    nothing fitted give one :class:`rerank.report.RerankWarning` per kind at the end (from the
    totals; ``warn=False``: only in ``stream.report.warnings``). ``shown``: items already shown
    (``CalibratedReranker.rerank(shown=)``), one frame for every batch; ``explain`` as in ``rerank``.
    """
    return RerankStream(
        reranker, batches, on_invalid=on_invalid, check_repeats=check_repeats, warn=warn, shown=shown,
        explain=explain,
    )
