"""Spark scale-out benchmark (issue 7): ``rerank_spark`` on ``local[N]`` against in-process
``CalibratedReranker.rerank`` on the same candidates, with an exact equality check.

    .venv/bin/python -m benchmarks.bench_spark                       # 1M users x 100 candidates
    .venv/bin/python -m benchmarks.bench_spark --users 50000 --quick  # a smoke run
    .venv/bin/python -m benchmarks.bench_spark --pipeline --users 1000000  # ALS -> ... -> parquet

``--pipeline`` runs the end-to-end pipeline of issue 19 instead (``benchmarks/spark_pipeline.py``).

Data (generated with numpy, written to parquet once, read by both sides): ``--users`` users,
each with ``--candidates`` distinct candidate items out of ``--items`` (item ``(o_u + 7919 j)
mod n_items``), uniform random scores, a history of ``--history`` items per user (every 20th
user is cold), each item in 1-3 of ``--categories`` categories.

Timed: in-process read + rerank (numba on all cores); Spark read + shuffle + rerank + parquet
write (``by="bucket"``), then the output is read back and compared row for row with the
in-process output; then ``by="partition"`` (no shuffle) and ``rerank_parquet_spark`` (Parquet
in, Parquet out, the rows never through the JVM), each compared with the in-process output and
given as a share of the in-process rerank time (``*_share_of_inprocess``). On a subset of
users (``--subset``) both groupings (``by="bucket"`` and ``by="user"``) are timed with Spark's
``noop`` sink, to choose the default. ``fit_spark`` is timed against ``fit`` on the history.
Results go to stdout (markdown) and ``--json``.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from benchmarks import spark_pipeline
from rerank import CalibratedReranker
from rerank.spark_partition import check_one_partition_per_user

STRIDE = 7919  # prime: (o + STRIDE*j) mod n_items is distinct for j < n_items when gcd = 1


def generate(workdir: Path, n_users: int, n_cand: int, n_items: int, n_hist: int, n_cat: int, seed: int,
             with_candidates: bool = True) -> None:
    """Write candidates (unless ``with_candidates`` is False), history and item_categories
    parquet files (chunks of 100k users)."""
    if np.gcd(STRIDE, n_items) != 1 or n_cand > n_items:
        raise ValueError("n_items must be coprime with 7919 and >= candidates")
    rng = np.random.default_rng(seed)
    workdir.mkdir(parents=True, exist_ok=True)
    cats_per_item = rng.integers(1, 4, n_items)
    pairs = [(i, f"c{g:02d}") for i in range(n_items) for g in rng.choice(n_cat, cats_per_item[i], replace=False)]
    pd.DataFrame(pairs, columns=["item_id", "category"]).to_parquet(workdir / "item_categories.parquet")
    cand_writer = hist_writer = None
    step = 100_000
    for start in range(0, n_users, step):
        users = np.arange(start, min(start + step, n_users), dtype=np.int64)
        offsets = rng.integers(0, n_items, users.size)
        j = np.arange(n_cand, dtype=np.int64)
        items = (offsets[:, None] + STRIDE * j[None, :]) % n_items
        cand = pa.table(
            {
                "user_id": np.repeat(users, n_cand),
                "item_id": items.ravel(),
                "score": rng.random(users.size * n_cand),
            }
        )
        warm = users[users % 20 != 7]
        h_items = (rng.integers(0, n_items, warm.size)[:, None] + 31 * np.arange(n_hist)[None, :]) % n_items
        hist = pa.table({"user_id": np.repeat(warm, n_hist), "item_id": h_items.ravel()})
        if cand_writer is None:
            cand_writer = pq.ParquetWriter(workdir / "candidates.parquet", cand.schema)
            hist_writer = pq.ParquetWriter(workdir / "history.parquet", hist.schema)
        if with_candidates:
            cand_writer.write_table(cand, row_group_size=1_000_000)
        hist_writer.write_table(hist, row_group_size=1_000_000)
    cand_writer.close()
    hist_writer.close()
    if not with_candidates:
        (workdir / "candidates.parquet").unlink()


def load_average() -> str:
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


def spark_session(cores: int, partitions: int, memory: str, arrow_batch: int | None = None):
    from pyspark.sql import SparkSession

    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    session = (
        SparkSession.builder.master(f"local[{cores}]")
        .appName("rerank-bench")
        .config("spark.ui.enabled", "false")
        .config("spark.driver.host", "127.0.0.1")
        .config("spark.driver.bindAddress", "127.0.0.1")
        .config("spark.driver.memory", memory)
        .config("spark.sql.shuffle.partitions", str(partitions))
        .config("spark.ui.showConsoleProgress", "false")
        .config("spark.sql.execution.arrow.maxRecordsPerBatch", str(arrow_batch or 10_000))
        .getOrCreate()
    )
    session.sparkContext.setLogLevel("ERROR")
    return session


def timed(label: str, results: dict, func):
    t0 = time.perf_counter()
    value = func()
    results[label] = round(time.perf_counter() - t0, 2)
    print(f"  {label}: {results[label]:.2f} s   (load {load_average()})", flush=True)
    return value


def shuffle_only(sdf, n_buckets: int) -> None:
    """The shuffle and the Arrow transfer of ``rerank_spark`` without the reranking (each bucket
    returns 10 rows), to show how much of the Spark time is Spark's own."""
    from pyspark.sql import functions as F

    from rerank.spark import BUCKET_COLUMN, POSITION_COLUMN

    rows = sdf.select("user_id", "item_id", "score", F.monotonically_increasing_id().alias(POSITION_COLUMN))
    bucket = F.pmod(F.xxhash64("user_id"), F.lit(n_buckets))
    rows.withColumn(BUCKET_COLUMN, bucket).groupBy(BUCKET_COLUMN).applyInPandas(
        lambda frame: frame[["user_id", "item_id", "score"]].head(10), "user_id long, item_id long, score double"
    ).write.format("noop").mode("overwrite").save()


