"""What ``rerank_spark(..., report=True)`` brings back from the executors (issue 16): each group's
report rows travel in the output's own rows, marked by a report column, and are split off on
the driver into a :class:`SparkRerankReport`."""

from __future__ import annotations

import dataclasses

import numpy as np
import pandas as pd

__all__ = ["REPORT_COLUMNS", "SparkRerankReport", "report_rows", "with_report"]

REPORT_COLUMN = "__rerank_report"
REPORT_SKIPPED = "skipped"
REPORT_SHORT = "short"
REPORT_REASON = "__rerank_reason"  # not "reason": explain=True has an output column of that name
REPORT_N_ROWS = "__rerank_n_rows"
REPORT_COLUMNS = (REPORT_COLUMN, REPORT_REASON, REPORT_N_ROWS)


def report_rows(reranker, out: pd.DataFrame) -> pd.DataFrame:
    """The report of the group just reranked as rows of the combined output schema: one row per
    skipped user (its reason and rows) and per user with fewer than k candidates
    (``n_rows``: the candidates, all of them returned)."""
    report = reranker.report_
    skipped = report.skipped
    short = pd.Index(report.short_users)
    counts = out["user_id"].value_counts(sort=False) if len(short) else None
    return pd.DataFrame(
        {
            "user_id": pd.concat([pd.Series(skipped["user_id"]), pd.Series(short)], ignore_index=True),
            REPORT_COLUMN: pd.Series([REPORT_SKIPPED] * len(skipped) + [REPORT_SHORT] * len(short), dtype=object),
            REPORT_REASON: pd.Series(list(skipped["reason"]) + [None] * len(short), dtype=object),
            REPORT_N_ROWS: pd.array(np.concatenate([
                skipped["n_rows"].to_numpy(dtype=np.int64),
                counts.reindex(short).to_numpy(dtype=np.int64) if len(short) else np.zeros(0, dtype=np.int64),
            ]), dtype="Int64"),
        }
    )


def with_report(out: pd.DataFrame, rows: pd.DataFrame) -> pd.DataFrame:
    """The output rows and the report rows in one frame (the combined schema). Integer columns
    become nullable (``Int64``: exact, where a concatenation would turn them into floats) and
    text becomes plain objects (Arrow-backed text from two frames is chunked, which Spark's
    conversion refuses)."""
    combined = pd.concat([out.astype({c: "Int64" for c in out.columns if out[c].dtype.kind in "iu"}), rows],
                         ignore_index=True)
    for column in combined.columns:
        dtype = combined[column].dtype
        if pd.api.types.is_string_dtype(dtype) and dtype != np.dtype(object):
            combined[column] = combined[column].astype(object)
        elif dtype.kind in "iu":
            combined[column] = combined[column].astype("Int64")
    return combined


@dataclasses.dataclass(frozen=True)
class SparkRerankReport:
    """What ``rerank_spark(..., report=True)`` reports, as Spark DataFrames computed by the same
    job as the output (it is persisted, so writing the output and reading the report rerank
    once; :meth:`unpersist` frees it).

    ``skipped``: ``user_id, reason, n_rows`` — users skipped with ``on_invalid="skip"``;
    ``short``: ``user_id, n_candidates`` — users with fewer than k candidates (all returned).
    """

    skipped: object
    short: object
    combined: object

    def unpersist(self) -> None:
        self.combined.unpersist()

    def summary(self) -> dict:
        """Counts (runs the job if the output was not computed yet)."""
        return {"skipped_users": self.skipped.count(), "short_users": self.short.count()}
