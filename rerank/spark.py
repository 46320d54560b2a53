"""Calibrated reranking and target fitting on Spark (issue 7).

``rerank_spark(reranker, candidates)`` returns the rows ``reranker.rerank`` returns for the
same candidates (docs/design.md §5 columns ``user_id, item_id, score, rank``), computed on the
cluster:

* the fitted reranker (targets ``p(g|u)``, the users index, the item × category matrix and the
  item index) is copied with ``n_threads=1`` and **broadcast once** per call; every Python
  worker unpickles it once and keeps it for all the groups it handles;
* candidates are shuffled by user: ``groupBy(bucket).applyInPandas`` with
  ``bucket = pmod(xxhash64(user_id), n_buckets)`` (default; one Python call reranks many users
  at once), or ``groupBy("user_id").applyInPandas`` with ``by="user"`` (one call per user);
* each pandas group goes through ``CalibratedReranker.rerank`` itself — the same frame code
  path, validation and Numba kernel as in process — single-threaded, so Spark's task slots
  are the only parallelism (no core oversubscription);
* the tie rule's "earlier position in the input" needs the input order, which a shuffle does
  not keep: each row carries its position (``monotonically_increasing_id()`` of the input
  DataFrame, or a column you name with ``position_col``) and each group is put back in that
  order before reranking.

``fit_spark(reranker, history, item_categories)`` computes Steck's eq. 1 on the cluster:

    p(g|u) = Σ_{i∈H_u} w_ui p(g|i) / Σ_{i∈H_u} Σ_g w_ui p(g|i)

by joining the history (``w_ui``: the ``weight`` column, 1 if absent, times the recency factor
``0.5 ** ((t_max(u) - t_ui) / half_life)``) with ``p(g|i)`` and summing per (user, category);
only the per-(user, category) masses come back to the driver, where they are normalised and
stored exactly as ``fit`` does (:mod:`rerank.targets`; same cold-user population fallback).

pyspark is imported inside the functions: ``import rerank`` never needs it.
"""

from __future__ import annotations

import copy
import dataclasses
from collections.abc import Mapping

import numpy as np
import pandas as pd
import scipy.sparse as sp

from rerank import schemas
from rerank.distributions import item_categories_from_frame, target_blocks
from rerank.errors import InputError, InputTypeError
from rerank.params import check_bool, check_choice, check_whole
from rerank.spark_report import (
    REPORT_COLUMN,
    REPORT_COLUMNS,
    REPORT_N_ROWS,
    REPORT_REASON,
    REPORT_SHORT,
    REPORT_SKIPPED,
    SparkRerankReport,
    report_rows,
    with_report,
)
from rerank.targets import TargetBuilder

POSITION_COLUMN = "__rerank_position"
BUCKET_COLUMN = "__rerank_bucket"
GROUPINGS = ("bucket", "user", "partition")


# ---------------------------------------------------------------------------- helpers
def _fields(frame, what: str) -> dict:
    from pyspark.sql import DataFrame

    if not isinstance(frame, DataFrame):
        raise InputTypeError(f"{what} must be a pyspark.sql.DataFrame, got {type(frame).__name__}")
    return {field.name: field for field in frame.schema.fields}


def _require_columns(fields: dict, columns, what: str) -> None:
    missing = [c for c in columns if c not in fields]
    if missing:
        raise InputError(f"{what} is missing column(s) {missing}; it has {list(fields)}")


def _require_numeric(fields: dict, column: str, what: str) -> None:
    from pyspark.sql.types import BooleanType, DecimalType, NumericType

    dtype = fields[column].dataType
    if isinstance(dtype, BooleanType) or not isinstance(dtype, NumericType | DecimalType):
        raise InputTypeError(f"{what} column '{column}' must be numeric, got {dtype.simpleString()}")


def worker_reranker(reranker):
    """The copy of a fitted reranker that is broadcast: one kernel thread per Spark task,
    a λ mapping turned into a Series once, no report of an earlier call (nor the lookup caches, which
    ``CalibratedReranker.__getstate__`` leaves out of every copy), and the item table
    without its category matrix (the workers read ``category_matrix_``, the same matrix plus
    one row: it is not shipped twice). The targets travel in their compact storage
    (:mod:`rerank.targets`)."""
    reranker.check_fitted()
    local = copy.copy(reranker)
    local.n_threads = 1
    if isinstance(local.lam, Mapping):
        local.lam = pd.Series(local.lam, dtype=np.float64)
    local.__dict__.pop("report_", None)
    table = local.item_categories_
    local.item_categories_ = dataclasses.replace(table, matrix=sp.csr_matrix((0, table.matrix.shape[1])))
    return local


