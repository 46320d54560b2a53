"""The compiled engine: candidate lists in, chosen items out. Imports numpy, scipy and numba
only — never pandas (``tests/engine/test_engine_imports.py`` checks it).

* :mod:`~rerank.engine.options` — :class:`RerankOptions`, checked once, and its kernel codes;
* :mod:`~rerank.engine.layout` — :class:`CandidateLists` (the candidate currency) and the named
  tuples the compiled code passes around;
* :mod:`~rerank.engine.arrays` — :func:`rerank_arrays`, :func:`rerank_lists` and :func:`solve`,
  the boundary every path ends in;
* :mod:`~rerank.engine.kernel` — the one parallel kernel; the list builders
  :mod:`~rerank.engine.greedy` (Steck), :mod:`~rerank.engine.quota` (quotas, with
  :mod:`~rerank.engine.feasibility`) and :mod:`~rerank.engine.pm2`;
  :mod:`~rerank.engine.scoring`, :mod:`~rerank.engine.divergences` and
  :mod:`~rerank.engine.ties` the formulas and the tie rule they share;
* :mod:`~rerank.engine.exact` — the certified exact solver (returns sets; ``arrays`` orders them);
* :mod:`~rerank.engine.topn` — the one top-n (dense and sparse score blocks) adapters and the
  simulator take their candidates with.
"""

from rerank.engine.arrays import Problem, RerankResult, rerank_arrays, rerank_lists, solve
from rerank.engine.layout import CandidateLists, CategoryCSR
from rerank.engine.options import KernelCodes, RerankOptions

__all__ = [
    "CandidateLists", "CategoryCSR", "KernelCodes", "Problem", "RerankOptions", "RerankResult", "rerank_arrays",
    "rerank_lists", "solve",
]
