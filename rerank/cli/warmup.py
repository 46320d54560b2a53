"""``rerank warmup [--all]``: compile ahead of time into the on-disk cache (:mod:`rerank.warmup`)."""

from __future__ import annotations


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "warmup",
        help="compile the kernels ahead of time (container build, Spark executor start-up)",
        description="Compile the default path (or with --all every list builder and solver) into numba's "
        "on-disk cache, so later processes sharing the cache (NUMBA_CACHE_DIR) skip the compile. "
        "See docs/production.md.",
    )
    parser.add_argument("--all", action="store_true", dest="everything",
                        help="also quota mode, PM-2, the exact solver, other normalisations and divergences")
    parser.set_defaults(func=run)


def run(args) -> int:
    from rerank.warmup import cache_folder, warmup

    folder = cache_folder()
    print(f"numba cache: {folder or 'none writable: compiled in memory only (set NUMBA_CACHE_DIR)'}", flush=True)
    steps = warmup(args.everything, progress=lambda name, s: print(f"  {name}: {s:.2f} s", flush=True))
    total = sum(seconds for _, seconds in steps)
    print(f"warm-up done in {total:.2f} s", flush=True)
    return 0 if folder else 1