def rerank_in_process(reranker, path: Path, results: dict) -> pd.DataFrame:
    candidates = timed("inprocess_read_s", results, lambda: pd.read_parquet(path))
    results["rows"] = len(candidates)
    return timed("inprocess_rerank_s", results, lambda: reranker.rerank(candidates))


def _nothing(batches):
    """A mapInPandas function that reads every Arrow batch into pandas and returns no rows:
    what the no-shuffle job costs before any reranking."""
    for batch in batches:
        yield batch.head(0)


def _no_rows(batches):
    """The same through ``mapInArrow``: Arrow record batches reach Python, no pandas at all."""
    for batch in batches:
        yield batch.slice(0, 0)


def sorted_rows(frame: pd.DataFrame) -> pd.DataFrame:
    return frame.sort_values(["user_id", "rank"], kind="stable").reset_index(drop=True)[
        ["user_id", "item_id", "score", "rank"]
    ]


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--users", type=int, default=1_000_000)
    parser.add_argument("--candidates", type=int, default=100)
    parser.add_argument("--items", type=int, default=20_000)
    parser.add_argument("--history", type=int, default=20)
    parser.add_argument("--categories", type=int, default=20)
    parser.add_argument("--k", type=int, default=10)
    parser.add_argument("--lam", type=float, default=0.5)
    parser.add_argument("--cores", type=int, default=2, help="local[N] and numba threads in process")
    parser.add_argument("--partitions", type=int, default=16, help="spark.sql.shuffle.partitions")
    parser.add_argument("--buckets", type=int, default=64, help="n_buckets for by='bucket'")
    parser.add_argument("--subset", type=int, default=5_000, help="users for the bucket-vs-user comparison")
    parser.add_argument("--memory", default="4g", help="spark.driver.memory")
    parser.add_argument("--arrow-batch", type=int, default=None,
                        help="spark.sql.execution.arrow.maxRecordsPerBatch (Spark's default: 10,000)")
    parser.add_argument("--workdir", type=Path, default=Path("/tmp/rerank-bench-spark"))
    parser.add_argument("--json", type=Path, default=None)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--bucket-sweep", type=lambda v: [int(x) for x in v.split(",")], default=[],
                        help="also time these n_buckets (noop sink) and the shuffle alone, e.g. 8,64,512")
    parser.add_argument("--quick", action="store_true", help="skip fit_spark and the by='user' comparison")
    parser.add_argument("--partition-breakdown", action="store_true",
                        help="time by='partition' without its check job, the check alone, and reading + Arrow alone")
    spark_pipeline.add_arguments(parser)
    args = parser.parse_args(argv)
    if args.pipeline:
        results = spark_pipeline.run(args, spark_session, load_average)
        checks = ("reranked_equals_in_process", "chained_equals_in_process")
        return 0 if all(results[c] for c in checks) and not results["candidates_mismatched_users"] else 1

    results: dict = {"args": {k: str(v) for k, v in vars(args).items()}, "load_start": load_average()}
    data = args.workdir / f"u{args.users}_c{args.candidates}_i{args.items}_s{args.seed}"
    print(f"data in {data}", flush=True)
    if not (data / "candidates.parquet").exists():
        timed("generate_s", results, lambda: generate(
            data, args.users, args.candidates, args.items, args.history, args.categories, args.seed))

    # ---------------------------------------------------------------- in process
    print("in process", flush=True)
    history = pd.read_parquet(data / "history.parquet")
    item_categories = pd.read_parquet(data / "item_categories.parquet")
    reranker = timed("fit_s", results, lambda: CalibratedReranker(k=args.k, lam=args.lam, n_threads=args.cores).fit(
        history, item_categories))
    local_in_order = rerank_in_process(reranker, data / "candidates.parquet", results)
    local_out = sorted_rows(local_in_order)

    # ---------------------------------------------------------------- Spark
    print(f"Spark local[{args.cores}]", flush=True)
    spark = timed("spark_start_s", results,
                  lambda: spark_session(args.cores, args.partitions, args.memory, args.arrow_batch))
    out_dir = args.workdir / "spark_out.parquet"
    shutil.rmtree(out_dir, ignore_errors=True)
    sdf = spark.read.parquet(str(data / "candidates.parquet"))
    timed("spark_rerank_write_s", results, lambda: reranker.rerank_spark(
        sdf, by="bucket", n_buckets=args.buckets).write.parquet(str(out_dir)))
    spark_out = sorted_rows(pd.read_parquet(out_dir))
    results["spark_equals_inprocess"] = bool(spark_out.equals(local_out))
    print(f"  Spark output equals in-process output: {results['spark_equals_inprocess']}", flush=True)
    del spark_out

    # no shuffle: the generated parquet's row groups (1M rows = 10,000 users of 100 candidates)
    # hold whole users, so each user lies in one partition, contiguously (rerank.spark_partition)
    out_dir = args.workdir / "spark_out_partition.parquet"
    shutil.rmtree(out_dir, ignore_errors=True)
    timed("spark_partition_write_s", results, lambda: reranker.rerank_spark(
        spark.read.parquet(str(data / "candidates.parquet")), by="partition").write.parquet(str(out_dir)))
    results["spark_partition_equals_inprocess"] = bool(sorted_rows(pd.read_parquet(out_dir)).equals(local_out))
    print(f"  by='partition' output equals in-process output: {results['spark_partition_equals_inprocess']}",
          flush=True)
    # Parquet in, Parquet out: Spark schedules the row groups, the Python workers read and write
    # the files themselves (rerank.spark_files): no rows through the JVM
    out_dir = args.workdir / "spark_out_files.parquet"
    shutil.rmtree(out_dir, ignore_errors=True)
    timed("spark_parquet_files_s", results, lambda: reranker.rerank_parquet_spark(
        spark, str(data / "candidates.parquet"), str(out_dir)))
    results["spark_parquet_files_equals_inprocess"] = bool(pd.read_parquet(out_dir).equals(local_in_order))
    print(f"  rerank_parquet_spark output equals in-process output, in order: "
          f"{results['spark_parquet_files_equals_inprocess']}", flush=True)
    for name in ("spark_rerank_write_s", "spark_partition_write_s", "spark_parquet_files_s"):
        results[f"{name[:-2]}_share_of_inprocess"] = round(results["inprocess_rerank_s"] / results[name], 3)
    del local_out, local_in_order
    if args.partition_breakdown:  # where the no-shuffle job's time goes, each part on the noop sink
        fresh = spark.read.parquet(str(data / "candidates.parquet"))
        timed("partition_noop_s", results, lambda: reranker.rerank_spark(
            fresh, by="partition").write.format("noop").mode("overwrite").save())
        timed("partition_nocheck_noop_s", results, lambda: reranker.rerank_spark(
            fresh, by="partition", check_partitions=False).write.format("noop").mode("overwrite").save())
        timed("partition_check_only_s", results, lambda: check_one_partition_per_user(fresh))
        schema = "user_id long, item_id long, score double"
        timed("read_arrow_only_s", results, lambda: fresh.mapInPandas(
            _nothing, schema).write.format("noop").mode("overwrite").save())
        timed("read_arrow_no_pandas_s", results, lambda: fresh.mapInArrow(
            _no_rows, schema).write.format("noop").mode("overwrite").save())
        timed("jvm_read_only_s", results, lambda: fresh.write.format("noop").mode("overwrite").save())

    for n_buckets in args.bucket_sweep:
        timed(f"buckets_{n_buckets}_s", results, lambda n=n_buckets: reranker.rerank_spark(
            sdf, by="bucket", n_buckets=n).write.format("noop").mode("overwrite").save())
    if args.bucket_sweep:
        timed("shuffle_only_s", results, lambda: shuffle_only(sdf, args.buckets))

    subset = sdf.filter(sdf.user_id < args.subset)
    if not args.quick:
        for by in ("bucket", "user"):
            timed(f"subset_{by}_s", results, lambda by=by: reranker.rerank_spark(
                subset, by=by, n_buckets=args.buckets).write.format("noop").mode("overwrite").save())
        print("fit_spark", flush=True)
        h_sdf = spark.read.parquet(str(data / "history.parquet"))
        ic_sdf = spark.read.parquet(str(data / "item_categories.parquet"))
        fitted = timed("fit_spark_s", results, lambda: CalibratedReranker(k=args.k, lam=args.lam).fit_spark(
            h_sdf, ic_sdf))
        users = reranker.users_
        results["fit_spark_max_abs_diff"] = float(np.abs(
            fitted.target_distributions(users).to_numpy() - reranker.target_distributions(users).to_numpy()).max())
    spark.stop()
    results["load_end"] = load_average()

    rows = results["rows"]
    print("\n| step | seconds | rows/s | of in-process throughput |\n|---|---:|---:|---:|")
    for key in ("inprocess_rerank_s", "spark_rerank_write_s", "spark_partition_write_s", "spark_parquet_files_s"):
        share = results["inprocess_rerank_s"] / results[key]
        print(f"| {key} | {results[key]:.1f} | {rows / results[key]:,.0f} | {share:.0%} |")
    if not args.quick:
        n_sub = min(args.subset, args.users) * args.candidates
        for key in ("subset_bucket_s", "subset_user_s"):
            print(f"| {key} ({args.subset} users) | {results[key]:.1f} | {n_sub / results[key]:,.0f} |")
        print(f"| fit_s / fit_spark_s | {results['fit_s']:.1f} / {results['fit_spark_s']:.1f} | |")
    print(json.dumps(results, indent=1))
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(results, indent=1) + "\n")
    return 0 if results["spark_equals_inprocess"] and results["spark_partition_equals_inprocess"] else 1


if __name__ == "__main__":
    raise SystemExit(main())
