"""calibrated-rerank: calibrated recommendations (Steck, RecSys 2018) at production scale.

Public API: :class:`CalibratedReranker` (pandas frames) and :func:`rerank_arrays` (CSR
arrays); both run the one Numba kernel in :mod:`rerank.engine.kernel`.
"""

from rerank.engine.arrays import RerankResult, rerank_arrays
from rerank.reranker import CalibratedReranker, RerankReport

__all__ = ["CalibratedReranker", "RerankReport", "RerankResult", "rerank_arrays"]
__version__ = "0.1.0"
