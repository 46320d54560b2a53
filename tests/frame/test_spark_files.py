"""``rerank_parquet_spark`` (issue 16, Spark): Parquet in, Parquet out, the rows never handed
through Spark. The output read back equals ``rerank`` of the same file, row for row and in
order; a user split across row groups, bad input and an existing destination all fail with one
line, and nothing is left at the destination."""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from test_spark import SPARK_MARKS, K, make_data

from rerank import CalibratedReranker
from rerank.errors import InputError
from rerank.spark_files import rerank_parquet_spark

pytestmark = SPARK_MARKS


def write_users_per_row_group(frame: pd.DataFrame, path, users_per_group: int, file_cut: int | None = None) -> None:
    """Each user's rows together, ``users_per_group`` users per row group; with ``file_cut``,
    the users from that index on go to a second file of the same folder."""
    frame = frame.sort_values("user_id", kind="stable").reset_index(drop=True)
    codes = pd.factorize(frame["user_id"])[0]
    files = [(path / "part-0.parquet", codes < (file_cut or codes.max() + 1)),
             (path / "part-1.parquet", codes >= (file_cut or codes.max() + 1))]
    path.mkdir()
    for name, rows in files:
        part = frame[rows].reset_index(drop=True)
        if not len(part):
            continue
        table = pa.Table.from_pandas(part, preserve_index=False)
        with pq.ParquetWriter(name, table.schema) as writer:
            part_codes = pd.factorize(part["user_id"])[0]
            for start in range(0, part_codes.max() + 1, users_per_group):
                chosen = (part_codes >= start) & (part_codes < start + users_per_group)
                writer.write_table(table.filter(pa.array(chosen)))


@pytest.mark.parametrize("string_ids", [False, True])
def test_the_output_read_back_is_rerank_of_the_same_files_row_for_row(spark, tmp_path, string_ids):
    history, item_categories, candidates = make_data(21, string_ids=string_ids, n_users=60)
    source = tmp_path / "candidates"
    write_users_per_row_group(candidates, source, users_per_group=7, file_cut=25)
    reranker = CalibratedReranker(k=K, lam=0.6).fit(history, item_categories)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # unknown items, cold users
        expected = reranker.rerank(pd.read_parquet(source))
    run = rerank_parquet_spark(reranker, spark, str(source), str(tmp_path / "out"))
    got = pd.read_parquet(tmp_path / "out")
    pd.testing.assert_frame_equal(got, expected, check_exact=True)
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == [f"part-{i:05d}.parquet" for i in range(9)]
    assert run.n_pieces == sum(pq.ParquetFile(source / f"part-{i}.parquet").num_row_groups for i in (0, 1))
    assert run.n_pieces == 4 + 5  # users 0-24 in groups of 7, users 25-59 in groups of 7
    assert (run.n_rows_in, run.n_rows_out) == (len(candidates), len(expected))
    assert run.n_users == candidates["user_id"].nunique()
    short = reranker.report_.short_users
    assert sorted(map(str, run.short["user_id"])) == sorted(map(str, short)) and len(short)
    counts = expected["user_id"].value_counts()
    assert all(counts[u] == n for u, n in zip(run.short["user_id"], run.short["n_candidates"], strict=True))


