"""The end-to-end Spark pipeline (issue 19), ``bench_spark.py --pipeline``:

    history parquet -> ALS.fit -> SparkALSAdapter.candidates (seen items out) -> fit_spark
    -> rerank_spark -> parquet

all on the cluster (``local[N]`` here). Data: ``bench_spark.generate`` without candidates
(``--users`` users, every 20th cold, ``--history`` items each out of ``--items``, 1-3 of
``--categories`` categories per item). Timed steps, each materialised on its own so the
figures say where the time goes:

1. ``als_fit``: ``ALS(implicitPrefs=True, rank=--rank, maxIter=--als-iters).fit``;
2. ``candidates``: the adapter's top-``--n`` unseen items per user, written to parquet;
   ``candidates_keep_seen``: the same with ``exclude_seen=False`` to Spark's ``noop`` sink (no
   seen counts, no over-fetch, no anti-join: the difference is what the exclusion costs);
3. ``fit_spark`` on the history;
4. ``rerank_spark`` of the candidates parquet, written to parquet;
5. ``chained``: 2 + 4 as one job (candidates never written: what a production job runs).

Beside wall time, every step records the **CPU seconds** of the whole process tree (driver,
JVM, Python workers; from ``/proc``), because the machine is shared: wall time stretches with
other people's load, CPU time much less. The load average is printed with every figure.

Checks, on a sample of users (``user_id % --check-every == 0``): their candidates equal a
top-n recomputed with numpy from the collected ``userFactors`` / ``itemFactors`` (seen items
removed, ties by lower item id); the reranked rows equal ``CalibratedReranker.fit`` +
``rerank`` in process on the same candidates.
"""

from __future__ import annotations

import json
import os
import shutil
import time

import numpy as np
import pandas as pd

from rerank import CalibratedReranker

CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def tree_cpu_seconds(root: int | None = None) -> float:
    """User + system CPU seconds of ``root`` (default: this process) and every descendant,
    including children they have already reaped (``/proc/<pid>/stat`` fields 14-17)."""
    root = os.getpid() if root is None else root
    stats = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as handle:
                fields = handle.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        stats[int(entry)] = (int(fields[1]), sum(int(x) for x in fields[11:15]))
    children: dict[int, list[int]] = {}
    for pid, (ppid, _) in stats.items():
        children.setdefault(ppid, []).append(pid)
    total, stack = 0, [root]
    while stack:
        pid = stack.pop()
        total += stats.get(pid, (0, 0))[1]
        stack.extend(children.get(pid, []))
    return total / CLOCK_TICKS


def step(label: str, results: dict, func, load_average):
    cpu0, t0 = tree_cpu_seconds(), time.perf_counter()
    value = func()
    wall, cpu = time.perf_counter() - t0, tree_cpu_seconds() - cpu0
    results[label] = {"wall_s": round(wall, 1), "cpu_s": round(cpu, 1), "load": load_average()}
    print(f"  {label}: {wall:.1f} s wall, {cpu:.1f} s CPU   (load {load_average()})", flush=True)
    return value


def numpy_top_n(user_f: np.ndarray, item_ids: np.ndarray, item_f: np.ndarray, seen: set, n: int):
    """Reference: float64 scores, seen items dropped, order (score desc, item id asc)."""
    scores = item_f.astype(np.float64) @ user_f.astype(np.float64)
    keep = np.array([i not in seen for i in item_ids.tolist()])
    ids, vals = item_ids[keep], scores[keep]
    order = np.lexsort((ids, -vals))[:n]
    return ids[order], vals[order]


def check_sample(model, candidates: pd.DataFrame, history: pd.DataFrame, n: int) -> dict:
    """Sampled users' candidates vs numpy from the model's factors (items must match; scores
    within 1e-9 relative: numpy's BLAS sums in another order than the adapter)."""
    users = candidates["user_id"].unique()
    user_f = model.userFactors.filter(model.userFactors.id.isin(users.tolist())).toPandas()
    items = model.itemFactors.toPandas().sort_values("id")
    item_ids = items["id"].to_numpy()
    item_f = np.stack(items["features"].to_numpy())
    seen = history.groupby("user_id")["item_id"].agg(set)
    mismatched = 0
    for uid, feats in zip(user_f["id"], user_f["features"], strict=True):
        want_ids, want_scores = numpy_top_n(np.asarray(feats), item_ids, item_f, seen.get(uid, set()), n)
        got = candidates[candidates["user_id"] == uid].sort_values("rank")
        same = np.array_equal(got["item_id"].to_numpy(), want_ids) and np.allclose(
            got["score"].to_numpy(), want_scores, rtol=1e-9, atol=1e-12)
        mismatched += not same
    return {"users_checked": len(user_f), "candidates_mismatched_users": int(mismatched)}