def rerank_group(
    reranker, frame: pd.DataFrame, position_col: str, on_invalid: str = "raise", shown: pd.DataFrame | None = None,
    explain: bool = False,
) -> pd.DataFrame:
    """Rerank one pandas group (one user or one bucket of users) in input order; ``shown``: the
    group's shown items with their shown order in ``rank``."""
    positions = frame[position_col].to_numpy()
    if positions.size > 1 and not np.all(positions[1:] >= positions[:-1]):  # Spark sorted it already, usually
        frame = frame.take(np.argsort(positions, kind="stable"))
    return reranker.rerank(frame, on_invalid=on_invalid, shown=shown, explain=explain)


def id_kind_of(dtype) -> str | None:
    """The id kind (``rerank.schemas``) of a Spark column type, if it is an id type."""
    from pyspark.sql.types import IntegralType, StringType

    if isinstance(dtype, StringType):
        return schemas.ID_STRING
    if isinstance(dtype, IntegralType):
        return schemas.ID_INTEGER
    return None


# ---------------------------------------------------------------------------- rerank
def _check_id_types(reranker, fields: dict) -> None:
    """Fail before the job starts when the candidates' id types cannot match the fitted ids
    (the workers would raise the same error, later)."""
    kinds = getattr(reranker, "id_kinds_", None) or {}
    for column, fitted_from in (("user_id", "the history's user_id"), ("item_id", "the item_categories' item_id")):
        kind = id_kind_of(fields[column].dataType)
        if kind is not None and column in kinds:
            schemas.check_same_id_kind(kind, f"candidates column '{column}'", kinds[column], fitted_from)


def output_schema(candidates, explain: bool = False, auto_lam: bool = False, report: bool = False):
    """``user_id, item_id`` with the input types, ``score double``, ``rank long`` (+ with
    ``explain``: ``input_rank long, score_gain double, calibration_gain double, reason string``;
    + with ``lam="auto"``: ``lam double``; + with ``report``: the report columns
    ``__rerank_report``, ``__rerank_reason``, ``__rerank_n_rows``)."""
    from pyspark.sql.types import DoubleType, LongType, StringType, StructField, StructType

    fields = _fields(candidates, "candidates")
    columns = [
        StructField("user_id", fields["user_id"].dataType, True),
        StructField("item_id", fields["item_id"].dataType, True),
        StructField("score", DoubleType(), True),
        StructField("rank", LongType(), True),
    ]
    if explain:
        columns += [
            StructField("input_rank", LongType(), True), StructField("score_gain", DoubleType(), True),
            StructField("calibration_gain", DoubleType(), True), StructField("reason", StringType(), True),
        ]
    if auto_lam:
        columns.append(StructField("lam", DoubleType(), True))
    if report:
        columns += [StructField(REPORT_COLUMN, StringType(), True), StructField(REPORT_REASON, StringType(), True),
                    StructField(REPORT_N_ROWS, LongType(), True)]
    return StructType(columns)


