"""``make bench``: every kernel-side benchmark, results in ``benchmarks/results/``.

    python -m benchmarks.run            # grid + headline + first call, frame API, 10M-user memory
    python -m benchmarks.run --quick    # smaller: n=100 grid, 200k-user frame, 1M-user memory

The other benchmarks in this folder (Spark, adapters, apply) have their own entry points.
"""

from __future__ import annotations

import argparse

from benchmarks import bench_frames, bench_kernel, bench_memory


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args(argv)
    bench_kernel.main(["--quick"] if args.quick else [])
    bench_frames.main(["--users", "200000"] if args.quick else [])
    bench_memory.main(["--users", "1000000"] if args.quick else [])
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
