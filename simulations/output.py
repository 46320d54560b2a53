"""A run's results: ``metrics.csv``, ``details.csv``, ``summary.json`` and the printed tables —
byte-identical for the same seeds and settings (rows sorted, fixed float format, sorted JSON
keys, no clocks)."""

from __future__ import annotations

import json
import math
import platform
from importlib import metadata
from pathlib import Path

import pandas as pd
from rerank.simulations.run import SimulationResult
from rerank.simulations.verdict import BASELINE, compare, verdicts

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
    """Everything but the per-round rows: settings, seeds, verdicts, consumption, world."""
    cfg = result.config
    headline, by_metric = verdicts(result.metrics, cfg)
    world = result.world
    note = None if BASELINE in result.policies else (
        "no verdicts: loop effects are measured against the 'organic' policy, which was not run")
    return _clean({
        "seeds": list(result.seeds),
        "policies": list(result.policies),
        "settings": {**cfg.to_dict(), "seed": None},
        "versions": versions(),
        "verdicts": headline,
        "verdicts_by_metric": by_metric,
        "versus_topk": {m: compare(result.metrics, cfg, m) for m in by_metric},
        "verdict_note": note,
        "consumption": {str(seed): per for seed, per in result.consumption.items()},
        "world": {
            "n_mainstream_users": int((world.group == 0).sum()),
            "n_niche_users": int((world.group == 1).sum()),
            "niche_categories": [int(g) for g in range(cfg.n_categories) if world.niche[g]],
            "n_items_at_end": world.n_available(cfg.n_rounds - 1),
        },
    })


def write_csv(frame: pd.DataFrame, path: Path) -> None:
    frame.to_csv(path, index=False, float_format=FLOAT_FORMAT, lineterminator="\n")


def write_outputs(result: SimulationResult, out_dir, info: dict | None = None) -> dict:
    """Write the three files into ``out_dir``; returns the summary dict."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    write_csv(result.metrics, out_dir / "metrics.csv")
    write_csv(result.details, out_dir / "details.csv")
    info = summary(result) if info is None else info
    (out_dir / "summary.json").write_text(json.dumps(info, indent=2, sort_keys=True) + "\n")
    return info


def _num(value, fmt: str = ".3f") -> str:
    return "nan" if value is None or (isinstance(value, float) and math.isnan(value)) else format(value, fmt)


def levels_table(result: SimulationResult, metrics=("ref_miscalibration", "ref_minority_ratio",
                                                     "distinct_interest_ratio", "true_utility",
                                                     "taste_shift")) -> str:
    """Round 0 → last round (means over seeds) of the key metrics, per policy and group."""
    frame = result.metrics
    last = int(frame["round"].max())
    ends = frame[frame["round"].isin([0, last])].groupby(
        ["policy", "group", "round"], sort=False)[list(metrics)].mean()
    short = {"ref_miscalibration": "ref.miscal", "ref_minority_ratio": "ref.minority",
             "distinct_interest_ratio": "distinct", "true_utility": "utility",
             "taste_shift": "taste.shift"}
    header = f"{'policy':<20} {'group':<10} " + " ".join(f"{short.get(m, m):>15}" for m in metrics)
    lines = [f"round 0 -> round {last}, mean over {len(result.seeds)} seed(s)", header,
             "-" * len(header)]
    for policy in result.policies:
        for group in ("all", "mainstream", "niche"):
            if (policy, group, 0) not in ends.index:
                continue
            a, b = ends.loc[(policy, group, 0)], ends.loc[(policy, group, last)]
            cells = [f"{_num(a[m], '.2f'):>6} -> {_num(b[m], '.2f'):>5}" for m in metrics]
            lines.append(f"{policy:<20} {group:<10} " + " ".join(f"{c:>15}" for c in cells))
    return "\n".join(lines)


def comparison_table(info: dict) -> str:
    """Paired difference of each policy's loop effect from top-k's (verdict metric)."""
    first = next(iter(next(iter(info["verdicts"].values())).values()), None) if info.get("verdicts") else None
    if first is None:
        return ""
    table = info.get("versus_topk", {}).get(first["metric"], {})
    if not table:
        return ""
    header = f"{'policy':<20} {'group':<10} {'top-k minus policy [95% CI]':>30}  clearly smaller"
    lines = [f"loop effect on {first['metric']} compared with top-k (paired over seeds; > 0 = "
             "the policy's loop effect is smaller in the harmful direction)", header,
             "-" * len(header)]
    for policy, groups in table.items():
        for group, c in groups.items():
            lo, hi = c["ci"]
            cell = f"{_num(c['difference'], '+.3f')} [{_num(lo, '+.3f')}, {_num(hi, '+.3f')}]"
            lines.append(f"{policy:<20} {group:<10} {cell:>30}  "
                         f"{'yes' if c['clearly_smaller'] else 'no'}")
    return "\n".join(lines)


def verdict_table(info: dict) -> str:
    """Loop effect (mean [95% CI] over seeds), trend and verdict per policy and group."""
    if not info.get("verdicts"):
        return info.get("verdict_note") or "no verdicts"
    first = next(iter(next(iter(info["verdicts"].values())).values()))
    header = (f"{'policy':<20} {'group':<10} {'round 0':>8} {'loop effect [95% CI]':>28} "
              f"{'margin':>7} {'trend':>8}  verdict")
    lines = [f"verdicts on {first['metric']} (worse when {first['worse_when']}; loop effect = "
             f"change since round 0 minus organic's, last {first['window']} rounds, "
             f"{first['seeds']} seed(s))", header, "-" * len(header)]
    for policy, groups in info["verdicts"].items():
        for group, v in groups.items():
            lo, hi = v["ci"]
            effect = f"{_num(v['loop_effect'], '+.3f')} [{_num(lo, '+.3f')}, {_num(hi, '+.3f')}]"
            flag = "  (depletion-dominated)" if v["depletion_dominated"] else ""
            lines.append(f"{policy:<20} {group:<10} {_num(v['round0']):>8} {effect:>28} "
                         f"{_num(v['margin']):>7} {_num(v['trend'], '+.3f'):>8}  "
                         f"{v['verdict']}{flag}")
    return "\n".join(lines)
