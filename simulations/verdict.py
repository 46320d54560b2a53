"""Loop effects against the ``organic`` baseline, their 95% CIs over seeds, and the verdict.

The rule was written into docs/simulation.md ("Loop effect and verdict") before the headline
run. For a metric ``m``, a policy ``p``, a user group and a seed ``s`` (rounds ``0..T-1``,
window ``W = verdict_window``):

* **change** since round 0: ``Δ^p_t = m^p_t − m^p_0``;
* **loop-effect series** ``D_t = Δ^p_t − Δ^organic_t``: the policy's change minus the change
  of the world without a recommender over the same rounds (same seed, same world);
* **loop effect** ``L_s = mean(D_t, last W rounds)``;
* **trend** ``τ_s = slope(D_t, last W rounds) · (W − 1)``: the change the least-squares line
  implies across the window.

Over the ``S`` seeds: the mean and the 95% CI ``mean ± t_{0.975, S−1} · sd / √S``
(:func:`mean_ci`; no CI with one seed). With ``σ = +1`` when a higher value of ``m`` is worse
and ``−1`` when a lower one is (:data:`rerank.simulations.config.VERDICT_METRICS`), write
``x̃ = σ x`` (worse = positive) and the margin
``μ = max(verdict_margin · |mean_s m^p_0|, verdict_margin_floor)`` (10% of the policy's own
round-0 value). Then:

* **worse beyond the margin**: the CI of ``L̃`` excludes 0 (lower bound > 0) and the mean
  ``L̃ > μ``;
* **still worsening**: the CI of ``τ̃`` excludes 0 (lower bound > 0) and the mean
  ``τ̃ ≥ verdict_trend_share · μ`` (a quarter of the margin within the last W rounds);
* verdict: ``degenerate`` = worse beyond the margin and still worsening;
  ``biased-equilibrium`` = worse beyond the margin, not still worsening;
  ``holds`` = the CI's upper bound of ``L̃`` is below ``μ`` (no worsening beyond the margin,
  improvements included); ``inconclusive`` = anything else (including a single seed).
* ``depletion_dominated``: the seeds' mean ``top50_consumed`` at the last round is at least
  ``depletion_threshold``.

``organic`` is the baseline: its loop effect is 0 by definition and it gets no verdict.

**Comparisons** (:func:`compare`): a policy ``b``'s loop effect is *clearly smaller* than
``a``'s when the 95% CI of the paired difference ``σ (L_s(a) − L_s(b))`` over the seeds (same
seeds, same worlds) lies above 0.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from rerank.simulations.config import VERDICT_METRICS, SimConfig
from scipy import stats

BASELINE = "organic"
VERDICTS = ("degenerate", "biased-equilibrium", "holds", "inconclusive")


def mean_ci(values, level: float = 0.95) -> tuple[float, float, float]:
    """``(mean, lo, hi)``: Student-t interval ``mean ± t_{(1+level)/2, n−1} · sd / √n``.

    NaNs are dropped; ``lo = hi = NaN`` with fewer than two values; ``lo = hi = mean`` when
    all values are equal.
    """
    x = np.asarray(values, dtype=np.float64)
    x = x[~np.isnan(x)]
    if x.size == 0:
        return float("nan"), float("nan"), float("nan")
    mean = float(x.mean())
    if x.size < 2:
        return mean, float("nan"), float("nan")
    half = float(stats.t.ppf(0.5 + level / 2.0, x.size - 1) * x.std(ddof=1) / np.sqrt(x.size))
    return mean, mean - half, mean + half


def slope(y) -> float:
    """Least-squares slope of ``y`` against ``0..n-1`` (0 for fewer than two points)."""
    y = np.asarray(y, dtype=np.float64)
    if y.size < 2:
        return 0.0
    t = np.arange(y.size, dtype=np.float64)
    t -= t.mean()
    return float((t * (y - y.mean())).sum() / (t * t).sum())


def loop_effect_series(metrics: pd.DataFrame, metric: str) -> pd.DataFrame:
    """``seed, policy, group, round, change, effect``: ``change = m_t − m_0`` of the policy and
    ``effect = D_t = change − change of organic`` (same seed, group and round); policies other
    than ``organic`` only. Empty when ``organic`` was not run."""
    cols = ["seed", "policy", "group", "round", metric]
    frame = metrics[cols].copy()
    first = frame[frame["round"] == 0].set_index(["seed", "policy", "group"])[metric]
    frame["change"] = frame[metric].to_numpy() - first.reindex(
        pd.MultiIndex.from_frame(frame[["seed", "policy", "group"]])).to_numpy()
    base = frame[frame["policy"] == BASELINE].set_index(["seed", "group", "round"])["change"]
    if base.empty:
        return frame.iloc[0:0].assign(effect=[])[["seed", "policy", "group", "round", "change", "effect"]]
    rest = frame[frame["policy"] != BASELINE].copy()
    rest["effect"] = rest["change"].to_numpy() - base.reindex(
        pd.MultiIndex.from_frame(rest[["seed", "group", "round"]])).to_numpy()
    return rest[["seed", "policy", "group", "round", "change", "effect"]].reset_index(drop=True)


def classify(effect: tuple[float, float, float], trend: tuple[float, float, float],
             margin: float, trend_share: float, sign: float) -> str:
    """The verdict for one policy × group from the (mean, lo, hi) of the loop effect and of the
    trend in the metric's own units, its margin and the sign that makes "worse" positive."""
    e_mean, e_lo, e_hi = (sign * v for v in effect)
    e_lo, e_hi = min(e_lo, e_hi), max(e_lo, e_hi)
    t_mean, t_lo, t_hi = (sign * v for v in trend)
    t_lo = min(t_lo, t_hi)
    worse = bool(e_lo > 0 and e_mean > margin)
    worsening = bool(t_lo > 0 and t_mean >= trend_share * margin)
    if worse and worsening:
        return "degenerate"
    if worse:
        return "biased-equilibrium"
    if e_hi < margin:
        return "holds"
    return "inconclusive"


