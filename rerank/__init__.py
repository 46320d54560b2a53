"""calibrated-rerank: calibrated recommendations (Steck, RecSys 2018) at production scale.

Public API: :class:`CalibratedReranker` (pandas frames), :func:`rerank_arrays` (CSR arrays) and
:func:`rerank_lists` (:class:`CandidateLists`), all configured by one :class:`RerankOptions` and
all running the one Numba kernel of :mod:`rerank.engine`. The layout and the data flow:
docs/design.md.

Names are imported on first use, so ``import rerank.engine`` (numpy, scipy, numba) does not
import pandas.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

__all__ = [
    "CalibratedReranker", "CandidateLists", "RerankOptions", "RerankReport", "RerankResult", "popularity_categories",
    "rerank_arrays", "rerank_lists",
]
__version__ = "0.1.0"

_HOMES = {
    "CalibratedReranker": "rerank.reranker",
    "RerankReport": "rerank.report",
    "RerankOptions": "rerank.engine.options",
    "RerankResult": "rerank.engine.arrays",
    "rerank_arrays": "rerank.engine.arrays",
    "rerank_lists": "rerank.engine.arrays",
    "CandidateLists": "rerank.engine.layout",
    "popularity_categories": "rerank.popularity",
}

if TYPE_CHECKING:
    from rerank.engine.arrays import RerankResult, rerank_arrays, rerank_lists
    from rerank.engine.layout import CandidateLists
    from rerank.engine.options import RerankOptions
    from rerank.popularity import popularity_categories
    from rerank.report import RerankReport
    from rerank.reranker import CalibratedReranker


def __getattr__(name: str):
    home = _HOMES.get(name)
    if home is None:
        raise AttributeError(f"module 'rerank' has no attribute {name!r}")
    value = getattr(importlib.import_module(home), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted([*__all__, "__version__"])
