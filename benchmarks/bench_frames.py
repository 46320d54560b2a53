"""Frame API overhead: ``CalibratedReranker.rerank`` on a long frame vs the kernel alone.

    python -m benchmarks.bench_frames [--users 1000000] [--candidates 100]

Issue 6 target: 1M users × 100 candidates within 2× the kernel time. The kernel time is
``rerank_arrays`` on the same CSR arrays (item rows and target rows resolved beforehand), so
the difference is everything the frame API adds: validation (nulls, finite scores, duplicate
(user, item) pairs), grouping by user, id lookups, the output frame. The frame is grouped by
user, as a recommender writes it (the O(rows) path of :mod:`rerank.grouping`). Issue 16 adds
the **interleaved** frame: the same rows in a random order (each user's rows scattered over
the whole frame), timed against the same kernel time (target ≤ 2×; grouped ≤ 1.6×). Each layout
runs in its own fresh process (two 10⁸-row frames in one process distort each other's
allocations); in each, the kernel and the frame API alternate, best of 2.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

from rerank import CalibratedReranker
from rerank.bench import machine, make_workload
from rerank.engine.arrays import rerank_arrays

RESULTS = Path(__file__).resolve().parent / "results"


def build(n_users: int, n_candidates: int, seed: int = 0):
    wl = make_workload(n_users, n_candidates, 20, seed=seed)
    A = wl.categories
    item_categories = pd.DataFrame({"item_id": np.repeat(np.arange(A.shape[0]), np.diff(A.indptr)),
                                    "category": A.indices})
    rng = np.random.default_rng(seed + 1)
    history = pd.DataFrame({"user_id": np.repeat(np.arange(n_users), 5),
                            "item_id": rng.integers(0, A.shape[0], 5 * n_users)})
    candidates = pd.DataFrame({"user_id": np.repeat(np.arange(n_users), n_candidates),
                               "item_id": wl.items, "score": wl.scores})
    return wl, item_categories, history, candidates


def measure(n_users: int, n_candidates: int, threads: int | None = None, layout: str = "grouped") -> dict:
    """Kernel and frame API on one layout, in this process, timings interleaved, best of 2."""
    wl, item_categories, history, candidates = build(n_users, n_candidates)
    reranker = CalibratedReranker(k=10, lam=0.5, n_threads=threads).fit(history, item_categories)
    reranker.rerank(candidates.head(1000))  # compile / load outside the timing
    item_rows = reranker.item_rows(pd.Index(wl.items))
    target_rows, _ = reranker.target_rows(pd.Index(np.arange(n_users)))
    targets = reranker.targets_  # dense, built once outside the timing

    def kernel():
        return rerank_arrays(wl.indptr, item_rows, wl.scores, reranker.category_matrix_, targets, 10,
                             0.5, target_rows=target_rows, n_threads=threads)

    if layout == "interleaved":  # each user's rows scattered over the whole frame
        candidates = candidates.take(np.random.default_rng(7).permutation(len(candidates)))
    out = {"layout": layout, "users": n_users, "candidates": n_candidates, "rows": len(candidates),
           "load_1min_start": round(os.getloadavg()[0], 2)}
    kernel_s, frame_s = [], []
    for _ in range(2):
        start = time.perf_counter()
        result = kernel()
        kernel_s.append(time.perf_counter() - start)
        start = time.perf_counter()
        frame_out = reranker.rerank(candidates)
        frame_s.append(time.perf_counter() - start)
    out["kernel_s"], out["frame_s"] = min(kernel_s), min(frame_s)
    out["kernel_runs_s"], out["frame_runs_s"] = kernel_s, frame_s
    out["ratio"] = out["frame_s"] / out["kernel_s"]
    # an interleaved frame lists users in order of first appearance: compare user by user
    by_user = frame_out.sort_values(["user_id", "rank"], kind="stable") if layout == "interleaved" else frame_out
    items = result[1] if isinstance(result, tuple) else result.items  # (older trees return a tuple)
    out["same_items"] = bool(np.array_equal(by_user["item_id"].to_numpy(), items))
    out["load_1min_end"] = round(os.getloadavg()[0], 2)
    return out


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--users", type=int, default=1_000_000)
    parser.add_argument("--candidates", type=int, default=100)
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--layout", choices=["grouped", "interleaved", "both"], default="both",
                        help="both: each layout in its own fresh process, one after the other")
    parser.add_argument("--json-only", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    info = machine()
    if args.layout == "both":
        runs = []
        for layout in ("grouped", "interleaved"):
            argv_child = [sys.executable, "-m", "benchmarks.bench_frames", "--users", str(args.users),
                          "--candidates", str(args.candidates), "--layout", layout, "--json-only"]
            if args.threads is not None:
                argv_child += ["--threads", str(args.threads)]
            child = subprocess.run(argv_child, capture_output=True, text=True, check=True)
            runs.append(json.loads(child.stdout.strip().splitlines()[-1]))
    else:
        runs = [measure(args.users, args.candidates, args.threads, args.layout)]
    if args.json_only:
        print(json.dumps(runs[0]))
        return 0
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "frames.json").write_text(json.dumps({"machine": info, "runs": runs}, indent=2))
    for out in runs:
        print(f"frame API, {out['layout']}, {out['users']:,} users × {out['candidates']} candidates "
              f"({out['rows']:,} rows): kernel {out['kernel_s']:.2f} s, CalibratedReranker.rerank "
              f"{out['frame_s']:.2f} s (×{out['ratio']:.2f}); same items {out['same_items']}; "
              f"load {out['load_1min_start']} → {out['load_1min_end']}")
    print(info)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
