"""PNG plots of a run: per-round means over seeds with 95% CI bands, one panel per user group.

* ``<metric>.png`` for every column of ``metrics.csv``;
* ``overview.png``: the round-0-reference metrics and utility;
* ``loop_effect.png``: the loop effect series ``D_t`` of the verdict metric (the policy's
  change since round 0 minus organic's), with the margin band (:mod:`.verdict`).

Axes say what they show and what the reference value means (:data:`LABELS`).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
from rerank.simulations.config import VERDICT_METRICS
from rerank.simulations.metrics import GROUPS, METRIC_COLUMNS
from rerank.simulations.verdict import BASELINE, loop_effect_series
from scipy import stats

#: y-axis label of every metric: what it is, and what its reference value means.
LABELS = {
    "minority_exposure_ratio": "minority interests: exposure / current organic share\n(1 = proportional)",
    "minority_collapse_rate": "share of users whose minority-interest\nratio is below 0.25 (0 = none)",
    "miscalibration_true": "KL(current organic share ‖ exposure), nats\n(0 = calibrated)",
    "true_utility": "expected attitude clicks per slate\n(higher = more relevant)",
    "ctr": "clicks per impression",
    "coverage": "share of the catalogue shown to the group",
    "exposure_gini": "Gini of item exposure\n(0 = every item equally exposed)",
    "homogenization": "Jaccard overlap of two users' slates\n(0 = disjoint, 1 = identical)",
    "estimate_error": "total variation: system's interest estimate\nvs organic share (0 = exact)",
    "interest_drift": "total variation: taste vs round-0 taste\n(0 = unchanged)",
    "ref_miscalibration": "KL(round-0 organic share ‖ exposure), nats\n(0 = calibrated to round 0)",
    "ref_minority_ratio": "minority interests: exposure / round-0 share\n(1 = proportional)",
    "distinct_interest_ratio": "niche dominant interest: exposure / round-0 share\n(1 = proportional)",
    "taste_shift": "KL(round-0 taste ‖ taste), nats\n(0 = unchanged)",
    "taste_entropy": "entropy of taste, nats\n(higher = broader)",
    "top50_consumed": "share of the 50 most relevant items\nno longer consumable (0 = no depletion)",
}
REFERENCE_LINES = {"minority_exposure_ratio": 1.0, "ref_minority_ratio": 1.0,
                   "distinct_interest_ratio": 1.0}
GROUP_TITLES = {"all": "all users", "mainstream": "mainstream group", "niche": "niche group"}
OVERVIEW = ("ref_miscalibration", "ref_minority_ratio", "distinct_interest_ratio",
            "taste_shift", "true_utility")


def band(frame: pd.DataFrame, value: str, by=("policy", "group", "round")) -> pd.DataFrame:
    """Mean and 95% Student-t CI (``lo``, ``hi``) of ``value`` over seeds, per ``by`` key
    (``lo = hi = mean`` with one seed)."""
    grouped = frame.groupby(list(by), sort=False)[value]
    out = grouped.agg(["mean", "std", "count"]).reset_index()
    n = out["count"].to_numpy()
    half = np.zeros(len(out))
    many = n > 1
    half[many] = stats.t.ppf(0.975, n[many] - 1) * out["std"].to_numpy()[many] / np.sqrt(n[many])
    out["lo"] = out["mean"] - half
    out["hi"] = out["mean"] + half
    return out


def _colors(policies) -> dict:
    """One colour per policy, by its place in the run, the same in every figure."""
    return {policy: f"C{index % 10}" for index, policy in enumerate(policies)}


def _draw(ax, table: pd.DataFrame, policies, group: str, colors: dict) -> None:
    rows = table[table["group"] == group]
    drawn = False
    for policy in policies:
        series = rows[rows["policy"] == policy].sort_values("round")
        if series.empty or series["mean"].isna().all():
            continue
        drawn = True
        color = colors[policy]
        style = "--" if policy == BASELINE else "-"
        ax.plot(series["round"], series["mean"], style, color=color, label=policy, linewidth=1.4)
        ax.fill_between(series["round"], series["lo"], series["hi"], color=color, alpha=0.18,
                        linewidth=0)
    if not drawn:
        ax.text(0.5, 0.5, f"not defined for the {GROUP_TITLES[group]}", ha="center",
                va="center", transform=ax.transAxes, fontsize=8, color="grey")


def _setup():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _save(fig, path: Path) -> Path:
    fig.tight_layout()
    fig.savefig(path, dpi=90, metadata={"Software": None})
    return path


def plot_metrics(metrics: pd.DataFrame, out_dir, title: str = "",
                 verdict_metric: str = "ref_miscalibration") -> list[Path]:
    """Write every figure; returns the paths."""
    plt = _setup()
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    policies = list(pd.unique(metrics["policy"]))
    colors = _colors(policies)
    n_seeds = metrics["seed"].nunique()
    note = f"mean over {n_seeds} seed(s), band = 95% CI" if n_seeds > 1 else "one seed"
    paths = []
    for metric in METRIC_COLUMNS:
        table = band(metrics, metric)
        fig, axes = plt.subplots(1, len(GROUPS), figsize=(12, 3.6), sharey=True)
        for ax, group in zip(axes, GROUPS, strict=True):
            _draw(ax, table, policies, group, colors)
            if metric in REFERENCE_LINES:
                ax.axhline(REFERENCE_LINES[metric], color="grey", linestyle=":", linewidth=1)
            ax.set_title(GROUP_TITLES[group])
            ax.set_xlabel("round")
            ax.grid(alpha=0.3)
        axes[0].set_ylabel(LABELS[metric], fontsize=8)
        axes[-1].legend(fontsize=7)
        fig.suptitle(f"{metric} {title} ({note})".strip(), fontsize=10)
        paths.append(_save(fig, out_dir / f"{metric}.png"))
        plt.close(fig)
    paths.append(plot_overview(metrics, out_dir / "overview.png", title, note, plt))
    if BASELINE in policies:
        paths.append(plot_loop_effect(metrics, out_dir / "loop_effect.png", title, note, plt,
                                      verdict_metric))
    return paths


def plot_overview(metrics, path: Path, title: str, note: str, plt) -> Path:
    policies = list(pd.unique(metrics["policy"]))
    colors = _colors(policies)
    fig, axes = plt.subplots(len(OVERVIEW), len(GROUPS), figsize=(13, 2.7 * len(OVERVIEW)),
                             sharex=True)
    for i, metric in enumerate(OVERVIEW):
        table = band(metrics, metric)
        for j, group in enumerate(GROUPS):
            ax = axes[i, j]
            _draw(ax, table, policies, group, colors)
            if metric in REFERENCE_LINES:
                ax.axhline(REFERENCE_LINES[metric], color="grey", linestyle=":", linewidth=1)
            if i == 0:
                ax.set_title(GROUP_TITLES[group])
            if j == 0:
                ax.set_ylabel(LABELS[metric], fontsize=7)
            ax.grid(alpha=0.3)
    axes[0, 0].legend(fontsize=7)
    for ax in axes[-1]:
        ax.set_xlabel("round")
    fig.suptitle(f"feedback loop {title} ({note})".strip(), fontsize=10)
    path = _save(fig, path)
    plt.close(fig)
    return path


def plot_loop_effect(metrics, path: Path, title: str, note: str, plt, metric: str) -> Path:
    series = loop_effect_series(metrics, metric)
    table = band(series, "effect")
    everyone = list(pd.unique(metrics["policy"]))
    colors = _colors(everyone)
    policies = [p for p in everyone if p != BASELINE]
    fig, axes = plt.subplots(1, len(GROUPS), figsize=(13, 3.8), sharey=True)
    for ax, group in zip(axes, GROUPS, strict=True):
        _draw(ax, table, policies, group, colors)
        ax.axhline(0.0, color="grey", linestyle=":", linewidth=1)
        ax.set_title(GROUP_TITLES[group])
        ax.set_xlabel("round")
        ax.grid(alpha=0.3)
    worse = "> 0" if VERDICT_METRICS[metric] > 0 else "< 0"
    axes[0].set_ylabel(f"loop effect on {metric}:\nchange since round 0 minus organic's\n"
                       f"(0 = no loop effect; {worse} = worse)", fontsize=8)
    axes[-1].legend(fontsize=7)
    fig.suptitle(f"loop effect {title} ({note})".strip(), fontsize=10)
    path = _save(fig, path)
    plt.close(fig)
    return path
