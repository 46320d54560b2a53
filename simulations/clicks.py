"""Click models over slates (users × slots), vectorised with numpy.

Only shown items can be clicked (selection bias): clicks are drawn for slate entries only.

* **Attitude + noise.** Once a slot is examined the user clicks with probability
  ``c = (1-ν) · rel(u,i) + ν · κ``: with probability ``1-ν`` on attitude (true relevance),
  with probability ``ν`` (``noise_share``) a click unrelated to preference that happens with
  probability ``κ`` (``noise_click_prob``), whatever the item. One uniform draw ``x`` per
  examined slot decides both: an *attitude click* when ``x < (1-ν) rel``, a *noise click*
  when ``(1-ν) rel ≤ x < c``. Only attitude clicks move tastes
  (:mod:`rerank.simulations.dynamics`).
* **Position-based model** (PBM): slot ``r`` (from 1) is examined with probability
  ``e_r = (1/r)^η`` independently of the rest; ``P(click) = e_r · c``.
* **Cascade model**: the user scans from the top, examines slot 1, and at each examined slot
  clicks with probability ``c`` and stops after a click; so slot ``r`` is examined with
  probability ``Π_{s<r} (1 - c_s)``.

Each click model returns :class:`Clicks`: the clicks, which of them are attitude clicks, and
the *propensity* of every impression: the probability that its slot was examined. The log
stores it as a perfectly estimated propensity model would (for the cascade it depends on the
items above, which the simulator knows).
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np


class Clicks(NamedTuple):
    """Clicks of a (users × k) slate array: ``clicked`` (bool), ``propensity`` (examination
    probability of each impression) and ``attitude`` (bool, the clicks driven by preference;
    ``clicked & ~attitude`` are the noise clicks)."""

    clicked: np.ndarray
    propensity: np.ndarray
    attitude: np.ndarray


def examination_curve(eta: float, k: int) -> np.ndarray:
    """``e_r = (1/r)^η`` for ``r = 1..k``."""
    return np.arange(1, k + 1, dtype=np.float64) ** (-float(eta))


def click_probability(rel: np.ndarray, noise_share: float, noise_click_prob: float) -> np.ndarray:
    """``c = (1-ν) rel + ν κ``: click probability of an examined item."""
    return (1.0 - noise_share) * rel + noise_share * noise_click_prob


def position_based_clicks(
    rel: np.ndarray, eta: float, rng: np.random.Generator, noise_share: float = 0.0,
    noise_click_prob: float = 0.0,
) -> Clicks:
    """PBM clicks for a (users × k) relevance array.

    ``clicked[u, r] ~ Bernoulli(e_r · c[u, r])`` with ``e_r = (1/r)^η``, from one draw
    ``x ~ U(0,1)``: ``clicked = x < e_r c``, ``attitude = x < e_r (1-ν) rel``. The propensity
    of every impression in column ``r`` is ``e_r``.
    """
    rel = np.asarray(rel, dtype=np.float64)
    exam = examination_curve(eta, rel.shape[1])[None, :]
    c = click_probability(rel, noise_share, noise_click_prob)
    draw = rng.random(rel.shape)
    clicked = draw < exam * c
    attitude = draw < exam * ((1.0 - noise_share) * rel)
    return Clicks(clicked, np.broadcast_to(exam, rel.shape).copy(), attitude)


def cascade_clicks(
    rel: np.ndarray, rng: np.random.Generator, noise_share: float = 0.0,
    noise_click_prob: float = 0.0,
) -> Clicks:
    """Cascade clicks for a (users × k) relevance array.

    At most one click per slate: at the first examined slot whose draw ``x < c``; it is an
    attitude click when ``x < (1-ν) rel``. The propensity of slot ``r`` is
    ``Π_{s<r} (1 - c_s)``.
    """
    rel = np.asarray(rel, dtype=np.float64)
    c = click_probability(rel, noise_share, noise_click_prob)
    draw = rng.random(rel.shape)
    would = draw < c
    first = np.argmax(would, axis=1)
    any_click = would.any(axis=1)
    clicked = np.zeros(rel.shape, dtype=bool)
    rows = np.flatnonzero(any_click)
    clicked[rows, first[rows]] = True
    attitude = clicked & (draw < (1.0 - noise_share) * rel)
    survive = np.cumprod(1.0 - c, axis=1)
    propensity = np.ones_like(c)
    propensity[:, 1:] = survive[:, :-1]
    return Clicks(clicked, propensity, attitude)


def simulate_clicks(
    rel: np.ndarray, click_model: str, eta: float, rng: np.random.Generator,
    noise_share: float, noise_click_prob: float,
) -> Clicks:
    """Dispatch on ``click_model`` (``"position"`` or ``"cascade"``)."""
    if click_model == "position":
        return position_based_clicks(rel, eta, rng, noise_share, noise_click_prob)
    if click_model == "cascade":
        return cascade_clicks(rel, rng, noise_share, noise_click_prob)
    raise ValueError(f"click_model must be 'position' or 'cascade', got {click_model!r}")


def ips_weights(propensity: np.ndarray, clip: float) -> np.ndarray:
    """Clipped inverse-propensity weights ``min(1/p, clip)``.

    Unbiased for ``c`` (hence for relevance when ``ν = 0``) while ``1/p ≤ clip``:
    ``E[click/p] = p · c / p = c``. Clipping trades that for bounded variance.
    """
    propensity = np.asarray(propensity, dtype=np.float64)
    return np.minimum(1.0 / np.maximum(propensity, 1e-300), float(clip))
