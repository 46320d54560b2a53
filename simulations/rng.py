"""Seeded random streams: one independent ``numpy.random.Generator`` per purpose.

``stream(seed, "clicks", round)`` is derived from ``SeedSequence([seed, crc32("clicks"),
round])``: the same (seed, purpose, round) gives the same numbers whatever else ran before,
so every policy sees the same world and the same click noise (common random numbers) and a
run does not depend on which other policies were simulated with it.
"""

from __future__ import annotations

import zlib

import numpy as np


def _key(part) -> int:
    if isinstance(part, str):
        return zlib.crc32(part.encode("utf-8"))
    return int(part)


def stream(seed: int, *parts) -> np.random.Generator:
    """An independent generator for ``(seed, *parts)`` (strings or whole numbers)."""
    return np.random.default_rng(np.random.SeedSequence([int(seed), *(_key(p) for p in parts)]))