def rerank_spark(
    reranker,
    candidates,
    *,
    by: str = "bucket",
    n_buckets: int | None = None,
    position_col: str | None = None,
    on_invalid: str = "raise",
    shown=None,
    explain: bool = False,
    report: bool = False,
    check_partitions: bool = True,
):
    """Rerank a Spark DataFrame ``user_id, item_id, score`` (+ the λ column if ``reranker.lam``
    names one); returns a Spark DataFrame ``user_id, item_id, score, rank`` with the same rows
    as ``reranker.rerank`` on the same data — and with ``report=True`` a pair ``(output,
    SparkRerankReport)`` whose ``skipped`` and ``short`` DataFrames list the users skipped
    (``on_invalid="skip"``) and those with fewer than k candidates.

    ``by="bucket"`` (default) groups users into ``n_buckets`` hash buckets (default: 4 ×
    ``spark.sql.shuffle.partitions``) and reranks a whole bucket per Python call; each bucket
    is held in memory as one pandas frame, so size it to a few million rows (DataFrame rows /
    n_buckets). ``by="user"`` calls Python once per user (far slower; kept for comparison).
    ``by="partition"``: no shuffle, for candidates whose users each lie together in one
    partition (:mod:`rerank.spark_partition`; checked unless ``check_partitions=False``).

    ``position_col`` names a column giving each row's position for the tie rule (ties go to
    the earlier position); by default it is ``monotonically_increasing_id()`` of ``candidates``,
    i.e. the DataFrame's own row order (the order of a parquet file or of the pandas frame it
    was created from).

    ``on_invalid="skip"`` drops users with invalid rows, as ``rerank`` does; ``"raise"`` fails
    the job with the same error. ``report=True`` returns ``(output, SparkRerankReport)``: the
    skipped users and the users with fewer than k candidates come back from the executors.

    ``shown``: a Spark DataFrame ``user_id, item_id`` (+ ``rank``) of items already shown
    (``CalibratedReranker.rerank(shown=)``, docs/design.md §9.3); it is co-grouped with the
    candidates by the same user buckets (its order: ``rank``, else its own row order).
    ``explain=True`` adds the columns of ``rerank(explain=True)`` (docs/design.md §9.4).

    Before the first job, the workers' Python is checked (:mod:`rerank.spark_env`): on a local
    master with ``PYSPARK_PYTHON`` unset they run the driver's interpreter; a worker that cannot
    import ``rerank`` raises :class:`rerank.spark_env.SparkWorkerError` in one line.
    """
    from pyspark.sql import functions as F

    from rerank.spark_env import check_workers, use_driver_python

    reranker.check_fitted()
    check_choice("by", by, GROUPINGS)
    schemas.check_on_invalid(on_invalid)
    if not isinstance(report, bool):
        raise InputTypeError(f"report must be True or False, got {report!r}")
    fields = _fields(candidates, "candidates")
    _require_columns(fields, ["user_id", "item_id", "score"], "candidates")
    _require_numeric(fields, "score", "candidates")
    columns = [F.col("user_id"), F.col("item_id"), F.col("score").cast("double").alias("score")]
    auto_lam = reranker.lam == "auto"
    if isinstance(reranker.lam, str) and not auto_lam:
        _require_columns(fields, [reranker.lam], "candidates")
        _require_numeric(fields, reranker.lam, "candidates")
        columns.append(F.col(reranker.lam).cast("double").alias(reranker.lam))
    if position_col is None:
        columns.append(F.monotonically_increasing_id().alias(POSITION_COLUMN))
    else:
        _require_columns(fields, [position_col], "candidates")
        _require_numeric(fields, position_col, "candidates")
        columns.append(F.col(position_col).alias(POSITION_COLUMN))
    _check_id_types(reranker, fields)
    rows = candidates.select(*columns)

    spark = candidates.sparkSession
    if n_buckets is None:
        n_buckets = 4 * int(spark.conf.get("spark.sql.shuffle.partitions"))
    n_buckets = check_whole("n_buckets", n_buckets)
    try:
        context = spark.sparkContext
    except Exception as exc:  # Spark Connect sessions have no SparkContext, hence no broadcast
        raise InputError(
            "rerank_spark needs a classic SparkSession (it broadcasts the fitted state through the "
            f"SparkContext); this session has none: {exc}"
        ) from exc
    use_driver_python(context)
    check_workers(context)
    state = context.broadcast(worker_reranker(reranker))

    explain = check_bool("explain", explain)

    def rerank_rows(frame: pd.DataFrame, seen: pd.DataFrame | None) -> pd.DataFrame:
        out = rerank_group(state.value, frame, POSITION_COLUMN, on_invalid, shown=seen, explain=explain)
        return with_report(out, report_rows(state.value, out)) if report else out

    def rerank_one_group(frame: pd.DataFrame) -> pd.DataFrame:  # one argument: Spark passes the frame only
        return rerank_rows(frame, None)

    schema = output_schema(candidates, explain, auto_lam, report)
    if by == "partition":
        from rerank.spark_partition import check_one_partition_per_user, rerank_by_partition
        if shown is not None:
            raise InputError("shown= is co-grouped with the candidates by user: use by='bucket' or by='user'")
        if check_bool("check_partitions", check_partitions):
            check_one_partition_per_user(rows)
        result = rerank_by_partition(rows, rerank_rows, schema)
    elif shown is not None:
        result = _rerank_with_shown(rows, shown, rerank_rows, schema, by, n_buckets)
    elif by == "user":
        result = rows.groupBy("user_id").applyInPandas(rerank_one_group, schema)
    else:
        bucket = F.pmod(F.xxhash64("user_id"), F.lit(n_buckets))
        # sorted by position within each bucket by the sort Spark runs for the grouping anyway
        rows = rows.withColumn(BUCKET_COLUMN, bucket).repartition(BUCKET_COLUMN).sortWithinPartitions(
            BUCKET_COLUMN, POSITION_COLUMN)
        result = rows.groupBy(BUCKET_COLUMN).applyInPandas(rerank_one_group, schema)
    if not report:
        return result
    from pyspark import StorageLevel

    combined = result.persist(StorageLevel.MEMORY_AND_DISK)
    kind = F.col(REPORT_COLUMN)
    outputs = [field.name for field in schema.fields if field.name not in REPORT_COLUMNS]
    out = combined.filter(kind.isNull()).select(*outputs)
    skipped = combined.filter(kind == REPORT_SKIPPED).select(
        "user_id", F.col(REPORT_REASON).alias("reason"), F.col(REPORT_N_ROWS).alias("n_rows"))
    short = combined.filter(kind == REPORT_SHORT).select("user_id", F.col(REPORT_N_ROWS).alias("n_candidates"))
    return out, SparkRerankReport(skipped, short, combined)


