"""Numba set-up shared by every compiled function of the package.

* Threading layer: unless the user chose one with ``NUMBA_THREADING_LAYER``, ask for a
  *thread-safe* layer (OpenMP or TBB) so the kernel can be called from several Python threads
  at once. If none is available numba falls back to ``workqueue``, which is not thread-safe;
  :func:`kernel_lock` then serialises calls instead of crashing.
* On-disk cache: ``cache=True`` is used when numba finds a writable cache location (next to
  the source, or ``NUMBA_CACHE_DIR``, or the user cache directory). When none is writable
  (a read-only install with no home directory) the function is compiled in memory instead;
  it never fails.
* No ``fastmath``: it would let LLVM assume there are no NaN/inf values.
"""

from __future__ import annotations

import contextlib
import os
import threading
import warnings

import numba

if "NUMBA_THREADING_LAYER" not in os.environ:
    numba.config.THREADING_LAYER = "threadsafe"

_WORKQUEUE_LOCK = threading.Lock()


def compiled(**options):
    """``numba.njit`` with ``cache=True`` when a cache location is usable, else without.

    ``fastmath`` is refused on purpose (it breaks NaN/inf checks).
    """
    if options.get("fastmath"):
        raise ValueError("fastmath is not allowed in rerank kernels")

    def decorate(func):
        try:
            return numba.njit(cache=True, **options)(func)
        except RuntimeError as exc:  # "cannot cache function ...: no locator available"
            warnings.warn(
                f"numba cannot cache {func.__name__} ({exc}); compiling in memory instead. "
                "Set NUMBA_CACHE_DIR to a writable folder to keep compiled code across runs.",
                RuntimeWarning,
                stacklevel=2,
            )
            return numba.njit(cache=False, **options)(func)

    return decorate


@contextlib.contextmanager
def kernel_lock():
    """Serialise parallel kernel calls only when the active layer is not thread-safe."""
    try:
        layer = numba.threading_layer()
    except ValueError:  # no parallel function has run yet: be safe for the first call
        layer = None
    if layer in (None, "workqueue"):
        with _WORKQUEUE_LOCK:
            yield
    else:
        yield


@contextlib.contextmanager
def num_threads(n: int | None):
    """Run a block with ``n`` numba threads (``None``: leave the current setting)."""
    if n is None:
        yield
        return
    n = int(n)
    if not 1 <= n <= numba.config.NUMBA_NUM_THREADS:
        raise ValueError(
            f"n_threads must be between 1 and NUMBA_NUM_THREADS={numba.config.NUMBA_NUM_THREADS}, "
            f"got {n}"
        )
    previous = numba.get_num_threads()
    numba.set_num_threads(n)
    try:
        yield
    finally:
        numba.set_num_threads(previous)
