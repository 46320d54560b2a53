"""``check_reranker``: put any reranker through the battery of guarantees (docs/testing.md).

    from rerank.testing import check_reranker, from_reranker
    check_reranker(my_rerank_fn, k=10)                       # raises AssertionError on a failure
    check_reranker(from_reranker(CalibratedReranker, normalize="minmax"))

Each guarantee (:data:`rerank.testing.guarantees.GUARANTEES`) is a hypothesis property with
``max_examples`` examples; guarantees checked on the same kind of example share one property
and one call of the reranker per example. The settings inherit the loaded hypothesis profile
(so ``derandomize=True`` there gives the same examples on every run), with no deadline, no
example database and no health checks. Every guarantee is checked, failing or not: the
``AssertionError`` names each one that failed, with its shrunk counterexample.
"""

from __future__ import annotations

from contextlib import contextmanager
from dataclasses import dataclass, field

import pandas as pd
from hypothesis import HealthCheck, given, settings
from hypothesis.errors import Flaky, Unsatisfiable
from hypothesis.internal.conjecture import engine as conjecture_engine
from hypothesis.reporting import with_reporter

from rerank.testing.cases import Case, Evaluation, Subject, Violation
from rerank.testing.declare import GENERAL, NAMES, Objective, Quota
from rerank.testing.guarantees import EXAMPLES, GUARANTEES

DEFAULT_MAX_EXAMPLES = 40
DEFAULT_SHRINK_SECONDS = 10.0


@dataclass
class Failure:
    """A guarantee that failed: the violation on the shrunk ``case``; ``flaky`` when the failure
    did not reproduce on every run of that case."""

    name: str
    case: Case
    violation: Violation
    flaky: bool = False

    def report(self) -> str:
        rule = GUARANTEES[self.name].rule
        lines = [f"── {self.name}: {rule}", self.violation.message]
        if self.flaky:
            lines.append("(the failure did not reproduce on every run of this input: rerank_fn is not deterministic)")
        extra = "".join(f", {key}={value!r}" for key, value in self.case.extra.items())
        lines.append(f"Shrunk counterexample: k={self.case.k}, lam={self.case.lam!r}{extra}")
        for name, frame in zip(("history", "item_categories", "candidates"), self.case.inputs, strict=True):
            lines.append(show_frame(name, frame))
        lines += [show_frame(name, frame) for name, frame in self.violation.frames.items()]
        lines.append("Rebuild it: " + "; ".join(
            f"{name} = {frame_code(frame)}" for name, frame in
            zip(("history", "item_categories", "candidates"), self.case.inputs, strict=True)))
        return "\n".join(lines)


@dataclass
class BatteryResult:
    """What :func:`check_reranker` ran: ``passed`` and ``failed`` guarantees, those ``unchecked``
    (every example was rejected: rerank_fn raised on all of them), those ``not_applicable`` to
    what the reranker declares and those ``skipped`` by the caller (name -> reason)."""

    subject: str
    passed: list = field(default_factory=list)
    failed: list = field(default_factory=list)
    unchecked: dict = field(default_factory=dict)
    not_applicable: dict = field(default_factory=dict)
    skipped: list = field(default_factory=list)

    def summary(self) -> str:
        ran = len(self.passed) + len(self.failed) + len(self.unchecked)
        parts = [f"{self.subject}: {len(self.passed)} of {ran} guarantees hold"]
        if self.failed:
            parts.append("failed: " + ", ".join(f.name for f in self.failed))
        if self.unchecked:
            parts.append("unchecked: " + ", ".join(self.unchecked))
        if self.not_applicable:
            parts.append("not applicable: " + ", ".join(self.not_applicable))
        if self.skipped:
            parts.append("skipped: " + ", ".join(self.skipped))
        return "; ".join(parts)

    def report(self) -> str:
        lines = [self.summary()]
        lines += [f"── {name}: not checked: {reason}" for name, reason in self.unchecked.items()]
        lines += [failure.report() for failure in self.failed]
        return "\n\n".join(lines)

    def __str__(self) -> str:
        return self.summary()