def _rerank_with_shown(rows, shown, rerank_rows, schema, by: str, n_buckets: int):
    """Candidates and shown items co-grouped by user (``by="user"``) or user bucket."""
    from pyspark.sql import functions as F

    s_fields = _fields(shown, "shown")
    _require_columns(s_fields, ["user_id", "item_id"], "shown")
    order = F.col("rank").cast("double") if "rank" in s_fields else F.monotonically_increasing_id().cast("double")
    shown_rows = shown.select(F.col("user_id"), F.col("item_id"), order.alias("rank"))
    key = "user_id" if by == "user" else BUCKET_COLUMN
    if by != "user":
        bucket = F.pmod(F.xxhash64("user_id"), F.lit(n_buckets))
        rows, shown_rows = rows.withColumn(BUCKET_COLUMN, bucket), shown_rows.withColumn(BUCKET_COLUMN, bucket)
    columns = [field.name for field in schema.fields]

    def rerank_cogroup(frame: pd.DataFrame, seen: pd.DataFrame) -> pd.DataFrame:
        if not len(frame):
            return pd.DataFrame({name: [] for name in columns})
        return rerank_rows(frame, seen[["user_id", "item_id", "rank"]])

    return rows.groupBy(key).cogroup(shown_rows.groupBy(key)).applyInPandas(rerank_cogroup, schema)


# ---------------------------------------------------------------------------- fit
def _history_checks(history, fields: dict, half_life) -> None:
    """One pass over the history counting bad rows; a ValueError names the column and a row."""
    from pyspark.sql import functions as F
    from pyspark.sql.types import DateType, NumericType, TimestampNTZType, TimestampType

    checks = {
        "user_id": F.col("user_id").isNull(),
        "item_id": F.col("item_id").isNull(),
    }
    messages = {
        "user_id": "history column 'user_id' has a null id",
        "item_id": "history column 'item_id' has a null id",
    }
    if "weight" in fields:
        _require_numeric(fields, "weight", "history")
        w = F.col("weight").cast("double")
        checks["weight"] = w.isNull() | F.isnan(w) | (F.abs(w) == float("inf")) | (w < 0)
        messages["weight"] = "history column 'weight' must be finite and >= 0"
    if half_life is not None:
        if "timestamp" not in fields:
            raise InputError("half_life needs a 'timestamp' column in history")
        dtype = fields["timestamp"].dataType
        if isinstance(dtype, DateType) or not isinstance(dtype, NumericType | TimestampType | TimestampNTZType):
            raise InputTypeError(
                f"history column 'timestamp' must be numeric or a timestamp, got {dtype.simpleString()}"
            )
        t = _seconds(fields)
        checks["timestamp"] = t.isNull() | F.isnan(t) | (F.abs(t) == float("inf"))
        messages["timestamp"] = "history column 'timestamp' has missing or infinite values"
    counts = history.agg(*[F.sum(c.cast("long")).alias(name) for name, c in checks.items()]).first()
    for name, condition in checks.items():
        if counts[name]:
            example = history.filter(condition).select("user_id", "item_id").first()
            raise InputError(
                f"{messages[name]}: e.g. user {example['user_id']!r}, item {example['item_id']!r} "
                f"({counts[name]} such rows)"
            )


def _seconds(fields: dict):
    """The history's ``timestamp`` as a double: seconds for timestamp types, as is otherwise."""
    from pyspark.sql import functions as F
    from pyspark.sql.types import TimestampNTZType, TimestampType

    dtype = fields["timestamp"].dataType
    if isinstance(dtype, TimestampType):  # an instant: microseconds since the epoch
        return F.unix_micros(F.col("timestamp")).cast("double") / 1e6
    if isinstance(dtype, TimestampNTZType):  # a wall-clock time: no time zone, no DST jumps
        micros = F.expr("timestampdiff(MICROSECOND, TIMESTAMP_NTZ'1970-01-01 00:00:00', timestamp)")
        return micros.cast("double") / 1e6
    return F.col("timestamp").cast("double")


