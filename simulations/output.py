"""Writing a run: ``metrics.csv``, ``details.csv``, ``summary.json`` — byte-identical for
the same seed and settings (rows sorted, fixed float format, sorted JSON keys, no clocks)."""

from __future__ import annotations

import json
import math
import platform
from importlib import metadata
from pathlib import Path

import pandas as pd
from rerank.simulations.equilibrium import detect
from rerank.simulations.run import SimulationResult

FLOAT_FORMAT = "%.6f"
PACKAGES = ("calibrated-rerank", "numpy", "scipy", "pandas", "numba", "implicit")


def versions() -> dict:
    out = {"python": platform.python_version()}
    for name in PACKAGES:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = None
    return out


def _clean(value):
    """JSON-safe and stable: floats rounded to 6 decimals, NaN/inf as None."""
    if isinstance(value, dict):
        return {str(k): _clean(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_clean(v) for v in value]
    if isinstance(value, float):
        return None if not math.isfinite(value) else round(value, 6)
    if hasattr(value, "item"):  # numpy scalars
        return _clean(value.item())
    return value


def summary(result: SimulationResult) -> dict:
    cfg = result.config
    return _clean({
        "seed": cfg.seed,
        "policies": list(result.policies),
        "settings": cfg.to_dict(),
        "versions": versions(),
        "equilibria": detect(result.metrics, cfg),
        "consumption": result.consumption,
        "world": {
            "n_majority_users": int((result.world.group == 0).sum()),
            "n_minority_users": int((result.world.group == 1).sum()),
            "niche_categories": [int(g) for g in range(cfg.n_categories) if result.world.niche[g]],
            "n_items_at_end": result.world.n_available(cfg.n_rounds - 1),
        },
    })


def write_csv(frame: pd.DataFrame, path: Path) -> None:
    frame.to_csv(path, index=False, float_format=FLOAT_FORMAT, lineterminator="\n")


def write_outputs(result: SimulationResult, out_dir) -> dict:
    """Write the files; returns the summary dict."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    write_csv(result.metrics, out_dir / "metrics.csv")
    write_csv(result.details, out_dir / "details.csv")
    info = summary(result)
    (out_dir / "summary.json").write_text(json.dumps(info, indent=2, sort_keys=True) + "\n")
    return info


def comparison_table(info: dict) -> str:
    """The final comparison: settled level per policy and group, start → end of the ratio."""
    header = (f"{'policy':<20} {'group':<9} {'exp.ratio':>17} {'collapse':>9} {'miscal':>7} "
              f"{'utility':>8} {'ctr':>6} {'settled':>8}  state")
    lines = [header, "-" * len(header)]
    for policy, eq in info["equilibria"].items():
        for group, metrics in eq["metrics"].items():
            ratio = metrics["minority_exposure_ratio"]

            def level(name, m=metrics):
                value = m[name]["level"]
                return float("nan") if value is None else value

            settled = eq["settled_round"] if eq["settled"] else "drifting"
            state = ("DEGENERATE" if eq["degenerate"] else "ok") if group == "all" else ""
            start = float("nan") if ratio["start"] is None else ratio["start"]
            lines.append(
                f"{policy:<20} {group:<9} {start:>7.3f} -> {level('minority_exposure_ratio'):>6.3f} "
                f"{level('minority_collapse_rate'):>9.3f} {level('miscalibration_true'):>7.3f} "
                f"{level('true_utility'):>8.3f} {level('ctr'):>6.3f} "
                f"{settled if group == 'all' else '':>8}  {state}"
            )
    return "\n".join(lines)