def choose(guarantees, skip, claims, objective: Objective, quota: Quota | None) -> tuple[list, dict, list]:
    """``(names to run, {name: why not applicable}, names skipped)`` in catalogue order."""
    for given_names, what in ((guarantees, "guarantees"), (skip, "skip")):
        unknown = [name for name in (given_names or ()) if name not in NAMES]
        if isinstance(given_names, str) or unknown:
            raise ValueError(f"{what} must be a list of guarantee names from {list(NAMES)}; got {given_names!r}")
    not_applicable = {}
    if guarantees is None:
        wanted = set(claims) if claims is not None else set(GENERAL)
        if claims is None and objective.normalize in ("minmax", "rank"):
            wanted.add("score-affine")
        if claims is None and quota is not None:
            wanted.add("quota")
        for name in NAMES:
            if name not in wanted:
                not_applicable[name] = _why_not(name, claims, objective, quota)
    else:
        wanted = set(guarantees)
        if "quota" in wanted and quota is None:
            raise ValueError("the guarantee 'quota' needs the quotas the reranker claims: "
                             "pass quota=Quota(rho, threshold)")
    skipped = [name for name in NAMES if name in wanted and name in set(skip)]
    return [name for name in NAMES if name in wanted and name not in skipped], not_applicable, skipped


def _why_not(name: str, claims, objective: Objective, quota: Quota | None) -> str:
    if claims is not None:
        return "the reranker does not claim it with these settings"
    if name == "score-affine":
        return "no score normalisation declared (Objective.normalize is None): raw scores set the λ trade-off"
    if name == "quota" and quota is None:
        return "no quotas declared (quota=Quota(...))"
    return "not requested"


def check_reranker(rerank_fn, *, k: int = 10, max_examples: int = DEFAULT_MAX_EXAMPLES, guarantees=None, skip=(),
                   objective: Objective | None = None, quota: Quota | None = None, input_options: dict | None = None,
                   shrink_seconds: float = DEFAULT_SHRINK_SECONDS, hypothesis_settings: settings | None = None,
                   ) -> BatteryResult:
    """Run ``rerank_fn(history, item_categories, candidates, *, k, lam) -> output frame`` through
    the battery; raise ``AssertionError`` naming every guarantee that fails, with its shrunk
    counterexample; return the :class:`BatteryResult` when all hold.

    * ``k``: the longest list asked for; each example draws ``k`` in ``1..k`` (often ``k``
      itself) and up to ``2k + 2`` candidates per user (``k + 3`` for ``quota``).
    * ``max_examples``: examples per group of guarantees that share their examples (seven
      groups; the battery has 15 guarantees).
    * ``guarantees``: the names to run (default: all that apply); ``skip``: names to leave out.
    * ``objective`` / ``quota``: what the objective-based guarantees score lists with, and the
      quotas the reranker claims; default: ``rerank_fn.objective`` / ``rerank_fn.quota`` when it
      has them (as :func:`from_reranker` does), else ``Objective()`` (scores as given, KL,
      α = 0.01, uniform rank weights) and no quotas. ``rerank_fn.claims`` (a set of names), if
      present, is the default set of guarantees.
    * ``input_options``: knobs of :func:`rerank.testing.strategies.rerank_inputs` for every
      example (e.g. ``{"id_kinds": ("int",)}`` for a reranker that takes integer ids only).
    * ``shrink_seconds``: how long each failure is shrunk before it is reported.
    * ``hypothesis_settings``: replaces the battery's hypothesis settings.
    """
    __tracebackhide__ = True  # pytest shows the report, not this function's source
    if not callable(rerank_fn):
        raise TypeError(f"rerank_fn must be callable, got {type(rerank_fn).__name__}")
    if isinstance(k, bool) or not isinstance(k, int) or k < 1:
        raise ValueError(f"k must be a whole number >= 1, got {k!r}")
    objective = objective or getattr(rerank_fn, "objective", None) or Objective()
    quota = quota or getattr(rerank_fn, "quota", None)
    names, not_applicable, skipped = choose(guarantees, skip, getattr(rerank_fn, "claims", None), objective, quota)
    subject = Subject(rerank_fn, k, objective, quota, dict(input_options or {}))
    battery_settings = hypothesis_settings or settings(
        max_examples=max_examples, deadline=None, database=None, suppress_health_check=list(HealthCheck),
        report_multiple_bugs=False,
    )
    result = BatteryResult(_name(rerank_fn), not_applicable=not_applicable, skipped=skipped)
    for group in EXAMPLES:
        members = [name for name in names if GUARANTEES[name].examples == group]
        if members:
            failures, unchecked = run_group(group, members, subject, battery_settings, shrink_seconds)
            result.failed += failures
            result.unchecked.update(unchecked)
    result.failed.sort(key=lambda failure: NAMES.index(failure.name))
    result.passed = [name for name in names if name not in result.unchecked
                     and all(failure.name != name for failure in result.failed)]
    if result.failed:
        raise AssertionError(result.report())
    return result


