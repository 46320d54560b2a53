"""``refine="swap"`` on and off at the headline cell, in one run (issue 13).

    .venv/bin/python -m benchmarks.bench_refine                 # 200,000 users, best of 5
    .venv/bin/python -m benchmarks.bench_refine --users 50000 --repeats 3

The issue-6 headline cell (n = 100 candidates, k = 10, G = 20 categories, λ = 0.5, KL, uniform
rank weights; :func:`rerank.bench.make_workload`, seed 1) reranked through
:func:`rerank.rerank_arrays` with the default options (``refine=None``: the greedy and its
safeguard) and with ``refine="swap"`` (default swap cap), interleaved, with 1 and 2 numba
threads. Reported for each: users/s (wall clock, best of ``--repeats``) and **CPU time per
user** (``time.process_time`` over the call, all threads, best of ``--repeats``), which a busy
machine inflates far less than wall clock; the on/off ratios of both; the machine's load
average beside every figure; the swaps per user and cap hits; and a check that the refined
lists of the first ``--check-users`` users equal the pure-Python reference's.

Decision rule (issue 13, written before the run): ``refine="swap"`` becomes the default only
if its 1-thread CPU time per user is at most 1.5× the default's at this cell.
Results: ``benchmarks/results/refine.{json,md}``.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

import numba
import numpy as np

from rerank.bench import kernel_lists, machine, make_workload, python_one_user
from rerank.engine.refine import DEFAULT_MAX_SWAPS

RESULTS = Path(__file__).resolve().parent / "results"
MODES = {"off": {}, "on": {"refine": "swap"}}


def _timed(wl, k, threads, options):
    load = os.getloadavg()[0]
    wall, cpu = time.perf_counter(), time.process_time()
    kernel_lists(wl, k, n_threads=threads, **options)
    return time.perf_counter() - wall, time.process_time() - cpu, load


def reference_check(wl, k: int, n_users: int) -> bool:
    """The refined lists of the first users against the pure-Python reference
    (:func:`rerank.reference.python_greedy` with ``refine=True``, every objective from scratch)."""
    _, positions = kernel_lists(wl.head(n_users), k, refine="swap", max_swaps=None)
    got = positions.reshape(n_users, k)
    return all(python_one_user(wl, u, k, refine=True) == got[u].tolist() for u in range(n_users))


def run(n_users: int, repeats: int, check_users: int) -> dict:
    from rerank import rerank_arrays

    wl = make_workload(n_users, 100, 20, seed=1)
    k = 10
    for options in MODES.values():
        kernel_lists(wl.head(200), k, n_threads=1, **options)  # compile or load outside the timing
    out = {"users": n_users, "cell": {"n": 100, "k": k, "G": 20, "lambda": 0.5}, "max_swaps": DEFAULT_MAX_SWAPS}
    threads = [t for t in (1, 2) if t <= numba.config.NUMBA_NUM_THREADS]
    best = {(m, t): (np.inf, np.inf) for m in MODES for t in threads}
    loads = {(m, t): [] for m in MODES for t in threads}
    for _ in range(repeats):
        for t in threads:
            for mode, options in MODES.items():
                wall, cpu, load = _timed(wl, k, t, options)
                best[mode, t] = (min(best[mode, t][0], wall), min(best[mode, t][1], cpu))
                loads[mode, t].append(round(load, 2))
    for (mode, t), (wall, cpu) in best.items():
        out[f"{mode}_{t}t_users_s"] = n_users / wall
        out[f"{mode}_{t}t_cpu_us_per_user"] = cpu / n_users * 1e6
        out[f"{mode}_{t}t_load_1min"] = loads[mode, t]
    for t in threads:
        out[f"ratio_{t}t_wall"] = out[f"off_{t}t_users_s"] / out[f"on_{t}t_users_s"]
        out[f"ratio_{t}t_cpu"] = out[f"on_{t}t_cpu_us_per_user"] / out[f"off_{t}t_cpu_us_per_user"]
    result = rerank_arrays(wl.indptr, wl.items, wl.scores, wl.categories, wl.targets, k, 0.5, refine="swap")
    plain = rerank_arrays(wl.indptr, wl.items, wl.scores, wl.categories, wl.targets, k, 0.5)
    out["swaps_mean"] = float(result.swaps.mean())
    out["swaps_histogram"] = np.bincount(result.swaps).tolist()
    out["cap_hits"] = int(result.swap_cap_hit.sum())
    out["objective_mean_off"] = float(plain.objective.mean())
    out["objective_mean_on"] = float(result.objective.mean())
    out["improved_users"] = float(np.mean(result.objective > plain.objective))
    out["reference_check_users"] = check_users
    out["identical_to_reference"] = reference_check(wl, k, check_users)
    out["default_rule"] = {"ratio_1t_cpu<=1.5": out["ratio_1t_cpu"] <= 1.5}
    out["target"] = {"on_2t_users_s>=100000": out.get("on_2t_users_s", 0) >= 100_000}
    return out


def text(r: dict) -> str:
    lines = [f"headline cell n=100 k=10 G=20 λ=0.5, {r['users']:,} users, max_swaps={r['max_swaps']}", "",
             "| refine | threads | users/s (wall) | CPU µs/user | load (1-min, per repeat) |",
             "|---|---:|---:|---:|---|"]
    for t in (1, 2):
        for mode in MODES:
            if f"{mode}_{t}t_users_s" in r:
                lines.append(f"| {'swap' if mode == 'on' else 'None'} | {t} | {r[f'{mode}_{t}t_users_s']:,.0f} | "
                             f"{r[f'{mode}_{t}t_cpu_us_per_user']:.2f} | {r[f'{mode}_{t}t_load_1min']} |")
    lines += ["", ", ".join(f"on/off {key[6:]}: {r[key]:.2f}×" for key in r if key.startswith("ratio_")),
              f"swaps per user {r['swaps_mean']:.2f} (histogram {r['swaps_histogram']}), cap hits {r['cap_hits']}; "
              f"objective mean {r['objective_mean_off']:.4f} → {r['objective_mean_on']:.4f}, "
              f"{100 * r['improved_users']:.1f}% of users improved; refined lists of the first "
              f"{r['reference_check_users']} users identical to the pure-Python reference: "
              f"{r['identical_to_reference']}",
              f"default rule {r['default_rule']}; target {r['target']}"]
    return "\n".join(lines)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--users", type=int, default=200_000)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--check-users", type=int, default=30)
    parser.add_argument("--name", default="refine", help="results file name (benchmarks/results/NAME.{json,md})")
    args = parser.parse_args(argv)
    info = machine()
    result = {"machine": info, **run(args.users, args.repeats, args.check_users)}
    result["machine"]["load_1min_end"] = round(os.getloadavg()[0], 2)
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / f"{args.name}.json").write_text(json.dumps(result, indent=2))
    md = f"machine: {result['machine']}\n\n{text(result)}\n"
    (RESULTS / f"{args.name}.md").write_text(md)
    print(md)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
