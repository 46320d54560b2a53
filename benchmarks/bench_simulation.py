"""Feedback-loop simulator benchmark (issue 11): wall and CPU time of the runs people make.

    .venv/bin/python -m benchmarks.bench_simulation                  # default run + per policy
    .venv/bin/python -m benchmarks.bench_simulation --scale headline # 5 seeds x 7 policies
    .venv/bin/python -m benchmarks.bench_simulation --scale large    # 20,000 users x 5,000 items
    .venv/bin/python -m benchmarks.bench_simulation --scale quick    # 10 rounds, each model once
    .venv/bin/python -m benchmarks.bench_simulation --json out.json

* ``default``: the single-seed default run (``rerank simulate`` without options: 1,000 users,
  100 rounds, ``organic``, ``topk``, ``calibrated``, ``calibrated-anchored``), once with the
  default worker processes (one per CPU) and once in-process; then every policy of the
  headline alone, in-process. Target: the default run under 60 s.
* ``headline``: the headline experiment (5 seeds × 7 policies, ``--jobs 2``). Target: under
  10 minutes on 2 cores.
* ``large``: 20,000 users × 5,000 items × 50 rounds (retrain every 5, 50 arrivals per round),
  ``topk`` and ``calibrated`` in-process.
* ``quick``: the default world for 10 rounds, in-process: ``topk`` with each model (``als``,
  ``popularity``, ``oracle``, ``position-tower``: every candidate path) and ``calibrated`` with
  ALS. A minute or two; for comparing two versions of the code on one machine, turn by turn.

CPU seconds count this process and its worker processes (``resource.getrusage``): on a shared
machine they show what the run itself costs. The load average is recorded at the start and
the end of every measurement. A tiny warm-up run first loads (or compiles) the numba
functions.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import time

from rerank.simulations.config import DEFAULT_POLICIES, HEADLINE_POLICIES, MODELS, RUN_PRESETS, SimConfig
from rerank.simulations.run import seed_list, simulate

SCALES = {
    "default": {},
    "headline": {},
    "quick": {"n_rounds": 10},
    "large": {"n_users": 20_000, "n_items": 5_000, "n_rounds": 50, "retrain_every": 5,
              "new_items_per_round": 50, "fresh_pool": 500},
}


def _cpu() -> float:
    own = resource.getrusage(resource.RUSAGE_SELF)
    kids = resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + kids.ru_utime + kids.ru_stime


def _load() -> float:
    return round(os.getloadavg()[0], 2) if hasattr(os, "getloadavg") else float("nan")


def measure(label: str, config: SimConfig, policies, seeds, jobs: int) -> dict:
    load = _load()
    start, cpu = time.perf_counter(), _cpu()
    simulate(config, policies, seeds, jobs=jobs)
    out = {"run": label, "policies": list(policies), "seeds": list(seeds), "jobs": jobs,
           "wall_seconds": round(time.perf_counter() - start, 1),
           "cpu_seconds": round(_cpu() - cpu, 1), "load_start": load, "load_end": _load()}
    print(f"  {label:<34} {out['wall_seconds']:8.1f} s wall {out['cpu_seconds']:8.1f} s cpu "
          f"(load {load} -> {out['load_end']})", flush=True)
    return out


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--scale", choices=tuple(SCALES), default="default")
    parser.add_argument("--json", help="write the results here")
    args = parser.parse_args(argv)
    start = time.perf_counter()
    simulate(SimConfig(n_users=50, n_items=200, n_rounds=2, n_candidates=20),
             ("organic", "calibrated"))
    warm = time.perf_counter() - start
    print(f"cpus: {os.cpu_count()}; load average at start: {_load()}; "
          f"warm-up (numba load/compile): {warm:.1f} s")
    config = SimConfig(**SCALES[args.scale])
    runs = []
    if args.scale == "default":
        runs.append(measure("default run, jobs = CPUs", config, DEFAULT_POLICIES, (0,), 0))
        runs.append(measure("default run, in-process", config, DEFAULT_POLICIES, (0,), 1))
        for policy in HEADLINE_POLICIES:
            runs.append(measure(f"one policy: {policy}", config, (policy,), (0,), 1))
    elif args.scale == "quick":
        for model in MODELS:
            runs.append(measure(f"topk, model {model}", config.with_(model=model), ("topk",), (0,), 1))
        runs.append(measure("calibrated, model als", config, ("calibrated",), (0,), 1))
    elif args.scale == "headline":
        seeds = seed_list(0, RUN_PRESETS["headline"]["n_seeds"])
        runs.append(measure("headline, jobs = 2", config, HEADLINE_POLICIES, seeds, 2))
    else:
        for policy in ("topk", "calibrated"):
            runs.append(measure(f"large: {policy}", config, (policy,), (0,), 1))
    results = {"cpus": os.cpu_count(), "warmup_seconds": round(warm, 1), "scale": args.scale,
               "settings": {k: v for k, v in config.to_dict().items()
                            if k in ("n_users", "n_items", "n_rounds", "slate_size",
                                     "retrain_every", "n_threads")},
               "runs": runs}
    if args.json:
        with open(args.json, "w") as fh:
            json.dump(results, fh, indent=2)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
