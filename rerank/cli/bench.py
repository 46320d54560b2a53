"""``rerank bench``: the kernel against the NumPy and pure-Python greedy (:mod:`rerank.bench`)."""

from __future__ import annotations

import argparse
import json

from rerank.bench import first_call_latency, format_table, machine, run_cell


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "bench",
        help="time the kernel against the NumPy and pure-Python greedy (identical lists checked)",
        description=(
            "Time rerank_arrays against a NumPy incremental greedy and a pure-Python dict-loop greedy "
            "on the same synthetic inputs (items with 1-3 categories, Dirichlet targets, lam=0.5, KL), "
            "checking identical lists. Default: the issue-6 target cell n=100, k=10, G=20. The full grid "
            "and the memory benchmarks: `make bench` (python -m benchmarks.run) from a source checkout."
        ),
    )
    parser.add_argument("--n", type=int, nargs="+", default=[100], help="candidates per user (default 100)")
    parser.add_argument("--k", type=int, nargs="+", default=[10], help="list length (default 10)")
    parser.add_argument("--G", type=int, nargs="+", default=[20], help="number of categories (default 20)")
    parser.add_argument("--threads", type=int, nargs="+", default=[1, 2], help="numba thread counts (default 1 2)")
    parser.add_argument("--seconds", type=float, default=0.3, help="target kernel time per cell (default 0.3)")
    parser.add_argument("--no-python", action="store_true", help="skip the pure-Python reference")
    parser.add_argument("--ties", action="store_true", help="tie-heavy inputs (rounded scores, few category patterns)")
    parser.add_argument("--first-call", action="store_true", help="also measure first-call (compile) latency")
    parser.add_argument("--json", metavar="PATH", help="also write the rows and the machine as JSON")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    info = machine()
    print(f"machine: {info}", flush=True)
    rows = []
    for n in args.n:
        for k in args.k:
            for G in args.G:
                row = run_cell(n, k, G, kernel_seconds=args.seconds, threads=tuple(args.threads),
                               ties=args.ties, run_python=not args.no_python)
                rows.append(row)
                print(format_table([row]).splitlines()[-1], flush=True)
    print()
    print(format_table(rows))
    result = {"machine": info, "rows": rows}
    if args.first_call:
        result["first_call"] = first_call_latency()
        print(f"first call: {result['first_call']}")
    if args.json:
        with open(args.json, "w") as fh:
            json.dump(result, fh, indent=2)
    return 0
