"""What each property of the battery draws and how it calls the reranker under test.

* :class:`Case` — one drawn example: the three frames, ``k``, ``λ`` and what a guarantee adds
  (the users kept, the row permutations, the affine map);
* :class:`Subject` — the reranker under test with what it declares, and the one way it is
  called (on deep copies, so a reranker that edits its arguments cannot change the case);
* :class:`Evaluation` — a case put to the reranker, shared by the guarantees checked on it;
* :class:`Violation` — a guarantee that does not hold on a case: the message and the frames
  that show it;
* :func:`cases` — the strategy every property starts from.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field

import pandas as pd
from hypothesis import reject
from hypothesis import strategies as st

from rerank.testing import reference as ref
from rerank.testing.declare import Objective, Quota
from rerank.testing.lists import InputView, OutputView, id_key
from rerank.testing.strategies import RerankInputs, lams, rerank_inputs

OUTPUT_COLUMNS = ("user_id", "item_id")


@dataclass
class Case:
    """One example: ``inputs`` (history, item_categories, candidates), ``k``, ``lam`` and the
    guarantee's ``extra`` draws."""

    inputs: RerankInputs
    k: int
    lam: float
    extra: dict = field(default_factory=dict)


class Violation(AssertionError):
    """A guarantee fails on a case: ``message`` says how, ``frames`` show it."""

    def __init__(self, message: str, frames: dict | None = None):
        super().__init__(message)
        self.message = message
        self.frames = frames or {}


@dataclass
class Subject:
    """The reranker under test and what it declares."""

    rerank_fn: object
    k: int
    objective: Objective
    quota: Quota | None
    input_options: dict

    def call(self, inputs: RerankInputs, k: int, lam: float):
        """``rerank_fn`` on deep copies of the frames (whatever it returns or raises)."""
        history, item_categories, candidates = (frame.copy(deep=True) for frame in inputs)
        return self.quietly(history, item_categories, candidates, k=k, lam=lam)

    def quietly(self, *frames, k: int, lam: float):
        """``rerank_fn`` with its warnings silenced: a warning breaks no guarantee, and the
        battery's hundreds of calls (cold users on purpose, extreme scores) would bury the
        report under them (docs/testing.md)."""
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return self.rerank_fn(*frames, k=k, lam=lam)

    def output(self, inputs: RerankInputs, k: int, lam: float) -> pd.DataFrame:
        """The output frame of another call (a second one, or on changed inputs); the example is
        rejected when ``rerank_fn`` raises or returns no frame with ``user_id`` and ``item_id``
        (the guarantee ``no-error`` reports that)."""
        try:
            out = self.call(inputs, k, lam)
        except Exception:
            reject()
        if not is_output_frame(out):
            reject()
        return out


def is_output_frame(out) -> bool:
    return isinstance(out, pd.DataFrame) and all(c in out.columns for c in OUTPUT_COLUMNS)


@st.composite
def cases(draw, subject: Subject, *, lam: float | st.SearchStrategy[float] | None = None, most_candidates=None,
          least_candidates=None, least_k: int = 1, **overrides) -> Case:
    """``k`` in ``least_k..subject.k`` (often the largest), inputs with ``least_candidates(k)`` (default
    1) to ``most_candidates(k)`` candidates per user (default ``2k + 2``, so that lists are chosen
    from about twice their length as often as not; the subject's ``input_options`` may lower it)
    with the subject's ``input_options`` and then the guarantee's ``overrides``, and ``λ`` (a
    value, a strategy, or drawn by :func:`~rerank.testing.strategies.lams` when ``None``)."""
    least_k = min(least_k, subject.k)
    k = draw(st.integers(least_k, subject.k) | st.just(subject.k), label="k")  # shrinks towards the least
    most = (most_candidates or (lambda k: 2 * k + 2))(k)
    options = {**subject.input_options, **overrides}
    options["max_candidates"] = min(options.get("max_candidates", most), most)
    if least_candidates is not None:
        options["min_candidates"] = min(max(options.get("min_candidates", 1), least_candidates(k)),
                                        options["max_candidates"])
    inputs = draw(rerank_inputs(**options), label="inputs")
    if lam is None:
        lam = lams()
    return Case(inputs, k, draw(lam, label="lam") if isinstance(lam, st.SearchStrategy) else lam)


# --------------------------------------------------------------------------- the reference's view of a case
@dataclass
class Targets:
    """The reference targets of a case's frames: ``shares`` (item key → ``{category: p(g|i)}``),
    ``categories``, ``targets`` (warm user key → ``p``) and the population target."""

    shares: dict
    categories: list
    targets: dict
    population: list

    @classmethod
    def of(cls, inputs: RerankInputs) -> Targets:
        cats = inputs.item_categories
        pairs = zip(cats["item_id"].tolist(), cats["category"].tolist(), strict=True)
        shares, categories = ref.item_shares((id_key(i), id_key(g), 1.0) for i, g in pairs)
        hist = inputs.history
        pairs = zip(hist["user_id"].tolist(), hist["item_id"].tolist(), strict=True)
        rows = ((id_key(u), id_key(i), 1.0) for u, i in pairs)
        targets, population = ref.user_targets(rows, shares, categories)
        return cls(shares, categories, targets, population)

    def target(self, user) -> list:
        return self.targets.get(user, self.population)

    def local(self, items) -> list[dict]:
        """``item_cats`` by local position, as the reference takes them (category indices)."""
        index = {g: n for n, g in enumerate(self.categories)}
        return [{index[g]: a for g, a in self.shares.get(i, {}).items()} for i in items]

    def label(self, g: int):
        return self.categories[g]


class Evaluation:
    """One case put to the reranker once (more calls on demand), shared by the guarantees
    checked on it: ``given`` (the frames passed to the first call, to see whether it changed
    them), ``out`` or ``error``, and the views and reference targets, computed once."""

    def __init__(self, subject: Subject, case: Case):
        self.subject, self.case = subject, case
        self.given = RerankInputs(*(frame.copy(deep=True) for frame in case.inputs))
        self.error: Exception | None = None
        self.out = None
        try:
            self.out = subject.quietly(*self.given, k=case.k, lam=case.lam)
        except Exception as exc:
            self.error = exc
        self._cache: dict = {}

    def output(self) -> pd.DataFrame:
        """The output frame; the example is rejected when there is none (``no-error`` reports it)."""
        if self.error is not None or not is_output_frame(self.out):
            reject()
        return self.out

    def _cached(self, key, make):
        if key not in self._cache:
            self._cache[key] = make()
        return self._cache[key]

    @property
    def inputs(self) -> InputView:
        """The candidates per user."""
        return self._cached("inputs", lambda: InputView.of(self.case.inputs.candidates))

    @property
    def lists(self) -> OutputView:
        """The output per user."""
        return self._cached("lists", lambda: OutputView.of(self.output()))

    @property
    def targets(self) -> Targets:
        """The reference targets of the case's history and item categories."""
        return self._cached("targets", lambda: Targets.of(self.case.inputs))
