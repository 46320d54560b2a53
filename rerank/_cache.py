"""A compiled-code cache key that covers every source a compiled function can inline.

Numba stamps each on-disk cache entry with a hash of *the one file* that defines the function.
A kernel that calls (and so inlines) functions from other files keeps its stale machine code
when only one of those files changes: after a ``git pull``, a branch switch or an edit on an
editable install it would silently run the old code.

Here the stamp of a function defined in file ``F`` is instead

    sha256( numba version, package version, [(m, sha256(source(m))) for m in closure(F)] )

where ``closure(F)`` is ``F`` plus every module of this package that ``F`` imports, followed
transitively (read from the import statements with :mod:`ast`, so nothing is executed). Any
change to any of those files, whatever its mtime, changes the stamp; numba then finds the index
"not fresh", recompiles and overwrites it. The cache *location* is numba's usual one, in
order: ``NUMBA_CACHE_DIR`` if set, else ``__pycache__`` beside the source if writable, else
the user-wide cache folder; :func:`cache_location` returns ``None`` when none is writable and
:mod:`rerank._numba` then compiles in memory.

Numba offers no public hook for the stamp, so this subclasses its cache classes
(``numba.core.caching``); ``tests`` check the behaviour end to end on a copy of the package.
"""

from __future__ import annotations

import ast
import functools
import hashlib
import importlib.util
import os
import sys
from pathlib import Path

import numba
from numba.core import caching

PACKAGE = "rerank"


@functools.lru_cache(maxsize=1)
def _package_version() -> str:
    try:
        from importlib.metadata import version

        return version("calibrated-rerank")
    except Exception:  # not installed (a source checkout on sys.path): the sources still key it
        return "unknown"


def _module_file(name: str) -> str | None:
    """Source file of package module ``name``, found without importing anything; ``None`` when
    ``name`` is not a module file of this package (e.g. a function imported by name)."""
    parts = name.split(".")
    for cut in range(len(parts) - 1, 0, -1):  # the longest already-imported package prefix
        package = sys.modules.get(".".join(parts[:cut]))
        if package is None or not hasattr(package, "__path__"):
            continue
        for base in package.__path__:
            for candidate in (Path(base, *parts[cut:]).with_suffix(".py"), Path(base, *parts[cut:], "__init__.py")):
                if candidate.is_file():
                    return str(candidate)
        return None
    return None


@functools.cache
def _imported_names(path: str, module: str) -> frozenset[str]:
    """Absolute names of the package modules that ``path`` (module ``module``) imports, at any
    level of the file (``import x``, ``from x import y``: both ``x`` and ``x.y``)."""
    tree = ast.parse(Path(path).read_bytes(), filename=path)
    package = module if path.endswith("__init__.py") else module.rpartition(".")[0]
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                base = importlib.util.resolve_name("." * node.level + base, package)
            names.add(base)
            names.update(f"{base}.{alias.name}" for alias in node.names)
    return frozenset(n for n in names if n == PACKAGE or n.startswith(PACKAGE + "."))


def source_closure(path: str, module: str) -> list[str]:
    """``path`` (module ``module``) and every package source it imports, transitively (sorted)."""
    seen: set[str] = set()
    todo = [(os.path.abspath(path), module)]
    while todo:
        current, name = todo.pop()
        if current in seen:
            continue
        seen.add(current)
        for imported in _imported_names(current, name):
            found = _module_file(imported)
            if found is not None:
                todo.append((os.path.abspath(found), imported))
    return sorted(seen)


@functools.cache
def source_key(path: str, module: str) -> str:
    """The stamp of every function defined in ``path`` (hex sha256, formula in the module doc)."""
    digest = hashlib.sha256()
    digest.update(f"numba {numba.__version__}\0{PACKAGE} {_package_version()}\0".encode())
    for source in source_closure(path, module):
        digest.update(Path(source).name.encode() + b"\0" + hashlib.sha256(Path(source).read_bytes()).digest())
    return digest.hexdigest()


def _numba_class(name: str):
    """``numba.core.caching.<name>``; numba < 0.61 spelled these with a leading underscore."""
    return getattr(caching, name, None) or getattr(caching, "_" + name)


# numba's own placements, in numba's own order of preference
_PLACEMENTS = tuple(
    _numba_class(name) for name in ("UserProvidedCacheLocator", "InTreeCacheLocator", "UserWideCacheLocator")
)


class KeyedLocator(caching._CacheLocator):
    """Numba's usual cache place, with the stamp of :func:`source_key` instead of one file's."""

    def __init__(self, inner, stamp: str):
        self._inner = inner
        self._stamp = stamp
        self._py_file = getattr(inner, "_py_file", None)  # numba's warnings name the source file

    def ensure_cache_path(self):
        self._inner.ensure_cache_path()

    def get_cache_path(self):
        return self._inner.get_cache_path()

    def get_source_stamp(self):
        return self._stamp

    def get_disambiguator(self):
        return self._inner.get_disambiguator()

    @classmethod
    def from_function(cls, py_func, py_file):
        for placement in _PLACEMENTS:
            inner = placement.from_function(py_func, py_file)
            if inner is not None:
                return cls(inner, source_key(py_file, py_func.__module__))
        return None


class _KeyedCacheImpl(_numba_class("CompileResultCacheImpl")):
    _locator_classes = [KeyedLocator]


class KeyedFunctionCache(caching.FunctionCache):
    """numba's per-function cache, placed and stamped by :class:`KeyedLocator`."""

    _impl_class = _KeyedCacheImpl


def cache_location(func) -> str | None:
    """Where ``func``'s compiled code would be cached, or ``None`` if no place is writable."""
    locator = KeyedLocator.from_function(func, os.path.abspath(func.__code__.co_filename))
    return None if locator is None else locator.get_cache_path()


def enable_keyed_cache(dispatcher) -> bool:
    """Give a numba dispatcher the keyed on-disk cache; ``False`` when no place is writable.

    Same effect as ``njit(cache=True)`` (``Dispatcher.enable_caching``), with the keyed stamp.
    """
    if cache_location(dispatcher.py_func) is None:
        return False
    dispatcher._cache = KeyedFunctionCache(dispatcher.py_func)
    return True
