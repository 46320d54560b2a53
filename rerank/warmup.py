"""Compile ahead of time: ``rerank warmup [--all]`` (docs/production.md).

A fresh environment (a new container, CI job or Spark executor) with an empty numba cache pays
the compile on its first call. :func:`warmup` runs tiny calls that compile — and write to the
on-disk cache (:mod:`rerank._cache`) — the code a job will use, so that later processes sharing
the cache location load machine code instead of compiling it. Run it where the cache lives:
in a container build (``RUN NUMBA_CACHE_DIR=/opt/numba-cache rerank warmup``) or once per Spark
executor before its first task.

* default: the default path — ``rerank_arrays`` / ``CalibratedReranker.fit`` and ``rerank`` on
  a data frame (greedy, KL, uniform weights, safeguard), grouped and interleaved frames;
* ``everything=True`` (``--all``): also each other list builder and solver the kernel compiles
  only when first asked for — quota mode, PM-2, the exact solver, the swap refinement, a shown
  prefix, explanations — the other score normalisations and divergences, and the top-n of the
  adapters.

Each step returns its name and seconds; :func:`cache_folder` says where the code went.
"""

from __future__ import annotations

import time
from collections.abc import Callable

import numpy as np
import pandas as pd
import scipy.sparse as sp

__all__ = ["STEPS_ALL", "STEPS_DEFAULT", "cache_folder", "warmup"]


def _tiny_arrays():
    """Two users, four items, three categories: enough to run every branch of a call."""
    categories = sp.csr_matrix(np.array([[1, 0, 0], [0, 1, 0], [.5, .5, 0], [0, 0, 1]], dtype=np.float64))
    indptr = np.array([0, 4, 8])
    items = np.array([0, 1, 2, 3, 3, 2, 1, 0])
    scores = np.array([.9, .8, .7, .1, .5, .5, .4, .3])
    targets = np.array([[.7, .3, 0], [.2, .2, .6]])
    return indptr, items, scores, categories, targets


def _arrays(**options) -> Callable[[], None]:
    def run() -> None:
        from rerank import rerank_arrays

        indptr, items, scores, categories, targets = _tiny_arrays()
        rerank_arrays(indptr, items, scores, categories, targets, 3, 0.5, **options)

    return run


def _frames() -> None:
    """fit + rerank on data frames, grouped and interleaved rows (the frame path's own kernels)."""
    from rerank import CalibratedReranker

    history = pd.DataFrame({"user_id": [0, 0, 1, 1, 2], "item_id": [0, 1, 2, 3, 1]})
    item_categories = pd.DataFrame({"item_id": [0, 1, 2, 2, 3], "category": ["a", "b", "a", "b", "c"]})
    users = np.repeat(np.arange(3), 4)
    candidates = pd.DataFrame({"user_id": users, "item_id": np.tile(np.arange(4), 3),
                               "score": np.linspace(1.0, 0.1, 12)})
    reranker = CalibratedReranker(k=2, lam=0.5).fit(history, item_categories)
    reranker.rerank(candidates)
    reranker.rerank(candidates.iloc[np.argsort(np.tile(np.arange(4), 3), kind="stable")])  # interleaved


def _top_n() -> None:
    from rerank.engine.topn import csr_top_n, top_n_dense

    scores = np.array([[.3, .1, .2], [.5, .4, .6]])
    top_n_dense(scores, 2)
    csr_top_n(sp.csr_matrix(scores), 2)


STEPS_DEFAULT: list[tuple[str, Callable[[], None]]] = [
    ("rerank_arrays (greedy, KL)", _arrays()),
    ("fit + rerank on data frames", _frames),
]
STEPS_ALL: list[tuple[str, Callable[[], None]]] = STEPS_DEFAULT + [
    ("quota mode (min_share)", _arrays(min_share=True)),
    ("PM-2", _arrays(method="pm2")),
    ("exact solver", _arrays(solver="exact")),
    ("refine='swap' (greedy, quota)", lambda: (_arrays(refine="swap")(), _arrays(refine="swap", min_share=True)())),
    ("normalize minmax / rank", lambda: (_arrays(normalize="minmax")(), _arrays(normalize="rank")())),
    ("divergences hellinger / chi2", lambda: (_arrays(divergence="hellinger")(), _arrays(divergence="chi2")())),
    ("a shown prefix (shown=)", _arrays(shown_indptr=np.array([0, 1, 1]), shown_items=np.array([0]))),
    ("explain=True", _arrays(explain=True)),
    ("top-n of the adapters", _top_n),
]


def cache_folder() -> str | None:
    """Where compiled code is cached (``None``: nowhere writable, compiled in memory)."""
    from rerank._cache import cache_location
    from rerank.engine.kernel import rerank_block

    return cache_location(rerank_block.py_func)


def warmup(everything: bool = False, progress: Callable[[str, float], None] | None = None) -> list[tuple[str, float]]:
    """Run the warm-up steps (module docstring); returns ``(step, seconds)`` for each."""
    done = []
    for name, step in STEPS_ALL if everything else STEPS_DEFAULT:
        start = time.perf_counter()
        step()
        done.append((name, time.perf_counter() - start))
        if progress is not None:
            progress(*done[-1])
    return done
