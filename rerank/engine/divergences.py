"""Divergences between a target ``p`` and a list distribution ``q`` (docs/design.md §3).

Each is a sum of per-category terms, ``C(p, q) = finish(Σ_g term(p_g, q_g))``, which is what
lets the kernel update it in O(categories of one item) per candidate:

* ``"kl"``:        ``Σ_g p_g log(p_g / q̃_g)``, ``q̃ = (1-α) q + α p`` (terms with ``p_g = 0`` are 0)
* ``"hellinger"``: ``sqrt(Σ_g (√p_g - √q_g)²) / √2``, in [0, 1]
* ``"chi2"``:      Pearson ``Σ_g (p_g - q̃_g)² / q̃_g`` (terms with ``q̃_g = 0`` are 0)

The compiled ``divergence_term`` / ``divergence_finish`` are the only definitions of these
formulas; the kernel and the metrics both use them.
"""

from __future__ import annotations

import math

import numpy as np

from rerank._numba import compiled

DIV_KL = 0
DIV_HELLINGER = 1
DIV_CHI2 = 2
DIVERGENCE_CODES = {"kl": DIV_KL, "hellinger": DIV_HELLINGER, "chi2": DIV_CHI2}
_SQRT2 = math.sqrt(2.0)


@compiled(inline="always")
def divergence_term(p, q, alpha, divergence):
    """One category's term of the divergence between target mass ``p`` and list mass ``q``."""
    if divergence == DIV_HELLINGER:
        d = math.sqrt(p) - math.sqrt(q)
        return d * d
    q_smooth = (1.0 - alpha) * q + alpha * p
    if divergence == DIV_KL:
        if p > 0.0:
            if q_smooth > 0.0:
                return p * math.log(p / q_smooth)
            # q̃ ≥ αp > 0 in exact arithmetic; here αp underflowed (p subnormal) with q = 0,
            # where the exact term is p log(p / (αp)) = p log(1/α).
            return -p * math.log(alpha)
        return 0.0
    if q_smooth > 0.0:
        d = p - q_smooth
        return d * d / q_smooth
    return 0.0


@compiled(inline="always")
def divergence_finish(total, divergence):
    """Turn the sum of terms into the divergence (only Hellinger needs a square root)."""
    if divergence == DIV_HELLINGER:
        if total < 0.0:  # rounding of the incremental sum
            total = 0.0
        return math.sqrt(total) / _SQRT2
    return total



@compiled()
def _divergence_rows(p, q, alpha, code, out):
    for u in range(p.shape[0]):
        total = 0.0
        for g in range(p.shape[1]):
            total += divergence_term(p[u, g], q[u, g], alpha, code)
        out[u] = divergence_finish(total, code)


def divergence(p, q, kind: str = "kl", alpha: float = 0.01) -> np.ndarray:
    """Row-wise divergence ``C(p_u, q_u)`` of two (users × G) arrays (or one pair of vectors)."""
    if kind not in DIVERGENCE_CODES:
        raise ValueError(f"divergence must be one of {sorted(DIVERGENCE_CODES)}; got {kind!r}")
    if not 0.0 < alpha < 1.0:
        raise ValueError(f"alpha must lie in (0, 1), got {alpha}")
    p2 = np.atleast_2d(np.asarray(p, dtype=np.float64))
    q2 = np.atleast_2d(np.asarray(q, dtype=np.float64))
    if p2.shape != q2.shape:
        raise ValueError(f"p and q must have the same shape, got {p2.shape} and {q2.shape}")
    out = np.empty(p2.shape[0], dtype=np.float64)
    _divergence_rows(np.ascontiguousarray(p2), np.ascontiguousarray(q2), float(alpha), DIVERGENCE_CODES[kind], out)
    return out if np.ndim(p) > 1 else out[0]
