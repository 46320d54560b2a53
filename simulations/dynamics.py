"""User dynamics: tastes that drift toward what users click, or toward what they are shown.

The loop's second driver besides the model (Jiang et al. 2019; Kalimeris et al. 2021): users
move toward the content the system brings them, so a narrowing system narrows them too.

* **Click drift** (``drift_rate = δ``, per attitude click; T-RECS drifts per interaction,
  RecLab's ``topics-dynamic`` per rated item). A user with ``n`` attitude clicks this round on
  items whose category mix is, on average, ``c_u = (1/n) Σ_j p(·|i_j)`` moves to

      ``θ_u ← (1-δ)^n θ_u + (1 - (1-δ)^n) c_u``.

  ``n`` sequential steps ``θ ← (1-δ) θ + δ p(·|i_j)`` give the same weight ``(1-δ)^n`` to the
  old taste; the batch form spreads the rest evenly over the round's clicks, since the order
  of clicks within a slate is not modelled. Noise clicks (unrelated to preference) do not
  move tastes.
* **Exposure drift** (``exposure_drift_rate = ε``, per round, off by default): mere exposure
  moves tastes toward the exposure distribution of the slate,
  ``θ_u ← (1-ε) θ_u + ε q_u`` with ``q_u(g) = Σ_r e_r p(g|L_r) / Σ_r e_r``
  (the "mere-exposure" dynamics discussed by Curmei et al. 2022).

Both keep ``θ_u`` a probability vector and never remove a category the user had.
"""

from __future__ import annotations

import numpy as np


def click_drift(theta: np.ndarray, slates: np.ndarray, attitude: np.ndarray,
                item_categories: np.ndarray, rate: float) -> np.ndarray:
    """``θ_u ← (1-δ)^n θ_u + (1-(1-δ)^n) c_u`` for the ``n`` attitude clicks of each user."""
    if rate <= 0:
        return theta
    users, slots = np.nonzero(attitude)
    n = np.bincount(users, minlength=theta.shape[0]).astype(np.float64)
    mass = np.zeros_like(theta)
    np.add.at(mass, users, item_categories[slates[users, slots]])
    moved = n > 0
    keep = (1.0 - rate) ** n[moved]
    out = theta.copy()
    out[moved] = keep[:, None] * theta[moved] + (1.0 - keep)[:, None] * mass[moved] / n[moved, None]
    return out


def exposure_drift(theta: np.ndarray, exposure: np.ndarray, rate: float) -> np.ndarray:
    """``θ_u ← (1-ε) θ_u + ε q_u`` (``exposure``: users × G rows summing to 1)."""
    if rate <= 0:
        return theta
    return (1.0 - rate) * theta + rate * exposure
