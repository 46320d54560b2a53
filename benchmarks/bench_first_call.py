"""First-call latency beside a baseline checkout, in one run (issue 16 item 1).

    .venv/bin/python -m benchmarks.bench_first_call --baseline /tmp/scale-base --repeat 2

For each code tree (the baseline, e.g. a worktree at the issue's starting commit, and this
one, each put first on ``PYTHONPATH`` of a fresh interpreter) and each repeat, in alternation so
both see the same machine load:

* **cold** — an empty ``NUMBA_CACHE_DIR``: import, then the first ``rerank_arrays`` call of the
  default path (greedy, KL, uniform weights) on a tiny input, which compiles;
* **warm** — a second fresh interpreter on the same cache: the same call loads machine code.

Each figure is the wall seconds of the call and the child's CPU seconds (``process_time``:
the compile is single-threaded, so CPU seconds are what a quiet machine would show as wall
time, and they move far less with the load). The 1-minute load average is recorded beside
every run. Results: stdout (markdown) and ``--json``.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

CHILD = (
    "import time; w0 = time.perf_counter(); c0 = time.process_time()\n"
    "import numpy as np, scipy.sparse as sp\n"
    "from rerank import rerank_arrays\n"
    "w1 = time.perf_counter(); c1 = time.process_time()\n"
    "A = sp.csr_matrix(np.eye(3))\n"
    "rerank_arrays(np.array([0, 3]), np.arange(3), np.array([.3, .2, .1]), A, np.full((1, 3), 1/3), 2, 0.5)\n"
    "w2 = time.perf_counter(); c2 = time.process_time()\n"
    "import json, rerank; print(json.dumps({'file': rerank.__file__, 'import_s': w1 - w0, 'import_cpu_s': c1 - c0,\n"
    "    'call_s': w2 - w1, 'call_cpu_s': c2 - c1}))\n"
)


def run_child(tree: Path, cache: str) -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith("NUMBA_")}
    env.update(PYTHONPATH=str(tree), NUMBA_CACHE_DIR=cache)
    load = os.getloadavg()[0]
    done = subprocess.run([sys.executable, "-c", CHILD], env=env, capture_output=True, text=True, check=True,
                          cwd=tempfile.gettempdir())
    result = json.loads(done.stdout.strip().splitlines()[-1])
    if not result["file"].startswith(str(tree)):
        raise RuntimeError(f"{tree}: the child imported {result['file']}")
    result["load_1min"] = round(load, 2)
    return result


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--baseline", type=Path, required=True, help="a checkout of the code to compare with")
    parser.add_argument("--repeat", type=int, default=2)
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args(argv)
    trees = {"baseline": args.baseline.resolve(), "this": Path(__file__).resolve().parents[1]}
    runs: dict = {name: {"cold": [], "warm": []} for name in trees}
    for _ in range(args.repeat):
        for name, tree in trees.items():
            with tempfile.TemporaryDirectory() as cache:
                for state in ("cold", "warm"):
                    result = run_child(tree, cache)
                    runs[name][state].append(result)
                    print(f"{name} {state}: call {result['call_s']:.2f} s wall, {result['call_cpu_s']:.2f} s CPU "
                          f"(load {result['load_1min']})", flush=True)
    summary = {}
    print("\n| tree | state | first call wall (s) | first call CPU (s) | import wall (s) | load (1 min) |")
    print("|---|---|---|---|---|---|")
    for name in trees:
        for state in ("cold", "warm"):
            rows = runs[name][state]
            best = {key: min(r[key] for r in rows) for key in ("call_s", "call_cpu_s", "import_s")}
            summary[f"{name}_{state}"] = best
            loads = ", ".join(str(r["load_1min"]) for r in rows)
            print(f"| {name} | {state} | {best['call_s']:.2f} | {best['call_cpu_s']:.2f} | {best['import_s']:.2f} "
                  f"| {loads} |")
    ratio_cpu = summary["this_cold"]["call_cpu_s"] / summary["baseline_cold"]["call_cpu_s"]
    ratio_wall = summary["this_cold"]["call_s"] / summary["baseline_cold"]["call_s"]
    print(f"\ncold first call, this / baseline (best of {args.repeat}): CPU {ratio_cpu:.2f}, wall {ratio_wall:.2f}")
    if args.json:
        args.json.write_text(json.dumps({"trees": {k: str(v) for k, v in trees.items()}, "runs": runs,
                                         "best": summary, "cold_ratio_cpu": ratio_cpu, "cold_ratio_wall": ratio_wall},
                                        indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
