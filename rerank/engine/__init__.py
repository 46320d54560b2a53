"""The compiled engine: CSR arrays in, chosen items out. Imports numpy, scipy and numba only.

* :mod:`~rerank.engine.arrays`: :func:`rerank_arrays`, the boundary every path ends in;
* :mod:`~rerank.engine.kernel`: the one parallel kernel and Steck's greedy;
* :mod:`~rerank.engine.divergences`, :mod:`~rerank.engine.ties`: the formulas and the tie rule;
* :mod:`~rerank.engine.quota`, :mod:`~rerank.engine.feasibility`: quota mode;
* :mod:`~rerank.engine.pm2`: PM-2; :mod:`~rerank.engine.exact`: the certified exact solver.
"""

from rerank.engine.arrays import RerankResult, rerank_arrays

__all__ = ["RerankResult", "rerank_arrays"]
