"""The kernel against the references over the issue-6 grid, plus the headline target cell.

    python -m benchmarks.bench_kernel            # full grid (a few minutes) + headline
    python -m benchmarks.bench_kernel --quick    # n=100 only

Every cell asserts IDENTICAL lists between the kernel (``rerank_arrays``), the NumPy incremental
greedy, the pure-Python dict-loop greedy and the plain Numba greedy (:mod:`benchmarks.references`).
User counts are scaled per cell so the kernel runs ~``--seconds`` per timing (best of 3).
Results go to ``benchmarks/results/kernel.{json,md}``.

Headline (issue 6 targets; n=100, k=10, G=20, 1-3 categories per item, Dirichlet targets):
≥ 150,000 users/s with 2 threads, ≥ 25× the NumPy incremental greedy, 2 threads ≥ 1.8× 1 thread.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

import numba
import numpy as np

from benchmarks.references import plain_numba_lists
from rerank.bench import (
    first_call_latency,
    format_table,
    kernel_lists,
    machine,
    make_workload,
    numpy_one_user,
    run_cell,
    run_reference,
)

RESULTS = Path(__file__).resolve().parent / "results"
GRID_N = (50, 100, 500, 1000)
GRID_K = (10, 20, 50)
GRID_G = (5, 20, 100)


def plain_head_ref(wl, k):
    """The plain Numba greedy on a tenth of the users (it is ~10× slower than the kernel)."""
    head = wl.head(max(64, wl.n_users // 10))
    return head, plain_numba_lists(head, k)


def grid(ns, ks, gs, seconds: float) -> list[dict]:
    rows = []
    for n in ns:
        for k in ks:
            for G in gs:
                row = run_cell(n, k, G, kernel_seconds=seconds, numpy_seconds=0.4, python_seconds=0.3)
                head, got = plain_head_ref(make_workload(row["users"], n, G), k)
                start = time.perf_counter()
                plain_numba_lists(head, k)
                row["plain_numba_users_s"] = head.n_users / (time.perf_counter() - start)
                _, positions = kernel_lists(head, k)
                row["plain_numba_identical"] = bool(np.array_equal(positions, got.ravel()))
                if not row["plain_numba_identical"]:
                    raise AssertionError(f"plain Numba greedy differs from the kernel (n={n}, k={k}, G={G})")
                rows.append(row)
                print(format_table([row]).splitlines()[-1], flush=True)
    return rows


def headline(n_users: int = 200_000, repeats: int = 5) -> dict:
    """The issue-6 target cell, measured longer (best of ``repeats``)."""
    wl = make_workload(n_users, 100, 20, seed=1)
    kernel_lists(wl.head(100), 10, n_threads=1)
    out = {"users": n_users}
    lists = None
    for t in (1, 2):
        if t > numba.config.NUMBA_NUM_THREADS:
            continue
        best = np.inf
        for _ in range(repeats):
            start = time.perf_counter()
            lists = kernel_lists(wl, 10, n_threads=t)
            best = min(best, time.perf_counter() - start)
        out[f"kernel_{t}t_users_s"] = n_users / best
    sub = wl.head(20_000)
    refs, rate, _ = run_reference(numpy_one_user, sub, 10, 3.0, 3, dense=wl.categories.toarray())
    out["numpy_users_s"] = rate
    expected = lists[1].reshape(n_users, 10)
    out["identical_numpy"] = all(refs[u] == expected[u].tolist() for u in range(len(refs)))
    plain_numba_lists(wl.head(10), 10)
    start = time.perf_counter()
    got = plain_numba_lists(sub, 10)
    out["plain_numba_users_s"] = sub.n_users / (time.perf_counter() - start)
    out["identical_plain_numba"] = bool(np.array_equal(got, expected[: sub.n_users]))
    best_t = "kernel_2t_users_s" if "kernel_2t_users_s" in out else "kernel_1t_users_s"
    out["ratio_numpy"] = out[best_t] / out["numpy_users_s"]
    out["ratio_plain_numba"] = out[best_t] / out["plain_numba_users_s"]
    if "kernel_2t_users_s" in out:
        out["speedup_2t"] = out["kernel_2t_users_s"] / out["kernel_1t_users_s"]
    out["targets"] = {
        "users_s_2t>=150000": out.get("kernel_2t_users_s", 0) >= 150_000,
        "ratio_numpy>=25": out["ratio_numpy"] >= 25,
        "speedup_2t>=1.8": out.get("speedup_2t", 0) >= 1.8,
    }
    return out


def headline_text(h: dict) -> str:
    return (
        f"headline n=100 k=10 G=20 ({h['users']:,} users): kernel 1 thread {h['kernel_1t_users_s']:,.0f} users/s, "
        f"2 threads {h.get('kernel_2t_users_s', float('nan')):,.0f} users/s "
        f"(×{h.get('speedup_2t', float('nan')):.2f}); "
        f"NumPy greedy {h['numpy_users_s']:,.0f} users/s (kernel ×{h['ratio_numpy']:,.0f}); plain Numba greedy "
        f"{h['plain_numba_users_s']:,.0f} users/s (kernel ×{h['ratio_plain_numba']:.1f}); identical lists: "
        f"NumPy {h['identical_numpy']}, plain Numba {h['identical_plain_numba']}; targets {h['targets']}"
    )


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="only n=100 (9 cells)")
    parser.add_argument("--n", type=int, nargs="+", help="only these candidate counts")
    parser.add_argument("--seconds", type=float, default=0.25, help="kernel time per timing and cell")
    parser.add_argument("--headline-users", type=int, default=200_000)
    parser.add_argument("--no-grid", action="store_true")
    args = parser.parse_args(argv)
    info = machine()
    print(f"machine: {info}", flush=True)
    result: dict = {"machine": info}
    result["first_call"] = first_call_latency()
    print(f"first call: {result['first_call']}", flush=True)
    result["headline"] = headline(args.headline_users)
    print(headline_text(result["headline"]), flush=True)
    if not args.no_grid:
        ns = args.n or ((100,) if args.quick else GRID_N)
        result["grid"] = grid(ns, GRID_K, GRID_G, args.seconds)
    result["machine"]["load_1min_end"] = round(os.getloadavg()[0], 2)
    RESULTS.mkdir(exist_ok=True)
    name = "kernel" if args.n is None else "kernel_n" + "_".join(map(str, args.n))
    (RESULTS / f"{name}.json").write_text(json.dumps(result, indent=2))
    md = [f"machine: {info}", "", headline_text(result["headline"]), "",
          f"first call: {result['first_call']}", ""]
    if "grid" in result:
        md.append(format_table(result["grid"]))
    (RESULTS / f"{name}.md").write_text("\n".join(md) + "\n")
    print("\n".join(md))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
