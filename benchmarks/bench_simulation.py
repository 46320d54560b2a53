"""Feedback-loop simulator benchmark (issue 5): wall time of ``simulate`` per policy.

    .venv/bin/python -m benchmarks.bench_simulation                 # default run, 4 policies
    .venv/bin/python -m benchmarks.bench_simulation --scale large   # 20,000 × 5,000 × 50
    .venv/bin/python -m benchmarks.bench_simulation --scale both --json out.json

Targets (2 cores): the default run (2,000 users, 1,500 items, 40 rounds, 10 slots) under
60 s; 20,000 users × 5,000 items × 50 rounds under 10 minutes. A tiny warm-up run first
loads (or compiles) the numba functions so the timings are the loop itself; the warm-up time
is reported too. Each policy is timed separately (a run is one independent loop per policy),
in wall-clock and in process CPU seconds (all threads): on a shared machine the CPU figure
shows what the run itself costs. The large scale retrains every 5 rounds and adds 50 items
per round (1 % of the catalogue, as the default run's 15 of 1,500).
"""

from __future__ import annotations

import argparse
import json
import os
import time

from rerank.simulations.config import SimConfig
from rerank.simulations.run import simulate

SCALES = {
    "default": {},
    "large": {"n_users": 20_000, "n_items": 5_000, "n_rounds": 50, "retrain_every": 5,
              "new_items_per_round": 50},
}


def time_scale(name: str, policies, model: str) -> dict:
    config = SimConfig(model=model, **SCALES[name])
    out = {"scale": name, "model": model, "n_users": config.n_users, "n_items": config.n_items,
           "n_rounds": config.n_rounds, "slots": config.slate_size, "policies": {}}
    total = total_cpu = 0.0
    for policy in policies:
        start, cpu_start = time.perf_counter(), time.process_time()
        simulate(config, (policy,))
        elapsed = time.perf_counter() - start
        cpu = time.process_time() - cpu_start
        out["policies"][policy] = {"wall_seconds": round(elapsed, 2), "cpu_seconds": round(cpu, 2)}
        total += elapsed
        total_cpu += cpu
        print(f"  {name:<8} {policy:<20} {elapsed:8.1f} s wall {cpu:8.1f} s cpu", flush=True)
    out["total_seconds"] = round(total, 2)
    out["total_cpu_seconds"] = round(total_cpu, 2)
    return out


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--scale", choices=("default", "large", "both"), default="default")
    parser.add_argument("--policy", action="append",
                        help="default: topk calibrated calibrated-debiased epsilon")
    parser.add_argument("--model", default="als")
    parser.add_argument("--json", help="write the results here")
    args = parser.parse_args(argv)
    policies = args.policy or ["topk", "calibrated", "calibrated-debiased", "epsilon"]
    start = time.perf_counter()
    simulate(SimConfig(n_users=50, n_items=200, n_rounds=2, n_candidates=20), ("calibrated",))
    warm = time.perf_counter() - start
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    print(f"cpus: {os.cpu_count()}; load average at start: {load:.1f}; "
          f"warm-up (numba load/compile): {warm:.1f} s")
    scales = ["default", "large"] if args.scale == "both" else [args.scale]
    results = {"cpus": os.cpu_count(), "load_average_at_start": load,
               "warmup_seconds": round(warm, 2), "runs": []}
    for name in scales:
        result = time_scale(name, policies, args.model)
        print(f"  {name:<8} {'all policies':<20} {result['total_seconds']:8.1f} s wall "
              f"{result['total_cpu_seconds']:8.1f} s cpu")
        results["runs"].append(result)
    if args.json:
        with open(args.json, "w") as fh:
            json.dump(results, fh, indent=2)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
