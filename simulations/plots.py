"""PNG plots of the per-round metrics: one figure per metric, one panel per group
(all / majority / minority), one line per policy."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
from rerank.simulations.metrics import GROUPS, METRIC_COLUMNS

REFERENCE_LINES = {"minority_exposure_ratio": 1.0}


def plot_metrics(metrics: pd.DataFrame, out_dir, title: str = "") -> list[Path]:
    """Write ``<metric>.png`` for every metric column and ``overview.png``; returns the paths."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    policies = list(pd.unique(metrics["policy"]))
    paths = []
    meta = {"Software": None}
    for metric in METRIC_COLUMNS:
        fig, axes = plt.subplots(1, len(GROUPS), figsize=(12, 3.4), sharey=True)
        for ax, group in zip(axes, GROUPS, strict=True):
            rows = metrics[metrics["group"] == group]
            for policy in policies:
                series = rows[rows["policy"] == policy].sort_values("round")
                ax.plot(series["round"], series[metric], label=policy, linewidth=1.5)
            if metric in REFERENCE_LINES:
                ax.axhline(REFERENCE_LINES[metric], color="grey", linestyle=":", linewidth=1)
            ax.set_title(group)
            ax.set_xlabel("round")
            ax.grid(alpha=0.3)
        axes[0].set_ylabel(metric)
        axes[-1].legend(fontsize=8)
        fig.suptitle(f"{metric} {title}".strip())
        fig.tight_layout()
        path = out_dir / f"{metric}.png"
        fig.savefig(path, dpi=90, metadata=meta)
        plt.close(fig)
        paths.append(path)
    overview = ("minority_exposure_ratio", "miscalibration_true", "true_utility",
                "minority_collapse_rate")
    fig, axes = plt.subplots(len(overview), len(GROUPS), figsize=(12, 2.6 * len(overview)),
                             sharex=True)
    for i, metric in enumerate(overview):
        for j, group in enumerate(GROUPS):
            ax = axes[i, j]
            rows = metrics[metrics["group"] == group]
            for policy in policies:
                series = rows[rows["policy"] == policy].sort_values("round")
                ax.plot(series["round"], series[metric], label=policy, linewidth=1.5)
            if metric in REFERENCE_LINES:
                ax.axhline(REFERENCE_LINES[metric], color="grey", linestyle=":", linewidth=1)
            if i == 0:
                ax.set_title(group)
            if j == 0:
                ax.set_ylabel(metric, fontsize=8)
            ax.grid(alpha=0.3)
    axes[0, -1].legend(fontsize=7)
    for ax in axes[-1]:
        ax.set_xlabel("round")
    fig.suptitle(f"feedback loop {title}".strip())
    fig.tight_layout()
    path = out_dir / "overview.png"
    fig.savefig(path, dpi=90, metadata=meta)
    plt.close(fig)
    paths.append(path)
    return paths