def _category_table_sdf(spark, table, item_type):
    """``p(g|i)`` of the driver's item table as a long Spark frame ``item_id, category_code, p``."""
    from pyspark.sql.types import DoubleType, LongType, StructField, StructType

    coo = table.matrix.tocoo()
    frame = pd.DataFrame(
        {
            "item_id": table.items.take(coo.row),
            "category_code": coo.col.astype(np.int64),
            "p": coo.data.astype(np.float64),
        }
    )
    schema = StructType(
        [
            StructField("item_id", item_type, True),
            StructField("category_code", LongType(), False),
            StructField("p", DoubleType(), False),
        ]
    )
    return spark.createDataFrame(frame, schema=schema)


def category_masses(reranker, history, table):
    """Spark frame ``user_id, category_code, mass`` with ``mass = Σ_{i∈H_u} w_ui p(g|i)``."""
    from pyspark.sql import Window
    from pyspark.sql import functions as F

    fields = _fields(history, "history")
    weight = F.col("weight").cast("double") if "weight" in fields else F.lit(1.0)
    if reranker.half_life is not None:
        t = _seconds(fields)
        latest = F.max(t).over(Window.partitionBy("user_id"))
        weight = weight * F.pow(F.lit(0.5), (latest - t) / F.lit(float(reranker.half_life)))
    weighted = history.select("user_id", "item_id", weight.alias("w"))
    item_type = _fields(history, "history")["item_id"].dataType
    p_item = _category_table_sdf(history.sparkSession, table, item_type)
    return (
        weighted.join(F.broadcast(p_item), on="item_id", how="inner")
        .groupBy("user_id", "category_code")
        .agg(F.sum(F.col("w") * F.col("p")).alias("mass"))
    )


def fit_spark(reranker, history, item_categories):
    """``reranker.fit`` on Spark DataFrames ``history`` (``user_id, item_id`` [+ ``weight``,
    ``timestamp``]) and ``item_categories`` (``item_id, category`` [+ ``weight``]).

    The item table is collected to the driver (it is broadcast for reranking anyway) and built
    by the same code as ``fit``; the history never leaves the cluster: only the per-(user,
    category) masses ``Σ w_ui p(g|i)`` are collected and stored as ``fit`` stores them
    (:mod:`rerank.targets`, never a dense users × categories array). Returns ``reranker``, fitted.
    """
    reranker.options_ = reranker.build_options()  # parameter errors before any Spark job
    h_fields = _fields(history, "history")
    c_fields = _fields(item_categories, "item_categories")
    _require_columns(h_fields, ["user_id", "item_id"], "history")
    _require_columns(c_fields, ["item_id", "category"], "item_categories")
    kinds = {
        "user_id": id_kind_of(h_fields["user_id"].dataType),
        "item_id": id_kind_of(c_fields["item_id"].dataType),
    }
    history_items = id_kind_of(h_fields["item_id"].dataType)
    for what, kind in (("history column 'user_id'", kinds["user_id"]),
                       ("history column 'item_id'", history_items),
                       ("item_categories column 'item_id'", kinds["item_id"])):
        if kind is None:
            raise InputTypeError(f"{what} must hold integer or string ids")
    schemas.check_same_id_kind(
        history_items, "history column 'item_id'", kinds["item_id"], "item_categories column 'item_id'"
    )
    _history_checks(history, h_fields, reranker.half_life)

    wanted = [c for c in ("item_id", "category", "weight", "attribute") if c in c_fields]
    table = item_categories_from_frame(item_categories.select(*wanted).toPandas())
    masses = category_masses(reranker, history, table).toPandas()

    user_codes, users = pd.factorize(masses["user_id"], sort=False)
    n_categories = len(table.categories)
    builder = TargetBuilder(n_categories, reranker.target_dtype, table.attribute_codes)
    users = pd.Index(users)
    for warm, targets in target_blocks(
        user_codes,
        masses["category_code"].to_numpy(dtype=np.int64),
        masses["mass"].to_numpy(dtype=np.float64),
        len(users),
        sp.identity(n_categories, dtype=np.float64, format="csr"),
        attribute_codes=table.attribute_codes,
    ):
        builder.add(users.take(warm), targets)
    reranker.id_kinds_ = kinds
    return reranker._set_fitted(table, builder.finish())
