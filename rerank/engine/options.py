"""``RerankOptions``: every setting of a reranking, frozen and validated once.

    options = RerankOptions(k=10, lam=0.5, normalize="minmax")
    result = rerank_lists(lists, categories, targets, options)

Building a ``RerankOptions`` checks every field (an invalid one cannot exist) and
:meth:`RerankOptions.validate` turns it into the :class:`KernelCodes` the compiled kernel takes;
they are computed once, at construction. Every entry point builds one and passes it on: the
frame API (``CalibratedReranker.fit`` stores it as ``options_``), :func:`rerank.rerank_arrays`,
``rerank apply`` / ``rerank gap`` (:func:`rerank.cli.options.options_from_args`), Spark (the
broadcast reranker carries it), ``rerank.gap`` and the simulator's policies.

Fields (docs/design.md §3, §4):

* ``k`` list length; ``lam`` λ in [0, 1] for every user, ``None`` when each call passes one
  value per user, or ``"auto"``: per user the smallest λ of :data:`AUTO_LAMBDAS` whose list
  has ``C ≤ max_miscalibration`` (else λ = 1; docs/design.md §9.5); ``alpha`` the smoothing α in
  (0, 1) of ``q̃ = (1-α) q + α p``;
* ``divergence`` ``"kl"``, ``"hellinger"`` or ``"chi2"``; ``rank_weights`` ``"uniform"``,
  ``"dcg"`` or at least ``k`` positive weights (kept as a tuple of the first ``k``);
* ``normalize`` ``"minmax"`` (the default everywhere, docs/design.md §8), ``"rank"`` or ``None``
  (scores as given), per user; ``safeguard`` return top-k when
  its objective is higher; ``order`` ``"greedy"`` (pick order) or ``"score"``;
* ``method`` ``"greedy"`` (Steck) or ``"pm2"`` (``pm2_theta``); ``min_share`` quota mode
  (``True``, or ρ in (0, 1]) on categories with ``p_g ≥ min_share_threshold``;
* ``solver`` ``"greedy"`` or ``"exact"`` (``time_limit`` seconds per user, enumeration up to
  ``max_enumerate`` subsets);
* ``refine`` ``None`` or ``"swap"`` (improving single swaps after the list is built, at most
  ``max_swaps`` per user, ``None``: no cap; not with PM-2; :mod:`rerank.engine.refine`).
"""

from __future__ import annotations

import dataclasses
import functools
import numbers
from dataclasses import dataclass
from typing import NamedTuple

import numpy as np

from rerank.engine.divergences import DIVERGENCE_CODES
from rerank.engine.kernel import METHOD_GREEDY, METHOD_PM2, METHOD_QUOTA
from rerank.engine.refine import DEFAULT_MAX_SWAPS, check_refine
from rerank.engine.scoring import NORMALIZE_CODES
from rerank.errors import InputError, InputTypeError
from rerank.params import (
    check_bool,
    check_choice,
    check_k,
    check_unit_interval,
    is_bool,
    show,
)

__all__ = ["AUTO_LAMBDAS", "MAX_ENUMERATE", "KernelCodes", "RerankOptions"]

ORDERS = ("greedy", "score")
METHODS = ("greedy", "pm2")
SOLVERS = ("greedy", "exact")
RANK_WEIGHT_NAMES = ("uniform", "dcg")
MAX_ENUMERATE = 200_000
#: ``lam="auto"``: the λ grid searched per user, smallest first (docs/design.md §9.5): steps of
#: 0.1, then finer towards 1, where the divergence falls fastest.
AUTO_LAMBDAS = (0.0, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.85, 0.9, 0.95, 0.98, 0.99, 1.0)


class KernelCodes(NamedTuple):
    """What the kernel reads of the options: integer codes and flags."""

    divergence: int
    normalize: int
    order_by_score: bool
    method: int  # METHOD_GREEDY, METHOD_QUOTA (min_share) or METHOD_PM2
    rho: float  # quota scale ρ; 0 when quota mode is off
    exact: bool
    refine: int  # REFINE_NONE or REFINE_SWAP (rerank.engine.refine)
    max_swaps: int  # the swap cap; -1: none


def check_rank_weights(spec, k: int) -> tuple[float, ...] | str:
    """``"uniform"`` / ``"dcg"`` (kept as the name: nothing allocated, whatever ``k``) or an
    array of at least ``k`` positive finite numbers (its first ``k``, as a tuple of floats)."""
    if isinstance(spec, str):
        return check_choice("rank_weights", spec, RANK_WEIGHT_NAMES)
    arr = np.asarray(spec)
    if arr.dtype.kind not in "fiu" or arr.ndim != 1:
        raise InputTypeError(f"rank_weights must be 'uniform', 'dcg' or a 1-d array of numbers; got {show(spec)}")
    if arr.size < k:
        raise InputError(f"rank_weights has {arr.size} values but k={k} positions need weights")
    arr = arr[:k].astype(np.float64)
    bad = np.flatnonzero(~(np.isfinite(arr) & (arr > 0)))
    if bad.size:
        raise InputError(f"rank_weights must be positive and finite; position {bad[0] + 1} is {show(arr[bad[0]])}")
    return tuple(arr.tolist())


def rank_weight_array(spec, k: int) -> np.ndarray:
    """``w_1..w_k``: ``"uniform"`` (all 1), ``"dcg"`` (``1/log2(r+1)``), or the first ``k`` of a
    checked sequence (docs/design.md §3, Steck eq. 2)."""
    if spec == "uniform":
        return np.ones(k, dtype=np.float64)
    if spec == "dcg":
        return 1.0 / np.log2(np.arange(2, k + 2, dtype=np.float64))
    return np.asarray(spec[:k], dtype=np.float64)


