"""Parameter and array checks, numpy only (the engine's boundary uses them; frames use :mod:`rerank.schemas`).

Every failure is an :class:`~rerank.errors.InputError` (a ``ValueError``) or an
:class:`~rerank.errors.InputTypeError` (a ``TypeError`` *and* an ``InputError``) whose message
names the parameter at fault, so the same bad value gives the same one-line error from every
entry point (frame API, arrays, CLI, Spark, simulator).
"""

from __future__ import annotations

import numbers
from collections.abc import Hashable

import numpy as np

from rerank.errors import InputError, InputTypeError

__all__ = [
    "check_bool", "check_choice", "check_finite", "check_k", "check_lam_array", "check_n_threads", "check_positive",
    "check_real", "check_unit_interval", "check_whole", "float_array", "int_array", "is_bool", "show",
]


def show(value, width: int = 60) -> str:
    """``repr`` of a value for an error message: numpy scalars as plain Python values, long
    reprs cut to ``width`` characters."""
    if isinstance(value, np.generic):
        value = value.item()
    text = repr(value)
    return text if len(text) <= width else text[: width - 3] + "..."


def is_bool(value) -> bool:
    """A Python or numpy boolean (refused where a number is expected)."""
    return isinstance(value, bool | np.bool_)


INT64_MAX = 2**63 - 1


def check_whole(name: str, value, minimum: int = 1) -> int:
    """A whole number in [``minimum``, 2**63 - 1] (booleans and floats refused; every count ends
    in an int64, so a larger one is an input error, not an ``OverflowError``)."""
    if is_bool(value) or not isinstance(value, numbers.Integral):
        raise InputTypeError(f"{name} must be a whole number >= {minimum}, got {show(value)}")
    if value < minimum:
        raise InputError(f"{name} must be >= {minimum}, got {value}")
    if value > INT64_MAX:
        raise InputError(f"{name} must be < 2**63 (it is stored as a 64-bit integer), got {value}")
    return int(value)


def check_k(k) -> int:
    """``k`` is a whole number ≥ 1."""
    return check_whole("k", k)


def check_real(name: str, value) -> float:
    """A real number (not a bool, not a string)."""
    if is_bool(value) or not isinstance(value, numbers.Real):
        raise InputTypeError(f"{name} must be a number, got {show(value)}")
    return float(value)


def check_unit_interval(name: str, value, *, open_interval: bool = False) -> float:
    """A real number in [0, 1] (or (0, 1) when ``open_interval``)."""
    value = check_real(name, value)
    if open_interval:
        if not 0.0 < value < 1.0:
            raise InputError(f"{name} must lie in (0, 1), got {value}")
    elif not 0.0 <= value <= 1.0:
        raise InputError(f"{name} must lie in [0, 1], got {value}")
    return value


def check_positive(name: str, value, *, allow_none: bool = True) -> float | None:
    """``None`` (when allowed) or a real number > 0 (``inf`` allowed)."""
    if value is None and allow_none:
        return None
    value = check_real(name, value)
    if not value > 0.0:
        raise InputError(f"{name} must be > 0, got {value}")
    return value


def check_bool(name: str, value) -> bool:
    """A real boolean (``"no"`` or ``0`` are refused rather than silently truthy/falsy)."""
    if not is_bool(value):
        raise InputTypeError(f"{name} must be True or False, got {show(value)}")
    return bool(value)


def check_n_threads(n_threads) -> int | None:
    """``None`` or a whole number in [1, NUMBA_NUM_THREADS]."""
    if n_threads is None:
        return None
    import numba

    if is_bool(n_threads) or not isinstance(n_threads, numbers.Integral):
        raise InputTypeError(f"n_threads must be a whole number or None, got {show(n_threads)}")
    if not 1 <= n_threads <= numba.config.NUMBA_NUM_THREADS:
        raise InputError(
            f"n_threads must be between 1 and NUMBA_NUM_THREADS={numba.config.NUMBA_NUM_THREADS}, got {n_threads}"
        )
    return int(n_threads)


def check_choice(name: str, value, choices) -> object:
    """``value`` is one of ``choices``."""
    if not isinstance(value, Hashable) or value not in choices:
        shown = ", ".join(repr(c) for c in choices)
        raise InputError(f"{name} must be one of {shown}; got {show(value)}")
    return value


