"""Parquet in, Parquet out on Spark, with the rows never handed through Spark (issue 16, Spark).

``rerank_spark`` gives its Python workers every candidate row from the JVM through Arrow. On
10⁸ rows that transfer alone takes longer than the whole in-process rerank (docs/spark.md,
"Where the no-shuffle job's time goes"). When the candidates are Parquet files that the
executors can read, :func:`rerank_parquet_spark` has Spark schedule only the *pieces*: one
task per row group, ``(file, row group)``. Each Python worker reads its row group with
pyarrow and reranks it with the broadcast reranker, using the same ``CalibratedReranker.rerank``
(validation, frame code and kernel), single-threaded. It then writes one Parquet part itself.
Only piece numbers, counts and the report pass through Spark.

Contract and checks:

* **Each user's rows lie in one row group.** This is the case for a candidate generator that
  writes whole users per row group; ``bench_spark`` writes 10,000 users per 1M-row row group.
  Every task returns the users it saw. The driver refuses a user found in two row groups, with
  one line naming the user and both places.
* **The output is all or nothing.** Parts are written into a hidden sibling folder of
  ``destination`` and renamed into place only when every task succeeded and the check passed.
  On any failure the folder is removed and nothing appears at ``destination``. An existing
  ``destination`` is refused unless ``overwrite=True``, and is replaced only on success.
* **Same rows as in process.** Part ``i`` holds the output of piece ``i``, in the pieces' order
  (the files in the order ``pyarrow.dataset`` lists them, which is ``pandas.read_parquet``'s
  order, then their row groups). Each user's list depends only on that user's rows, in input
  order. Reading ``destination`` back therefore gives the rows and row order of
  ``reranker.rerank(pd.read_parquet(source))``.
* **Errors.** Bad input in a worker (an ``InputError``, as ``rerank`` raises it) comes back as
  the same one-line error, prefixed with the file and row group, not as a Java stack trace.

Paths are local paths or URIs that ``pyarrow.fs`` opens (``hdfs://``, ``s3://``). The workers
open them with pyarrow, not through Spark's Hadoop configuration, so they need their own
access to the storage. The commit is a rename: atomic on a local file system and HDFS, a copy
on object stores.
"""

from __future__ import annotations

import dataclasses
import os
import posixpath
import uuid

import numpy as np
import pandas as pd

from rerank import schemas
from rerank.errors import InputError, InputTypeError
from rerank.ids import show_id
from rerank.params import check_bool

__all__ = ["ParquetRerankRun", "rerank_parquet_spark"]


@dataclasses.dataclass(frozen=True)
class ParquetRerankRun:
    """What :func:`rerank_parquet_spark` did: ``destination`` (one part per piece),
    ``n_pieces`` row groups read, ``n_users`` users, ``n_rows_in`` candidate rows,
    ``n_rows_out`` output rows; ``skipped`` (``user_id, reason, n_rows``: users skipped with
    ``on_invalid="skip"``) and ``short`` (``user_id, n_candidates``: users with fewer than k
    candidates, all returned), as pandas frames."""

    destination: str
    n_pieces: int
    n_users: int
    n_rows_in: int
    n_rows_out: int
    skipped: pd.DataFrame
    short: pd.DataFrame


def _filesystem(path: str):
    """``(filesystem, path inside it)`` for a local path or a URI."""
    from pyarrow import fs

    try:
        return fs.FileSystem.from_uri(path)
    except (ValueError, TypeError):  # a plain relative path
        return fs.LocalFileSystem(), os.path.abspath(path)


def parquet_pieces(source: str) -> list[tuple[str, int, int]]:
    """``(file, row group, rows)`` of every row group of a Parquet file or dataset folder, in
    ``pyarrow.dataset``'s file order (files whose names start with ``.`` or ``_`` are not data)."""
    import pyarrow.dataset as ds
    import pyarrow.parquet as pq

    filesystem, path = _filesystem(source)
    pieces, name = [], source
    try:  # pyarrow's errors are OSError or ValueError (ArrowInvalid)
        for name in ds.dataset(path, format="parquet", filesystem=filesystem).files:
            metadata = pq.ParquetFile(name, filesystem=filesystem).metadata
            pieces += [(name, group, metadata.row_group(group).num_rows) for group in range(metadata.num_row_groups)]
    except (OSError, ValueError) as exc:
        raise InputError(f"candidates '{name}': cannot read it as Parquet ({_one_line(exc)})") from exc
    return pieces


def _one_line(exc: BaseException) -> str:
    return " ".join(str(exc).split())