def check_min_share(min_share, threshold) -> float:
    """``min_share`` → ``ρ``: ``False``/``0`` off (0.0), ``True`` 1.0, a float in (0, 1]."""
    if min_share is False or min_share is None:
        rho = 0.0
    elif min_share is True:
        rho = 1.0
    elif isinstance(min_share, numbers.Real) and 0.0 < float(min_share) <= 1.0:
        rho = float(min_share)
    else:
        raise InputError(f"min_share must be False, True or a number in (0, 1], got {min_share!r}")
    if is_bool(threshold) or not isinstance(threshold, numbers.Real) or not 0.0 <= threshold <= 1.0:
        raise InputError(f"min_share_threshold must lie in [0, 1], got {threshold!r}")
    return rho


@dataclass(frozen=True)
class RerankOptions:
    """Every setting of a reranking (module docstring); checked when built."""

    k: int = 10
    lam: float | None = 0.5
    alpha: float = 0.01
    divergence: str = "kl"
    rank_weights: str | tuple[float, ...] = "uniform"
    normalize: str | None = "minmax"
    safeguard: bool = True
    order: str = "greedy"
    method: str = "greedy"
    pm2_theta: float = 0.5
    min_share: bool | float = False
    min_share_threshold: float = 0.0
    solver: str = "greedy"
    time_limit: float = 10.0
    max_enumerate: int = MAX_ENUMERATE
    refine: str | None = None
    max_swaps: int | None = DEFAULT_MAX_SWAPS
    max_miscalibration: float | None = None

    def __post_init__(self) -> None:
        k = check_k(self.k)
        set_field = functools.partial(object.__setattr__, self)
        set_field("k", k)
        if self.lam == "auto":
            budget = self.max_miscalibration
            if budget is None:
                raise InputError("lam='auto' needs max_miscalibration (the budget C ≤ τ each list must meet)")
            if is_bool(budget) or not isinstance(budget, numbers.Real) or not 0.0 <= float(budget) < float("inf"):
                raise InputError(f"max_miscalibration must be a finite number >= 0, got {budget!r}")
            set_field("max_miscalibration", float(budget))
        else:
            if self.max_miscalibration is not None:
                raise InputError("max_miscalibration is the budget of lam='auto'; set lam='auto' to use it")
            if self.lam is not None:
                set_field("lam", check_unit_interval("lam", self.lam))
        set_field("alpha", check_unit_interval("alpha", self.alpha, open_interval=True))
        check_choice("divergence", self.divergence, tuple(DIVERGENCE_CODES))
        check_choice("normalize", self.normalize, tuple(NORMALIZE_CODES))
        check_choice("order", self.order, ORDERS)
        set_field("rank_weights", check_rank_weights(self.rank_weights, k))
        set_field("safeguard", check_bool("safeguard", self.safeguard))
        self.__dict__["_codes"] = self._codes()

    def _codes(self) -> KernelCodes:
        check_choice("method", self.method, METHODS)
        check_unit_interval("pm2_theta", self.pm2_theta)
        rho = check_min_share(self.min_share, self.min_share_threshold)
        if rho > 0 and self.method == "pm2":
            raise InputError("min_share (quota mode) works with method='greedy', not 'pm2'")
        if self.solver == "exact" and self.lam == "auto":
            raise InputError("lam='auto' searches λ with the greedy; solver='exact' is not supported with it")
        if self.solver == "exact" and (rho > 0 or self.method == "pm2"):
            raise InputError("solver='exact' solves the calibration objective only: no min_share, no pm2")
        if self.solver not in SOLVERS:
            raise InputError(f"solver must be one of {SOLVERS}; got {self.solver!r}")
        limit = self.time_limit
        if is_bool(limit) or not isinstance(limit, numbers.Real) or not limit > 0:
            raise InputError(f"time_limit must be a number of seconds > 0, got {limit!r}")
        most = self.max_enumerate
        if is_bool(most) or not isinstance(most, numbers.Integral) or most < 0:
            raise InputError(f"max_enumerate must be a whole number >= 0, got {most!r}")
        first = rank_weight_array(self.rank_weights, min(self.k, 2 if isinstance(self.rank_weights, str) else self.k))
        if self.solver == "exact" and first.size and not np.all(first == first[0]):
            raise InputError("solver='exact' needs uniform rank weights (rank_weights='uniform')")
        method = METHOD_QUOTA if rho > 0 else (METHOD_PM2 if self.method == "pm2" else METHOD_GREEDY)
        refine, max_swaps = check_refine(self.refine, self.max_swaps, method == METHOD_PM2)
        return KernelCodes(
            DIVERGENCE_CODES[self.divergence], NORMALIZE_CODES[self.normalize], self.order == "score", method,
            rho, self.solver == "exact", refine, max_swaps,
        )

    def validate(self) -> KernelCodes:
        """The kernel codes of these options (computed once, when they were built)."""
        return self.__dict__["_codes"]

    def weights(self, k: int) -> np.ndarray:
        """The rank weights ``w_1..w_k`` of a list of ``k`` positions (``k ≤ self.k``)."""
        return rank_weight_array(self.rank_weights, k)

    def replace(self, **changes) -> RerankOptions:
        """A copy with some fields changed (checked again)."""
        return dataclasses.replace(self, **changes)

    def as_dict(self) -> dict:
        """The fields as a plain dict (e.g. for a JSON report)."""
        return {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}