def _window_stats(series: pd.DataFrame, window: int) -> tuple[float, float]:
    """``(L_s, τ_s)`` of one seed's loop-effect series (sorted by round)."""
    tail = series["effect"].to_numpy()[-window:]
    return float(np.mean(tail)), slope(tail) * (tail.size - 1)


def judge(metrics: pd.DataFrame, config: SimConfig, metric: str) -> dict:
    """``{policy: {group: {...}}}`` for one metric (see the module docstring)."""
    sign = VERDICT_METRICS[metric]
    series = loop_effect_series(metrics, metric)
    n_rounds = int(metrics["round"].max()) + 1
    window = max(2, min(config.verdict_window, n_rounds))
    last = metrics[metrics["round"] == n_rounds - 1]
    out: dict = {}
    for (policy, group), rows in series.groupby(["policy", "group"], sort=False):
        per_seed = [_window_stats(r.sort_values("round"), window)
                    for _, r in rows.groupby("seed", sort=True)]
        effects = np.array([e for e, _ in per_seed])
        if np.isnan(effects).all():
            continue
        effect = mean_ci(effects)
        trend = mean_ci([t for _, t in per_seed])
        start = metrics[(metrics["policy"] == policy) & (metrics["group"] == group)
                        & (metrics["round"] == 0)][metric].mean()
        margin = max(config.verdict_margin * abs(float(start)), config.verdict_margin_floor)
        consumed = last[(last["policy"] == policy) & (last["group"] == group)]["top50_consumed"]
        out.setdefault(str(policy), {})[str(group)] = {
            "verdict": classify(effect, trend, margin, config.verdict_trend_share, sign),
            "metric": metric,
            "worse_when": "higher" if sign > 0 else "lower",
            "loop_effect": effect[0],
            "ci": [effect[1], effect[2]],
            "trend": trend[0],
            "trend_ci": [trend[1], trend[2]],
            "margin": margin,
            "round0": float(start),
            "seeds": int((~np.isnan(effects)).sum()),
            "window": window,
            "depletion_dominated": bool(consumed.mean() >= config.depletion_threshold),
        }
    return out


def _per_seed_effects(series: pd.DataFrame, policy: str, group: str, window: int) -> pd.Series:
    rows = series[(series["policy"] == policy) & (series["group"] == group)]
    return rows.sort_values("round").groupby("seed", sort=True).apply(
        lambda r: float(np.mean(r["effect"].to_numpy()[-window:])), include_groups=False)


def compare(metrics: pd.DataFrame, config: SimConfig, metric: str, reference: str = "topk") -> dict:
    """``{policy: {group: {"difference", "ci", "clearly_smaller"}}}``: the paired difference
    over seeds between ``reference``'s loop effect and each other policy's, worse-signed
    (``> 0``: the policy's loop effect is smaller in the harmful direction)."""
    sign = VERDICT_METRICS[metric]
    series = loop_effect_series(metrics, metric)
    if series.empty or reference not in set(series["policy"]):
        return {}
    n_rounds = int(metrics["round"].max()) + 1
    window = max(2, min(config.verdict_window, n_rounds))
    out: dict = {}
    for policy in pd.unique(series["policy"]):
        if policy == reference:
            continue
        for group in pd.unique(series["group"]):
            a = _per_seed_effects(series, reference, group, window)
            b = _per_seed_effects(series, str(policy), group, window)
            diff = sign * (a - b.reindex(a.index))
            if diff.isna().all():
                continue
            mean, lo, hi = mean_ci(diff.to_numpy())
            out.setdefault(str(policy), {})[str(group)] = {
                "difference": mean, "ci": [lo, hi], "clearly_smaller": bool(lo > 0),
                "reference": reference, "metric": metric,
            }
    return out


def verdicts(metrics: pd.DataFrame, config: SimConfig) -> tuple[dict, dict]:
    """``(verdicts, by_metric)``: the verdicts on ``config.verdict_metric`` (the headline)
    and on every metric of :data:`VERDICT_METRICS`."""
    by_metric = {m: judge(metrics, config, m) for m in VERDICT_METRICS}
    return by_metric[config.verdict_metric], by_metric
