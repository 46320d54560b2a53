"""Equilibrium detection: when did each policy's metrics settle, at what values, and is the
settled state degenerate (minority interests collapsed)?

For one metric series ``x_0..x_{T-1}`` and a window ``W`` (``equilibrium_window``, at most
``T/2``):

* the **level** is the mean of the last ``W`` rounds, its **noise** their standard deviation;
* the **band** is ``max(abs_tol, rel_tol·|level|, 2·noise)``;
* the series has **settled** if its least-squares trend over the last ``W`` rounds moves it by
  at most one band (``|slope|·(W-1) ≤ band``); otherwise it is still drifting at the end;
* the **settled round** is the first round from which every later value stays within the
  band around the level (``None`` when it has not settled).

A policy's state is **degenerate** when, at its settled level, some group has
``minority_collapse_rate ≥ degenerate_collapse_rate`` or
``minority_exposure_ratio ≤ degenerate_exposure_ratio``.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from rerank.simulations.config import SimConfig
from rerank.simulations.metrics import GROUPS, METRIC_COLUMNS

KEY_METRICS = ("minority_exposure_ratio", "minority_collapse_rate", "miscalibration_true",
               "true_utility")


def settle(series, window: int, rel_tol: float, abs_tol: float) -> dict:
    """``{settled, settled_round, level, start, band, trend}`` for one series (NaN-free)."""
    x = np.asarray(series, dtype=np.float64)
    if x.size == 0 or np.isnan(x).all():
        return {"settled": False, "settled_round": None, "level": None, "start": None,
                "band": None, "trend": None}
    x = np.where(np.isnan(x), np.nanmean(x), x)
    w = max(2, min(window, x.size // 2)) if x.size >= 4 else x.size
    tail = x[-w:]
    level = float(tail.mean())
    noise = float(tail.std(ddof=1)) if w > 1 else 0.0
    band = max(abs_tol, rel_tol * abs(level), 2.0 * noise)
    slope = float(np.polyfit(np.arange(w), tail, 1)[0]) if w > 1 else 0.0
    settled = abs(slope) * (w - 1) <= band
    outside = np.flatnonzero(np.abs(x - level) > band)
    first_in = int(outside[-1] + 1) if outside.size else 0
    return {
        "settled": bool(settled),
        "settled_round": first_in if settled and first_in < x.size else None,
        "level": level,
        "start": float(x[0]),
        "band": band,
        "trend": slope,
    }


def detect(metrics: pd.DataFrame, config: SimConfig) -> dict:
    """Per policy: settled state of every metric and group, a summary and the verdict."""
    out = {}
    for policy in pd.unique(metrics["policy"]):
        rows = metrics[metrics["policy"] == policy]
        per_group = {}
        for group in GROUPS:
            series = rows[rows["group"] == group].sort_values("round")
            per_group[group] = {
                m: settle(series[m].to_numpy(), config.equilibrium_window,
                          config.equilibrium_rel_tol, config.equilibrium_abs_tol)
                for m in METRIC_COLUMNS
            }
        key = [per_group["all"][m] for m in KEY_METRICS]
        settled = all(s["settled"] for s in key)
        reasons = []
        for group in GROUPS:
            collapse = per_group[group]["minority_collapse_rate"]["level"]
            ratio = per_group[group]["minority_exposure_ratio"]["level"]
            if collapse is not None and collapse >= config.degenerate_collapse_rate:
                reasons.append(f"{group}: minority_collapse_rate {collapse:.3f} >= "
                               f"{config.degenerate_collapse_rate}")
            if ratio is not None and ratio <= config.degenerate_exposure_ratio:
                reasons.append(f"{group}: minority_exposure_ratio {ratio:.3f} <= "
                               f"{config.degenerate_exposure_ratio}")
        out[str(policy)] = {
            "settled": settled,
            "settled_round": (max(s["settled_round"] for s in key) if settled else None),
            "degenerate": bool(reasons),
            "degenerate_reasons": reasons,
            "metrics": per_group,
        }
    return out
