"""Numba set-up shared by every compiled function of the package.

* Threading layer: unless the user chose one with ``NUMBA_THREADING_LAYER``, ask for a
  *thread-safe* layer (OpenMP or TBB) so the kernel can be called from several Python threads
  at once. If none is available numba falls back to ``workqueue``, which is not thread-safe;
  :func:`kernel_lock` then serialises calls instead of crashing.
* On-disk cache keyed on every source a function can inline (:mod:`rerank._cache`), in numba's
  usual place (``NUMBA_CACHE_DIR``, else ``__pycache__`` beside the source, else the user cache
  directory). When none is writable (a read-only install with no home directory) the function
  is compiled in memory instead, with one warning at the first compile (not at import); it
  never fails.
* No ``fastmath``: it would let LLVM assume there are no NaN/inf values.
"""

from __future__ import annotations

import contextlib
import os
import threading
import warnings

import numba
import numba.core.event

from rerank._cache import enable_keyed_cache

if "NUMBA_THREADING_LAYER" not in os.environ:
    numba.config.THREADING_LAYER = "threadsafe"

_WORKQUEUE_LOCK = threading.Lock()


_IN_MEMORY: set[int] = set()  # ids of the dispatchers compiled in memory (no cache place)
_NO_CACHE_WARNED = False
NO_CACHE_WARNING = (
    "numba has no writable cache folder here: compiling in memory, so every new process pays "
    "the compile. Set NUMBA_CACHE_DIR to a writable folder to keep compiled code across runs."
)


class _WarnOnFirstCompile(numba.core.event.Listener):
    """numba's compile event: the first time one of our in-memory dispatchers compiles, warn
    once. Warning at compile time, not at import, keeps a usage error or a ``--help`` on a
    read-only install free of it (issue 17, finding 16: 54 warning lines before a usage error)."""

    def on_start(self, event) -> None:
        global _NO_CACHE_WARNED
        dispatcher = (event.data or {}).get("dispatcher")
        if not _NO_CACHE_WARNED and id(dispatcher) in _IN_MEMORY:
            _NO_CACHE_WARNED = True
            warnings.warn(NO_CACHE_WARNING, RuntimeWarning, stacklevel=2)

    def on_end(self, event) -> None:
        pass


def compiled(**options):
    """``numba.njit`` with an on-disk cache keyed on every source the function can inline.

    The key (:mod:`rerank._cache`) hashes the function's file and every package module it
    imports, transitively, so an edit, a ``git pull`` or an upgrade of any of them recompiles
    instead of running stale machine code. When no cache place is writable (a read-only
    install without a writable home or ``NUMBA_CACHE_DIR``) the function is compiled in memory,
    with one warning per process, at the first compile of such a function. ``fastmath`` is
    refused on purpose (it breaks NaN/inf checks).
    """
    if options.get("fastmath"):
        raise ValueError("fastmath is not allowed in rerank kernels")
    if options.pop("cache", True) is not True:
        raise ValueError("rerank kernels always use the keyed cache (rerank._cache)")

    def decorate(func):
        dispatcher = numba.njit(**options)(func)
        if not enable_keyed_cache(dispatcher):
            if not _IN_MEMORY:
                numba.core.event.register("numba:compile", _WarnOnFirstCompile())
            _IN_MEMORY.add(id(dispatcher))
        return dispatcher

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
