"""What a reranker declares to the battery: its objective, its quotas, the guarantees it claims.

The battery (:func:`rerank.testing.check_reranker`) cannot know how a reranker scores a list,
so the objective-based guarantees use the one the reranker *declares* (docs/testing.md):

    F(L) = (1-λ) Σ_{i∈L} s̃_i  -  λ C(p(·|u), q(·|L))

with ``s̃`` the user's input scores under the declared normalisation (``None``: as given;
``"minmax"``: ``(s - min) / (max - min)``, all 0 when constant; ``"rank"``: ``(n - r)/(n - 1)``),
``p(·|u)`` the target of docs/design.md §3 computed by :mod:`rerank.testing.reference` from the
history and item categories (cold users get the mean of the warm users' targets), ``q(·|L)``
the rank-weighted category distribution of the list and ``C`` the declared divergence.
:func:`from_reranker` declares :class:`rerank.CalibratedReranker`'s from its parameters.
"""

from __future__ import annotations

import numbers
from dataclasses import dataclass

NORMALIZATIONS = (None, "minmax", "rank")
DIVERGENCES = ("kl", "hellinger", "chi2")

#: Guarantees every reranker is held to unless told otherwise.
GENERAL = (
    "no-error", "subset", "length", "no-duplicates", "ids-unchanged", "scores-unchanged", "ranks",
    "inputs-unchanged", "deterministic", "lam0-topk", "not-below-topk", "user-independence", "row-order",
)
#: Guarantees that hold only for what a reranker declares (score normalisation, quotas).
DECLARED = ("score-affine", "quota")
NAMES = GENERAL + DECLARED


@dataclass(frozen=True)
class Objective:
    """The objective the battery scores lists with: ``normalize`` (``None``, ``"minmax"`` or
    ``"rank"``), ``divergence`` (``"kl"``, ``"hellinger"``, ``"chi2"``), the smoothing ``alpha``
    and ``rank_weights`` (``"uniform"``, ``"dcg"`` or a tuple of at least k weights)."""

    normalize: str | None = None
    divergence: str = "kl"
    alpha: float = 0.01
    rank_weights: str | tuple = "uniform"

    def __post_init__(self):
        if self.normalize not in NORMALIZATIONS:
            raise ValueError(f"normalize must be one of {NORMALIZATIONS}; got {self.normalize!r}")
        if self.divergence not in DIVERGENCES:
            raise ValueError(f"divergence must be one of {DIVERGENCES}; got {self.divergence!r}")
        if not (isinstance(self.alpha, numbers.Real) and 0 < self.alpha < 1):
            raise ValueError(f"alpha must lie in (0, 1); got {self.alpha!r}")
        if not isinstance(self.rank_weights, str):
            object.__setattr__(self, "rank_weights", tuple(float(w) for w in self.rank_weights))
        elif self.rank_weights not in ("uniform", "dcg"):
            raise ValueError(f"rank_weights must be 'uniform', 'dcg' or weights; got {self.rank_weights!r}")

    def describe(self) -> str:
        scores = "scores as given" if self.normalize is None else f"scores {self.normalize}-normalised per user"
        weights = self.rank_weights if isinstance(self.rank_weights, str) else "given"
        return f"{scores}, {self.divergence} (α = {self.alpha:g}), {weights} rank weights"


@dataclass(frozen=True)
class Quota:
    """Quota mode (docs/design.md §4.3): each category with ``p_g ≥ threshold`` has the quota
    ``r_g = ⌊ρ k p_g⌋`` of list items carrying it, and a list must meet as many quota units as
    any list of ``min(k, n)`` candidates can."""

    rho: float = 1.0
    threshold: float = 0.0

    def __post_init__(self):
        if not (isinstance(self.rho, numbers.Real) and 0 < self.rho <= 1):
            raise ValueError(f"rho must lie in (0, 1]; got {self.rho!r}")
        if not (isinstance(self.threshold, numbers.Real) and 0 <= self.threshold <= 1):
            raise ValueError(f"threshold must lie in [0, 1]; got {self.threshold!r}")


class AdaptedReranker:
    """``rerank_fn(history, item_categories, candidates, *, k, lam)`` for a reranker class with
    scikit-learn's shape (``cls(k=, lam=, **params).fit(history, item_categories).rerank(candidates)``),
    carrying what it declares: ``objective``, ``quota`` and the guarantees it ``claims``."""

    def __init__(self, reranker_class, params: dict, objective: Objective, quota: Quota | None, claims):
        self.reranker_class = reranker_class
        self.params = dict(params)
        self.objective = objective
        self.quota = quota
        self.claims = frozenset(claims)

    def __call__(self, history, item_categories, candidates, *, k, lam):
        reranker = self.reranker_class(k=k, lam=lam, **self.params)
        return reranker.fit(history, item_categories).rerank(candidates)

    def __repr__(self) -> str:
        shown = "".join(f", {name}={value!r}" for name, value in self.params.items())
        return f"from_reranker({self.reranker_class.__name__}{shown})"


def from_reranker(reranker_class=None, /, **params) -> AdaptedReranker:
    """Adapt :class:`rerank.CalibratedReranker` (or a subclass; the default) with ``params`` to
    the battery: ``k`` and ``lam`` come with each call, the rest is fixed here and checked now.

    It declares the objective of its options (normalisation, divergence, α, rank weights), the
    quotas of ``min_share``, and claims the guarantees its settings keep (docs/testing.md):
    every general one, except ``lam0-topk`` and ``not-below-topk`` in quota mode (the quotas come
    first), ``not-below-topk`` without the safeguard (and without ``refine``), with PM-2, or with non-uniform rank
    weights re-sorted by score; ``score-affine`` with ``normalize="minmax"`` or ``"rank"``;
    ``quota`` with ``min_share``.
    """
    if reranker_class is None:
        from rerank.reranker import CalibratedReranker

        reranker_class = CalibratedReranker
    fixed = [name for name in ("k", "lam") if name in params]
    if fixed:
        raise TypeError(f"from_reranker: {fixed} are set by the battery on each call; do not pass them")
    if params.get("half_life") is not None:
        raise ValueError("from_reranker: half_life needs history timestamps, which the battery's histories do not have")
    options = reranker_class(k=1, lam=0.0, **params).build_options()
    rho = options.validate().rho
    normalize = None if options.normalize in (None, "none") else options.normalize
    rank_weights = params.get("rank_weights", "uniform")
    if not isinstance(rank_weights, str):
        rank_weights = tuple(float(w) for w in rank_weights)
    objective = Objective(normalize, options.divergence, options.alpha, rank_weights)
    quota = Quota(rho, options.min_share_threshold) if rho > 0 else None
    claims = set(GENERAL)
    if quota is not None:
        claims -= {"lam0-topk", "not-below-topk"}
        claims.add("quota")
    resorted = options.order == "score" and rank_weights != "uniform"
    # refine="swap" starts from the better of the greedy and top-k whatever the safeguard
    if not (options.safeguard or options.refine) or options.method != "greedy" or resorted:
        claims.discard("not-below-topk")
    if normalize in ("minmax", "rank"):
        claims.add("score-affine")
    return AdaptedReranker(reranker_class, params, objective, quota, claims)