def test_a_user_in_two_row_groups_is_named_and_nothing_is_written(spark, tmp_path):
    history, item_categories, candidates = make_data(22, string_ids=False, n_users=20)
    source = tmp_path / "candidates.parquet"
    frame = candidates.sort_values("user_id", kind="stable").reset_index(drop=True)
    cut = int(np.flatnonzero(frame["user_id"].to_numpy() == frame["user_id"].iloc[len(frame) // 2])[1])  # mid-user
    table = pa.Table.from_pandas(frame, preserve_index=False)
    with pq.ParquetWriter(source, table.schema) as writer:
        writer.write_table(table.slice(0, cut))
        writer.write_table(table.slice(cut))
    reranker = CalibratedReranker(k=K).fit(history, item_categories)
    user = frame["user_id"].iloc[cut]
    with pytest.raises(InputError, match=rf"user {user} has rows in two row groups \(.*row group 0; .*row group 1\)"):
        rerank_parquet_spark(reranker, spark, str(source), str(tmp_path / "out"))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["candidates.parquet"]  # no output, no leftover folder


def test_bad_input_fails_in_one_line_naming_the_piece_and_an_existing_output_is_kept(spark, tmp_path):
    history, item_categories, candidates = make_data(23, string_ids=False, n_users=20)
    bad = candidates.astype({"score": np.float64})
    bad.loc[bad.index[-1], "score"] = np.nan
    source = tmp_path / "candidates"
    write_users_per_row_group(bad, source, users_per_group=5)
    out = tmp_path / "out"
    out.mkdir()
    (out / "keep.txt").write_text("earlier output")
    reranker = CalibratedReranker(k=K).fit(history, item_categories)
    with pytest.raises(InputError, match="exists; pass overwrite=True"):
        rerank_parquet_spark(reranker, spark, str(source), str(out))
    with pytest.raises(InputError, match=r"candidates '.*nowhere': cannot read it as Parquet"):
        rerank_parquet_spark(reranker, spark, str(tmp_path / "nowhere"), str(tmp_path / "out2"))
    with pytest.raises(InputError, match=r"part-0.parquet, row group \d+: .*score") as caught:
        rerank_parquet_spark(reranker, spark, str(source), str(out), overwrite=True)
    assert "\n" not in str(caught.value)
    assert [p.name for p in out.iterdir()] == ["keep.txt"]  # replaced only on success
    assert sorted(p.name for p in tmp_path.iterdir()) == ["candidates", "out"]
    run = reranker.rerank_parquet_spark(spark, str(source), str(out), overwrite=True, on_invalid="skip")  # the method
    assert "keep.txt" not in [p.name for p in out.iterdir()]
    assert run.skipped["user_id"].tolist() == [bad["user_id"].iloc[-1]]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        expected = reranker.rerank(pd.read_parquet(source), on_invalid="skip")
    pd.testing.assert_frame_equal(pd.read_parquet(out), expected, check_exact=True)
    explained = tmp_path / "explained"
    rerank_parquet_spark(reranker, spark, str(source), str(explained), on_invalid="skip", explain=True)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        expected = reranker.rerank(pd.read_parquet(source), on_invalid="skip", explain=True)
    pd.testing.assert_frame_equal(pd.read_parquet(explained), expected, check_exact=True)
    damaged = tmp_path / "damaged"
    damaged.mkdir()
    (damaged / "part-9.parquet").write_bytes(b"not parquet at all")
    damaged_message = r"candidates '.*damaged.*': cannot read it as Parquet .*part-9\.parquet"
    with pytest.raises(InputError, match=damaged_message) as caught:
        rerank_parquet_spark(reranker, spark, str(damaged), str(tmp_path / "out2"))
    assert "\n" not in str(caught.value) and not (tmp_path / "out2").exists()


def test_a_folder_that_spark_wrote_by_user_is_read_in_pandas_order(spark, tmp_path):
    """Spark's own output (part files, ``_SUCCESS``, ``.crc`` files), each user in one part: the
    marker and checksum files are not data, and the parts are taken in ``read_parquet``'s order."""
    history, item_categories, candidates = make_data(24, string_ids=True, n_users=30)
    frame = candidates.sort_values("user_id", kind="stable").reset_index(drop=True).assign(pos=lambda f: f.index)
    source = tmp_path / "spark_written"
    spark.createDataFrame(frame).repartition(3, "user_id").sortWithinPartitions("user_id", "pos").write.parquet(
        str(source))
    assert (source / "_SUCCESS").exists()
    reranker = CalibratedReranker(k=K, lam=0.4).fit(history, item_categories)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        expected = reranker.rerank(pd.read_parquet(source))
    run = reranker.rerank_parquet_spark(spark, str(source), str(tmp_path / "out"))
    pd.testing.assert_frame_equal(pd.read_parquet(tmp_path / "out"), expected, check_exact=True)
    assert run.n_rows_in == len(candidates) and run.n_pieces >= 3
