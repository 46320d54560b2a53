"""Adapter throughput (issue 4): ``ImplicitAdapter.candidates`` (batched) against the
per-user loop a user would write by hand, on the same ALS model, with an equality check.

    .venv/bin/python -m benchmarks.bench_adapters                     # 20k users x 20k items
    .venv/bin/python -m benchmarks.bench_adapters --users 2000 --items 5000

The model is a real ``implicit`` ALS object whose factors are drawn at random (training is
not what is measured); ``user_items`` holds ``--seen`` random items per user. Timed:
``adapter.candidates(all users, n)`` and, on ``--loop-users`` users, the hand-written loop
``model.recommend(u, user_items[u], N=n)`` per user (scaled to all users). Also the item-item
path (``CosineRecommender`` with K=50), whose batched ``recommend`` in implicit is itself a
per-user loop.
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import scipy.sparse as sp
import threadpoolctl


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--users", type=int, default=20_000)
    parser.add_argument("--items", type=int, default=20_000)
    parser.add_argument("--factors", type=int, default=64)
    parser.add_argument("--seen", type=int, default=50)
    parser.add_argument("-n", type=int, default=100)
    parser.add_argument("--loop-users", type=int, default=1000)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)

    from implicit.cpu.als import AlternatingLeastSquares
    from implicit.nearest_neighbours import CosineRecommender
    from rerank.adapters import ImplicitAdapter

    rng = np.random.default_rng(args.seed)
    rows = np.repeat(np.arange(args.users), args.seen)
    cols = rng.integers(0, args.items, rows.size)
    user_items = sp.csr_matrix((np.ones(rows.size, np.float32), (rows, cols)), shape=(args.users, args.items))
    user_items.sum_duplicates()
    user_items.data[:] = 1.0
    with threadpoolctl.threadpool_limits(1, "blas"):
        model = AlternatingLeastSquares(factors=args.factors, num_threads=0)
    model.user_factors = rng.standard_normal((args.users, args.factors)).astype(np.float32)
    model.item_factors = rng.standard_normal((args.items, args.factors)).astype(np.float32)

    adapter = ImplicitAdapter(model, user_items)
    start = time.perf_counter()
    cands = adapter.candidates(n=args.n)
    batched = time.perf_counter() - start

    loop_users = min(args.loop_users, args.users)
    start = time.perf_counter()
    for u in range(loop_users):
        ids, scores = model.recommend(u, user_items[u], N=args.n)
    loop = (time.perf_counter() - start) * args.users / loop_users
    first = cands[cands["user_id"] == loop_users - 1]
    assert first["item_id"].tolist() == ids[scores > -np.finfo(np.float32).max].tolist()

    knn = CosineRecommender(K=50, num_threads=0)
    knn.fit(user_items, show_progress=False)
    knn_adapter = ImplicitAdapter(knn, user_items)
    start = time.perf_counter()
    knn_adapter.candidates(n=args.n)
    knn_batched = time.perf_counter() - start
    start = time.perf_counter()
    knn.recommend(np.arange(loop_users), user_items[:loop_users], N=args.n)
    knn_loop = (time.perf_counter() - start) * args.users / loop_users

    print(f"{args.users} users x {args.items} items, n={args.n}, ALS factors={args.factors}")
    print("| path | adapter (batched) | per-user loop (extrapolated) |")
    print("|---|---:|---:|")
    print(f"| ALS | {batched:.2f} s | {loop:.2f} s |")
    print(f"| Cosine item-item (K=50) | {knn_batched:.2f} s | {knn_loop:.2f} s (implicit's batch recommend) |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