def run(args, spark_session, load_average) -> dict:
    from pyspark.ml.recommendation import ALS
    from pyspark.sql import functions as F
    from rerank.adapters import SparkALSAdapter

    from benchmarks.bench_spark import generate
    from rerank.spark import fit_spark, rerank_spark

    results: dict = {"args": {k: str(v) for k, v in vars(args).items()}, "load_start": load_average()}
    data = args.workdir / f"pipeline_u{args.users}_i{args.items}_h{args.history}_s{args.seed}"
    print(f"data in {data}", flush=True)
    if not (data / "history.parquet").exists():
        generate(data, args.users, 1, args.items, args.history, args.categories, args.seed, with_candidates=False)
    out = args.workdir / "pipeline_out"
    shutil.rmtree(out, ignore_errors=True)
    spark = step("spark_start", results, lambda: spark_session(args.cores, args.partitions, args.memory),
                 load_average)
    history = spark.read.parquet(str(data / "history.parquet")).select(
        F.col("user_id").cast("int").alias("user_id"), F.col("item_id").cast("int").alias("item_id"))
    item_categories = spark.read.parquet(str(data / "item_categories.parquet"))
    results["history_rows"] = history.count()

    als = ALS(rank=args.rank, maxIter=args.als_iters, regParam=0.05, implicitPrefs=True, alpha=10.0,
              userCol="user_id", itemCol="item_id", ratingCol="weight", seed=args.seed)
    model = step("als_fit", results, lambda: als.fit(history.withColumn("weight", F.lit(1.0))), load_average)
    adapter = SparkALSAdapter(model)

    cand_path = str(out / "candidates.parquet")
    step("candidates", results, lambda: adapter.candidates(n=args.n, interactions=history)
         .write.parquet(cand_path), load_average)
    step("candidates_keep_seen", results, lambda: adapter.candidates(n=args.n, exclude_seen=False)
         .write.format("noop").mode("overwrite").save(), load_average)
    reranker = step("fit_spark", results, lambda: fit_spark(
        CalibratedReranker(k=args.k, lam=args.lam), history, item_categories), load_average)
    candidates = spark.read.parquet(cand_path)
    results["candidate_rows"] = candidates.count()
    step("rerank_spark", results, lambda: rerank_spark(reranker, candidates, position_col="rank")
         .write.parquet(str(out / "reranked.parquet")), load_average)
    step("chained", results, lambda: rerank_spark(
        reranker, adapter.candidates(n=args.n, interactions=history), position_col="rank")
         .write.parquet(str(out / "chained.parquet")), load_average)

    # ------------------------------------------------------------------ checks on a sample
    print("checks", flush=True)
    sample = F.col("user_id") % args.check_every == 0
    cand_sample = candidates.filter(sample).toPandas()
    hist_all = pd.read_parquet(data / "history.parquet")
    hist_sample = hist_all[hist_all["user_id"] % args.check_every == 0]
    results.update(check_sample(model, cand_sample, hist_sample, args.n))
    local = CalibratedReranker(k=args.k, lam=args.lam).fit(hist_all, pd.read_parquet(data / "item_categories.parquet"))
    ordered = cand_sample.sort_values(["user_id", "rank"], kind="stable").reset_index(drop=True)
    want = local.rerank(ordered[["user_id", "item_id", "score"]]).reset_index(drop=True)
    key = ["user_id", "rank"]
    for name in ("reranked", "chained"):
        got = spark.read.parquet(str(out / f"{name}.parquet")).filter(sample).toPandas()
        got = got.sort_values(key, kind="stable").reset_index(drop=True)
        results[f"{name}_equals_in_process"] = bool(
            len(got) == len(want) and (got["user_id"].astype(np.int64).to_numpy() == want["user_id"].to_numpy()).all()
            and (got["item_id"].astype(np.int64).to_numpy() == want["item_id"].to_numpy()).all()
            and (got["score"].to_numpy() == want["score"].to_numpy()).all()
            and (got["rank"].to_numpy() == want["rank"].to_numpy()).all()
        )
    results["sample_users"] = int(ordered["user_id"].nunique())
    spark.stop()
    results["load_end"] = load_average()
    print_table(results)
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(results, indent=1) + "\n")
    return results


def print_table(results: dict) -> None:
    print("\n| step | wall s | CPU s | load (1/5/15 min) |\n|---|---:|---:|---|")
    for key in ("spark_start", "als_fit", "candidates", "candidates_keep_seen", "fit_spark", "rerank_spark",
                "chained"):
        r = results[key]
        print(f"| {key} | {r['wall_s']:.1f} | {r['cpu_s']:.1f} | {r['load']} |")
    print(json.dumps(results, indent=1))


def add_arguments(parser) -> None:
    parser.add_argument("--pipeline", action="store_true", help="ALS -> candidates -> fit_spark -> rerank_spark")
    parser.add_argument("--n", type=int, default=100, help="--pipeline: candidates per user")
    parser.add_argument("--rank", type=int, default=16, help="--pipeline: ALS rank")
    parser.add_argument("--als-iters", type=int, default=5, help="--pipeline: ALS maxIter")
    parser.add_argument("--check-every", type=int, default=1000, help="--pipeline: check users with id %% this == 0")

