"""Example budgets for hypothesis properties.

Every property states its CI budget through :func:`examples`; ``make fuzz`` multiplies them
all by ``RERANK_FUZZ_FACTOR`` (default 1) for a long nightly-style run.
"""

from __future__ import annotations

import os


def examples(n: int) -> int:
    """``n`` × ``RERANK_FUZZ_FACTOR`` (an integer ≥ 1)."""
    factor = int(os.environ.get("RERANK_FUZZ_FACTOR", "1"))
    if factor < 1:
        raise ValueError(f"RERANK_FUZZ_FACTOR must be an integer >= 1, got {factor}")
    return n * factor