def run_group(group: str, names: list, subject: Subject, battery_settings: settings,
              shrink_seconds: float) -> tuple[list, dict]:
    """Check the guarantees ``names`` (which share their examples) in one hypothesis property:
    each example is put to the reranker once and every guarantee is checked on it, in catalogue
    order; the first that fails is shrunk and reported, then the property runs again without
    it, until the rest hold. Returns ``(failures, {name: why unchecked})``."""
    failures, pending = [], list(names)
    while pending:
        outcome = _run_property(group, pending, subject, battery_settings, shrink_seconds)
        if outcome is None:
            return failures, {}
        if isinstance(outcome, str):
            return failures, dict.fromkeys(pending, outcome)
        failures.append(outcome)
        pending.remove(outcome.name)
    return failures, {}


def _run_property(group: str, names: list, subject: Subject, battery_settings: settings, shrink_seconds: float):
    """``None`` (every guarantee held), the first :class:`Failure`, or why nothing was checked."""
    last: dict = {}

    def holds(case):
        evaluation = Evaluation(subject, case)
        for name in names:
            try:
                GUARANTEES[name].check(evaluation)
            except Violation as violation:
                violation.guarantee = name
                last[name] = Failure(name, case, violation)
                raise

    prop = battery_settings(given(case=EXAMPLES[group](subject))(holds))
    try:
        with shrink_budget(shrink_seconds):
            prop()
    except Violation as violation:
        return last[violation.guarantee]
    except Flaky:
        found = [last[name] for name in names if name in last]
        if not found:
            raise
        found[0].flaky = True
        return found[0]
    except Unsatisfiable:
        return "rerank_fn raised (or returned no output frame) on every example (see no-error)"
    return None


@contextmanager
def shrink_budget(seconds: float):
    """Stop shrinking ``seconds`` after it starts (hypothesis allows five minutes and offers no
    setting: its module constant is set for the run, and its notice about slow shrinking, which
    would blame hypothesis, is not printed). The smallest failing case found so far is reported."""
    old = getattr(conjecture_engine, "MAX_SHRINKING_SECONDS", None)
    if old is None:
        yield
        return
    conjecture_engine.MAX_SHRINKING_SECONDS = seconds
    try:
        with with_reporter(lambda message: None):
            yield
    finally:
        conjecture_engine.MAX_SHRINKING_SECONDS = old


def _name(rerank_fn) -> str:
    return repr(rerank_fn) if hasattr(rerank_fn, "claims") else getattr(rerank_fn, "__qualname__", repr(rerank_fn))


def show_frame(name: str, frame: pd.DataFrame, max_rows: int = 40) -> str:
    dtypes = ", ".join(f"{column} {dtype}" for column, dtype in frame.dtypes.items())
    body = frame.to_string(max_rows=max_rows) if len(frame) else "(no rows)"
    return f"{name} ({dtypes}):\n" + "\n".join("  " + line for line in body.splitlines())


def frame_code(frame: pd.DataFrame) -> str:
    """Python that rebuilds ``frame`` (values and dtypes; the index is not kept)."""
    columns = ", ".join(f"{column!r}: pd.Series({frame[column].tolist()!r}, dtype={str(dtype)!r})"
                        for column, dtype in frame.dtypes.items())
    return f"pd.DataFrame({{{columns}}})"
