"""Which Python runs Spark's workers, and a check that it can run ``rerank`` (docs/spark.md).

Spark starts its Python workers with ``PYSPARK_PYTHON`` (read when the ``SparkContext`` is
created), or ``python3`` from the ``PATH`` when it is unset — often an interpreter without this
package, so the first task would fail deep inside a worker with a long traceback.

* :func:`use_driver_python` — on a **local** master (``local``, ``local[N]``, ``local[*]``,
  ``local-cluster``: driver and workers on one machine) with neither ``PYSPARK_PYTHON`` nor
  ``spark.pyspark.python`` set, the workers run the driver's own interpreter
  (``sys.executable``), so the README example works as typed in any virtual environment.
  Anything set explicitly is left alone, and so is every non-local master.
* :func:`check_workers` — before the first job of a ``SparkContext`` (once per interpreter
  path), a one-task probe job imports ``rerank``, pandas, pyarrow and numba in a worker. If
  that fails, or the worker cannot start at all, :class:`SparkWorkerError` says so in one line
  naming the interpreter and ``PYSPARK_PYTHON``.
"""

from __future__ import annotations

import os
import sys

__all__ = ["SparkWorkerError", "check_workers", "use_driver_python"]


class SparkWorkerError(RuntimeError):
    """Spark's Python workers cannot run ``rerank`` (message: one line, naming ``PYSPARK_PYTHON``)."""


_CHECKED: set[tuple[str, str]] = set()
PROBED_MODULES = ("numba", "pandas", "pyarrow", "rerank.reranker")  # what rerank_spark's workers run


def use_driver_python(context) -> bool:
    """Make the workers of a local master run ``sys.executable`` when no interpreter was chosen
    (module docstring); returns whether it did."""
    if not str(context.master).startswith("local"):
        return False
    if os.environ.get("PYSPARK_PYTHON") or context.getConf().get("spark.pyspark.python"):
        return False
    context.pythonExec = sys.executable  # read by every Python function created from now on
    return True


def _worker_probe():
    """A function for ``mapPartitions`` that reports whether a worker can import what
    ``rerank_spark`` runs. It is built inside this function, so Spark ships it by value (its
    code, not a reference to this module, which the worker may not have)."""

    modules = PROBED_MODULES  # a closure variable: shipped with the function's code

    def probe(_rows):
        import importlib
        import sys as worker_sys

        try:
            # by name: what the *worker* can import, not a dependency of this module
            for name in modules:
                importlib.import_module(name)
        except Exception as exc:  # report any failure to the driver as text
            yield f"{type(exc).__name__}: {exc} (worker Python {worker_sys.executable})"
            return
        yield ""

    return probe


def _describe(context) -> str:
    chosen = os.environ.get("PYSPARK_PYTHON")
    source = f"PYSPARK_PYTHON={chosen}" if chosen else "PYSPARK_PYTHON is unset"
    return f"Spark's Python workers run '{context.pythonExec}' ({source})"


def check_workers(context) -> None:
    """Raise :class:`SparkWorkerError` (one line) unless a worker can import ``rerank`` and its
    dependencies; runs one tiny job the first time per context and interpreter."""
    key = (str(context.applicationId), str(context.pythonExec))
    if key in _CHECKED:
        return
    hint = ("set PYSPARK_PYTHON (before the SparkSession starts) to a Python with calibrated-rerank installed, "
            "e.g. the driver's: PYSPARK_PYTHON=" + sys.executable + " (docs/spark.md)")
    try:
        answers = context.parallelize([0], 1).mapPartitions(_worker_probe()).collect()
    except Exception as exc:  # the worker did not start (missing interpreter, no pyspark there, ...)
        lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
        errors = [line for line in lines if "rror" in line]
        cause = errors[-1] if errors else (lines[-1] if lines else type(exc).__name__)
        raise SparkWorkerError(f"{_describe(context)}, which failed to start: {cause[:300]}; {hint}") from None
    failure = next((answer for answer in answers if answer), "")
    if failure:
        raise SparkWorkerError(f"{_describe(context)}, which cannot import rerank: {failure}; {hint}")
    _CHECKED.add(key)