def check_lam_array(lam, n_users: int, users=None) -> np.ndarray:
    """Per-user λ: a scalar in [0, 1] broadcast to all users, or one value in [0, 1] per user.

    ``users`` (ids of the rows), if given, lets the message name the user at fault.
    """
    if np.ndim(lam) == 0:
        return np.full(n_users, check_unit_interval("lam", lam), dtype=np.float64)
    arr = np.asarray(lam)
    if arr.dtype.kind not in "fiu":
        raise InputTypeError(f"lam must hold numbers, got dtype {arr.dtype}")
    arr = writable(np.ascontiguousarray(arr, dtype=np.float64))
    if arr.shape != (n_users,):
        raise InputError(f"lam must be a scalar or have one value per user ({n_users}), got shape {arr.shape}")
    bad = np.flatnonzero(~((arr >= 0.0) & (arr <= 1.0)))
    if bad.size:
        who = f"user {show(users[bad[0]])}" if users is not None else f"user row {bad[0]}"
        raise InputError(f"lam must lie in [0, 1]; {who} has lam={arr[bad[0]]}")
    return arr


def writable(arr: np.ndarray) -> np.ndarray:
    """``arr`` as an array numba types as writable, without a copy when possible.

    Numba compiles read-only arrays as a separate type, so passing one (e.g. the copy-on-write
    view pandas returns from ``to_numpy``) would compile a second kernel signature. The
    package's compiled code never writes into its inputs, so when the memory belongs to a
    writable array (pandas' own block) a writable view of the same memory is returned — no
    copy of a 10⁸-row column; otherwise (memory that is read-only itself) a copy.
    """
    if arr.flags.writeable:
        return arr
    owner = arr
    while isinstance(owner.base, np.ndarray):
        owner = owner.base
    if owner is not arr and owner.flags.writeable and owner.flags.c_contiguous:
        offset = arr.__array_interface__["data"][0] - owner.__array_interface__["data"][0]
        try:
            return np.ndarray(arr.shape, arr.dtype, buffer=owner, offset=offset, strides=arr.strides)
        except (TypeError, ValueError, BufferError):
            pass
    return arr.copy()


def int_array(name: str, values) -> np.ndarray:
    """A 1-d array of whole numbers as contiguous int64 (floats only when all are whole);
    strings, booleans, NaN or 2-d input raise, where a plain cast would truncate or crash."""
    try:
        arr = np.asarray(values)
    except (TypeError, ValueError) as exc:
        raise InputTypeError(f"{name} must be a 1-d array of whole numbers: {exc}") from None
    if arr.ndim != 1:
        raise InputError(f"{name} must be 1-d, got shape {arr.shape}")
    if arr.size == 0:
        return np.zeros(0, dtype=np.int64)
    if arr.dtype.kind == "f":
        bad = np.flatnonzero(~(np.isfinite(arr) & (arr == np.round(arr))))
        if bad.size:
            raise InputError(f"{name} must hold whole numbers; position {bad[0]} is {show(arr[bad[0]])}")
    elif arr.dtype.kind not in "iu":
        raise InputTypeError(f"{name} must hold whole numbers, got dtype {arr.dtype}")
    if arr.dtype.kind == "u" and arr.max() > np.iinfo(np.int64).max:
        raise InputError(f"{name} holds values beyond int64")
    return writable(np.ascontiguousarray(arr, dtype=np.int64))


def float_array(name: str, values, ndim: int = 1) -> np.ndarray:
    """A real-valued array of ``ndim`` dimensions as contiguous float64 (not finite-checked)."""
    try:
        arr = np.asarray(values)
    except (TypeError, ValueError) as exc:
        raise InputTypeError(f"{name} must be an array of numbers: {exc}") from None
    if arr.dtype.kind not in "fiu":
        raise InputTypeError(f"{name} must be numeric, got dtype {arr.dtype}")
    if arr.ndim != ndim:
        raise InputError(f"{name} must be {ndim}-d, got shape {arr.shape}")
    return writable(np.ascontiguousarray(arr, dtype=np.float64))


def check_finite(name: str, values: np.ndarray) -> None:
    """No NaN or inf; the message names the first offending row."""
    bad = np.flatnonzero(~np.isfinite(values))
    if bad.size:
        raise InputError(f"{name} must be finite; row {bad[0]} is {show(values[bad[0]])} ({bad.size} such rows)")
