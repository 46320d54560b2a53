"""``rerank apply`` benchmark (issue 8): wall time and peak memory of the CLI, run as a real
subprocess, on generated files.

    .venv/bin/python -m benchmarks.bench_apply                          # 100k users x 50, CSV and Parquet
    .venv/bin/python -m benchmarks.bench_apply --users 300000 --formats parquet --small-history

Data (numpy, seed 0): ``--users`` users with ``--candidates`` candidates each (item
``(o_u + 7 j) mod n_items``, normal scores), contiguous by user; a history of ``--history``
random (user, item) rows per user (``--small-history``: 1 000 rows in all, so that the peak is
the streaming part rather than ``fit``); 2 categories per item out of 20. Peak memory is the
``rerank apply`` child's own maximum resident set size (``os.wait4``). The files are generated
in a separate process and this one never imports pandas: a forked child's peak would otherwise
include the parent's pages.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def make_files(folder: Path, users: int, candidates: int, history: int, small_history: bool, formats) -> dict:
    import numpy as np
    import pandas as pd

    rng = np.random.default_rng(0)
    n_items = 5000
    items = np.arange(n_items)
    cats = pd.DataFrame({"item_id": np.repeat(items, 2), "category": rng.integers(0, 20, 2 * n_items)})
    n_hist = 1000 if small_history else users * history
    hist = pd.DataFrame({"user_id": rng.integers(0, users, n_hist), "item_id": rng.integers(0, n_items, n_hist)})
    u = np.repeat(np.arange(users), candidates)
    offsets = rng.integers(0, n_items, users)[:, None]
    it = ((offsets + np.arange(candidates)[None, :] * 7) % n_items).ravel()
    cand = pd.DataFrame({"user_id": u, "item_id": it, "score": rng.normal(size=u.size)})
    cats.drop_duplicates().to_parquet(folder / "cats.parquet")
    hist.to_parquet(folder / "hist.parquet")
    paths = {}
    if "parquet" in formats:
        cand.to_parquet(folder / "cand.parquet", row_group_size=1_000_000)
        paths["parquet"] = folder / "cand.parquet"
    if "csv" in formats:
        cand.to_csv(folder / "cand.csv", index=False)
        paths["csv"] = folder / "cand.csv"
    return paths


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--users", type=int, default=100_000)
    parser.add_argument("--candidates", type=int, default=50)
    parser.add_argument("--history", type=int, default=20, help="history rows per user")
    parser.add_argument("--small-history", action="store_true")
    parser.add_argument("--formats", default="parquet,csv")
    parser.add_argument("--k", type=int, default=10)
    parser.add_argument("--make-in", help=argparse.SUPPRESS)  # internal: generate the files here
    args = parser.parse_args(argv)
    formats = args.formats.split(",")
    if args.make_in:
        make_files(Path(args.make_in), args.users, args.candidates, args.history, args.small_history, formats)
        return 0
    script = Path(sys.executable).parent / "rerank"
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        subprocess.run([sys.executable, "-m", "benchmarks.bench_apply", "--make-in", tmp,
                        *(argv if argv is not None else sys.argv[1:])], check=True)
        paths = {fmt: folder / f"cand.{fmt}" for fmt in formats}
        print("| candidates | rows | seconds | peak RSS (MB) |\n|---|---|---|---|")
        for fmt, path in paths.items():
            cmd = [str(script), "apply", "--candidates", str(path), "--history", str(folder / "hist.parquet"),
                   "--item-categories", str(folder / "cats.parquet"), "--output", str(folder / "out.parquet"),
                   "--k", str(args.k), "--quiet"]
            start = time.perf_counter()
            with open(folder / "stderr.txt", "w+") as err:
                child = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=err)
                _, status, usage = os.wait4(child.pid, 0)
                child.returncode = os.waitstatus_to_exitcode(status)
                seconds = time.perf_counter() - start
                err.seek(0)
                text = err.read()
            if child.returncode:
                print(text, file=sys.stderr)
                return child.returncode
            print(f"| {fmt} | {args.users * args.candidates} | {seconds:.1f} | {usage.ru_maxrss / 1024:.0f} |")
            print(text.strip().splitlines()[-1], file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
