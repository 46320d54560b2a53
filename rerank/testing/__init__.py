"""``rerank.testing``: property-based testing of calibration guarantees, for any reranker.

* :func:`check_reranker` — the battery: every guarantee of docs/testing.md as a hypothesis
  property, against any ``rerank_fn(history, item_categories, candidates, *, k, lam)``;
* :func:`from_reranker` — adapts :class:`rerank.CalibratedReranker` (with its settings) and
  declares its objective, quotas and claimed guarantees; :class:`Objective`, :class:`Quota` —
  what any other reranker declares;
* :mod:`rerank.testing.strategies` — hypothesis strategies for valid input frames and lists;
* :mod:`rerank.testing.reference` — the slow, obviously correct pure-Python reference
  (greedy, objective, quotas, PM-2, targets, metrics), which needs nothing but Python.

Needs ``hypothesis`` (``pip install 'calibrated-rerank[testing]'``) except for
:mod:`~rerank.testing.reference` and :mod:`~rerank.testing.declare`: names are imported on
first use, so ``import rerank.testing.reference`` does not import hypothesis.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

__all__ = ["GUARANTEES", "BatteryResult", "Objective", "Quota", "check_reranker", "from_reranker"]

_HOMES = {
    "check_reranker": "rerank.testing.battery",
    "BatteryResult": "rerank.testing.battery",
    "GUARANTEES": "rerank.testing.guarantees",
    "from_reranker": "rerank.testing.declare",
    "Objective": "rerank.testing.declare",
    "Quota": "rerank.testing.declare",
}

if TYPE_CHECKING:
    from rerank.testing.battery import BatteryResult, check_reranker
    from rerank.testing.declare import Objective, Quota, from_reranker
    from rerank.testing.guarantees import GUARANTEES


def __getattr__(name: str):
    home = _HOMES.get(name)
    if home is None:
        raise AttributeError(f"module 'rerank.testing' has no attribute {name!r}")
    try:
        module = importlib.import_module(home)
    except ModuleNotFoundError as exc:
        if exc.name != "hypothesis":
            raise
        raise ModuleNotFoundError(
            f"rerank.testing.{name} needs hypothesis: pip install 'calibrated-rerank[testing]'", name="hypothesis"
        ) from exc
    value = getattr(module, name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(__all__)
