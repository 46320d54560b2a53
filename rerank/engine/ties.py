"""The tie rule shared by every list builder (greedy, quota, PM-2) and the safeguard.

Candidates are compared by objective first, treating objectives within
``TIE_RTOL · (1 + max(|a|, |b|))`` as equal (so mathematically equal objectives that differ
only by floating-point rounding count as ties), then by higher score, then by earlier input
position. The rule is deterministic and independent of the thread count.
"""

from __future__ import annotations

from rerank._numba import compiled

TIE_RTOL = 1e-12


@compiled(inline="always")
def is_better(obj, score, pos, best_obj, best_score, best_pos):
    """Objective first (equal within TIE_RTOL), then higher score, then earlier position."""
    tol = TIE_RTOL * (1.0 + max(abs(obj), abs(best_obj)))
    if obj > best_obj + tol:
        return True
    if obj < best_obj - tol:
        return False
    if score > best_score:
        return True
    if score < best_score:
        return False
    return pos < best_pos