def _rerank_pieces(state, source: str, folder: str, on_invalid: str, explain: bool):
    """The function each Spark task runs on its pieces ``(index, file, row group)``: built here so
    Spark ships it by value, with only the broadcast, the paths and the options in its closure.
    A part is written under a name of its own and renamed to ``part-<index>.parquet``, so two
    attempts of one task (a retry, speculation) never write into the same file."""

    def run(pieces):
        import pyarrow as pa
        import pyarrow.parquet as pq

        from rerank.errors import InputError as WorkerInputError

        filesystem, _ = _filesystem(source)
        reranker = state.value
        for index, name, group in pieces:
            try:
                frame = pq.ParquetFile(name, filesystem=filesystem).read_row_group(group).to_pandas()
            except (OSError, ValueError) as exc:  # a file changed or damaged since the listing
                yield {"index": index, "error": f"{name}, row group {group}: cannot read it ({_one_line(exc)})"}
                return
            try:
                out, report = reranker._rerank(frame, on_invalid, explain=explain)
            except WorkerInputError as exc:
                yield {"index": index, "error": f"{name}, row group {group}: {exc}"}
                return
            table = pa.Table.from_pandas(out, preserve_index=False)
            attempt = f"{folder}/.part-{index:05d}-{uuid.uuid4().hex}.parquet"
            pq.write_table(table, attempt, filesystem=filesystem)
            filesystem.move(attempt, f"{folder}/part-{index:05d}.parquet")
            yield {
                "index": index,
                "users": pd.unique(frame["user_id"].dropna()),
                "rows_in": len(frame),
                "rows_out": len(out),
                "skipped": report.skipped,
                "short": _short(out, report.short_users),
            }

    return run


def _short(out: pd.DataFrame, users) -> pd.DataFrame:
    """``user_id, n_candidates`` of the users with fewer than k candidates (all returned)."""
    users = pd.Index(users)
    counts = out["user_id"].value_counts(sort=False).reindex(users) if len(users) else pd.Series([], dtype=np.int64)
    return pd.DataFrame({"user_id": pd.Series(users), "n_candidates": counts.to_numpy(dtype=np.int64)})


def _check_one_piece_per_user(results: list[dict], pieces: list[tuple[str, int, int]]) -> None:
    users = pd.concat([pd.Series(r["users"]) for r in results], ignore_index=True) if results else pd.Series([])
    where = np.repeat([r["index"] for r in results], [len(r["users"]) for r in results])
    again = users.duplicated(keep="first").to_numpy()
    if again.any():
        second = int(np.argmax(again))
        user = users.iloc[second]
        first = int(np.flatnonzero((users == user).to_numpy())[0])
        (file_a, group_a, _), (file_b, group_b, _) = pieces[where[first]], pieces[where[second]]
        raise InputError(
            f"candidates: user {show_id(user)} has rows in two row groups ({file_a}, row group {group_a}; "
            f"{file_b}, row group {group_b}); rerank_parquet_spark needs each user's rows in one row group "
            "(write whole users per row group, or use rerank_spark)"
        )


def rerank_parquet_spark(reranker, spark, source: str, destination: str, *, on_invalid: str = "raise",
                         explain: bool = False, overwrite: bool = False) -> ParquetRerankRun:
    """Rerank the Parquet candidates at ``source`` (a file or a dataset folder: ``user_id,
    item_id, score`` + the λ column if ``reranker.lam`` names one) on Spark and write the output
    (``user_id, item_id, score, rank``) as Parquet parts into the folder ``destination``
    (module docstring: contract, checks, order). Returns a :class:`ParquetRerankRun`.

    ``reranker`` is fitted; ``spark`` is a classic ``SparkSession``. The workers' Python is
    checked first, as for ``rerank_spark``. ``on_invalid`` and ``explain`` as in ``rerank``.
    """
    from rerank.spark import worker_reranker
    from rerank.spark_env import check_workers, use_driver_python

    reranker.check_fitted()
    schemas.check_on_invalid(on_invalid)
    overwrite, explain = check_bool("overwrite", overwrite), check_bool("explain", explain)
    if not isinstance(source, str) or not isinstance(destination, str):
        raise InputTypeError("rerank_parquet_spark: source and destination must be paths (str)")
    from pyarrow import fs

    filesystem, target = _filesystem(destination)
    exists = filesystem.get_file_info(target).type != fs.FileType.NotFound
    if exists and not overwrite:
        raise InputError(f"output '{destination}' exists; pass overwrite=True to replace it")
    pieces = parquet_pieces(source)
    context = spark.sparkContext
    use_driver_python(context)
    check_workers(context)
    folder = posixpath.join(posixpath.dirname(target), f".{posixpath.basename(target)}.rerank-{uuid.uuid4().hex}")
    filesystem.create_dir(folder)
    try:
        state = context.broadcast(worker_reranker(reranker))
        tasks = [(i, file, group) for i, (file, group, _) in enumerate(pieces)]
        run = _rerank_pieces(state, source, folder, on_invalid, explain)
        results = context.parallelize(tasks, max(len(tasks), 1)).mapPartitions(run).collect() if tasks else []
        state.unpersist()
        errors = sorted((r for r in results if "error" in r), key=lambda r: r["index"])
        if errors:
            raise InputError(errors[0]["error"])
        results.sort(key=lambda r: r["index"])
        _check_one_piece_per_user(results, pieces)
        if exists:
            filesystem.delete_dir(target)
        filesystem.move(folder, target)
    except BaseException:
        filesystem.delete_dir(folder)
        raise
    skipped = [r["skipped"] for r in results if len(r["skipped"])]
    short = [r["short"] for r in results if len(r["short"])]
    return ParquetRerankRun(
        destination, len(pieces), int(sum(len(r["users"]) for r in results)), int(sum(r["rows_in"] for r in results)),
        int(sum(r["rows_out"] for r in results)),
        pd.concat(skipped, ignore_index=True) if skipped else schemas.empty_skipped(),
        pd.concat(short, ignore_index=True) if short else _short(pd.DataFrame({"user_id": []}), []),
    )
