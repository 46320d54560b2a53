"""Trust at the boundary (issue 17), ``rerank apply``: each finding reproduced as files.

Ids keep their exact values and type from the candidate file to the output (Parquet written by
pyarrow or Spark, without pandas metadata, included); every CSV file goes through one strict
reader; interrupted, killed, disk-full and changed-input runs leave no half-written output.
"""

from __future__ import annotations

import json
import os
import resource
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from rerank import CalibratedReranker
from rerank.cli import main

BIG = 2**60
SCRIPT = Path(sys.executable).parent / "rerank"


def write_arrow(frame: pd.DataFrame, path: Path) -> Path:
    """Parquet as pyarrow or Spark write it: no pandas metadata, so pandas cannot restore the dtypes."""
    table = pa.Table.from_pandas(frame, preserve_index=False).replace_schema_metadata(None)
    pq.write_table(table, path)
    return path


def write_csv(frame: pd.DataFrame, path: Path) -> Path:
    frame.to_csv(path, index=False)
    return path


def inputs(tmp_path: Path):
    history = pd.DataFrame({"user_id": [1, 2, 3], "item_id": [10, 11, 10]})
    categories = pd.DataFrame({"item_id": [10, 11, 12], "category": ["a", "b", "a"]})
    return write_csv(history, tmp_path / "h.csv"), write_csv(categories, tmp_path / "g.csv"), history, categories


def run(tmp_path, cands, hist, cats, out_name="out.parquet", *extra) -> tuple[int, Path]:
    out = tmp_path / out_name
    argv = ["apply", "--candidates", str(cands), "--history", str(hist), "--item-categories", str(cats),
            "--output", str(out), "--quiet", "--k", "2", *extra]
    try:
        return main(argv), out
    except SystemExit as exc:
        return exc.code, out


def one_error_line(capsys) -> str:
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("rerank apply: error: "), err
    return err


def no_parts(directory: Path) -> bool:
    return not [p for p in directory.iterdir() if p.name.endswith(".part")]


def nullable_candidates() -> pd.DataFrame:
    """Users 1 and BIG + 1 with items BIG, BIG + 1; user 3 has a null item (skipped); a row
    without a user; user BIG + 2 with item 10."""
    return pd.DataFrame({
        "user_id": pd.array([1, 1, 3, None, BIG + 1, BIG + 1, BIG + 2], dtype="Int64"),
        "item_id": pd.array([BIG, BIG + 1, None, 10, BIG, BIG + 1, 10], dtype="Int64"),
        "score": [0.5, 0.4, 0.3, 0.9, 0.2, 0.1, 1.0],
    })


@pytest.mark.parametrize("out_name", ["out.parquet", "out.csv"])
@pytest.mark.parametrize("batch_rows", ["1", "3", "1000"])
def test_parquet_ids_with_nulls_stay_exact_through_skip_mode(tmp_path, capsys, out_name, batch_rows):
    """Findings 1 and 3: the null made the ids float64; ids above 2**53 collided, valid users were
    skipped as 'duplicate item_id', the output held 1.152921504606847e+18 (or the Parquet writer
    crashed on a later batch), and the run still said 'nothing lost'."""
    hist, cats, history, categories = inputs(tmp_path)
    frame = nullable_candidates()
    cands = write_arrow(frame, tmp_path / "c.parquet")
    code, out = run(tmp_path, cands, hist, cats, out_name, "--on-invalid", "skip", "--batch-rows", batch_rows,
                    "--skipped", str(tmp_path / "skipped.csv"), "--report", str(tmp_path / "r.json"))
    assert code == 0, capsys.readouterr().err
    if out.suffix == ".parquet":
        table = pq.read_table(out)
        assert table.schema.field("user_id").type == pa.int64() and table.schema.field("item_id").type == pa.int64()
        got = table.to_pylist()
        pairs = [(r["user_id"], r["item_id"]) for r in got]
    else:
        text = pd.read_csv(out, dtype=str)
        pairs = [(int(u), int(i)) for u, i in zip(text["user_id"], text["item_id"], strict=True)]
    assert sorted(pairs) == sorted([(1, BIG), (1, BIG + 1), (BIG + 1, BIG), (BIG + 1, BIG + 1), (BIG + 2, 10)])
    expected = CalibratedReranker(k=2).fit(history, categories).rerank(frame, on_invalid="skip")
    assert pairs == list(zip(expected["user_id"].astype(object), expected["item_id"].astype(object), strict=True))
    skipped = pd.read_csv(tmp_path / "skipped.csv", dtype=str)
    assert list(skipped["user_id"]) == ["3"] and list(skipped["reason"]) == ["null item_id"]
    counts = json.loads((tmp_path / "r.json").read_text())["counts"]
    assert counts["reconciles"] and counts["users_in"] == 4 and counts["rows_without_user_id"] == 1
    assert counts["output_rows"] == 5 and counts["rows_of_skipped_users"] == 1


def test_error_messages_name_integer_ids_as_integers(tmp_path, capsys):
    """Finding 8: 'user 286.0' from a Parquet file whose nulls made the ids floats."""
    hist, cats, *_ = inputs(tmp_path)
    frame = pd.DataFrame({"user_id": pd.array([286, None, 287, 286], dtype="Int64"),
                          "item_id": pd.array([154, 1, 2, 155], dtype="Int64"), "score": [1.0, 1.0, 1.0, 1.0]})
    code, _ = run(tmp_path, write_arrow(frame, tmp_path / "c.parquet"), hist, cats, "out.csv")
    err = one_error_line(capsys)
    assert code == 2 and "user 286 reappears at row 3" in err, err
    skipped = pd.DataFrame({"user_id": pd.array([None, 286, 286], dtype="Int64"),
                            "item_id": pd.array([1, 154, 155], dtype="Int64"), "score": [1.0, np.nan, 1.0]})
    code, _ = run(tmp_path, write_arrow(skipped, tmp_path / "c2.parquet"), hist, cats, "out.csv", "--on-invalid",
                  "skip")
    err = capsys.readouterr().err
    assert code == 0 and "skipped users: 286 (score missing or not a finite number)" in err, err


@pytest.mark.parametrize("out_name", ["out.parquet", "out.csv"])
def test_parquet_integer_candidates_with_a_csv_history_keep_their_id_type(tmp_path, out_name):
    """Finding 12: Parquet candidates with int64 ids plus a CSV history gave string ids."""
    hist, cats, history, categories = inputs(tmp_path)
    frame = pd.DataFrame({"user_id": np.array([1, 1, 2**63 - 1], dtype=np.int64), "item_id": [10, 11, 10],
                          "score": [0.1, 0.9, 0.5]})
    code, out = run(tmp_path, write_arrow(frame, tmp_path / "c.parquet"), hist, cats, out_name)
    assert code == 0
    if out.suffix == ".parquet":
        table = pq.read_table(out)
        assert table.schema.field("user_id").type == pa.int64()
        assert table.column("user_id").to_pylist() == [1, 1, 2**63 - 1]
    else:
        assert pd.read_csv(out, dtype=str)["user_id"].tolist() == ["1", "1", str(2**63 - 1)]
    expected = CalibratedReranker(k=2).fit(history, categories).rerank(frame)
    got = pd.read_parquet(out) if out.suffix == ".parquet" else pd.read_csv(out)
    assert got["item_id"].tolist() == expected["item_id"].tolist()  # user 1 is warm: matched as text


# ----------------------------------------------------------------------------- strict CSV
RAGGED = {
    "extra field": ("user_id,item_id,score\n1,10,0.5\n1,12,5,0.9\n", "line 3 has 4 fields but the header has 3"),
    "missing field": ("user_id,item_id,score\n1,10,0.5\n1,12\n", "line 3 has 2 fields but the header has 3"),
    "first row extra": ("user_id,item_id,score\n1,10,0.5,7\n", "line 2 has 4 fields but the header has 3"),
    "trailing comma": ("user_id,item_id,score\n1,10,0.5\n2,11,0.4,\n", "line 3 has 4 fields"),
}


@pytest.mark.parametrize("case", list(RAGGED))
@pytest.mark.parametrize("role", ["candidates", "history", "item_categories"])
def test_a_row_with_too_many_or_too_few_fields_is_an_error_naming_file_and_line(tmp_path, capsys, case, role):
    """Finding 2: a candidates row '1,12,5,0.9' was read as item 12, score 5.0, exit 0."""
    text, message = RAGGED[case]
    hist, cats, *_ = inputs(tmp_path)
    cands = write_csv(pd.DataFrame({"user_id": [1], "item_id": [10], "score": [0.5]}), tmp_path / "c.csv")
    if role == "history":
        text = text.replace("score", "weight")
    elif role == "item_categories":
        text = text.replace("user_id,item_id,score", "item_id,category,weight")
    bad = tmp_path / "bad.csv"
    bad.write_text(text)
    paths = {"candidates": cands, "history": hist, "item_categories": cats, role: bad}
    code, out = run(tmp_path, paths["candidates"], paths["history"], paths["item_categories"], "out.csv")
    err = one_error_line(capsys)
    assert code == 2 and f"{role} file '{bad}'" in err and message in err, err
    assert not out.exists() and no_parts(tmp_path)


def test_compressed_and_quoted_csv_go_through_the_same_reader(tmp_path, capsys):
    hist, cats, *_ = inputs(tmp_path)
    for suffix, opener in ((".csv.gz", "gzip"), (".csv.bz2", "bz2"), (".csv.xz", "lzma")):
        path = tmp_path / f"c{suffix}"
        module = __import__(opener)
        with module.open(path, "wt") as handle:
            handle.write('user_id,item_id,score\n"1",10,0.5\n1,"11",0.25\n1,12,0.1,9\n')
        code, _ = run(tmp_path, path, hist, cats, "out.csv")
        err = one_error_line(capsys)
        assert code == 2 and "line 4 has 4 fields" in err and path.name in err
    quoted = tmp_path / "q.csv"
    quoted.write_text('user_id,item_id,score\n1,10,0.5\n"1","1\n1",0.25\n')  # a quoted field spanning lines
    code, out = run(tmp_path, quoted, hist, cats, "out.csv")
    assert code == 0 and sorted(pd.read_csv(out, dtype=str)["item_id"]) == ["1\n1", "10"]


@pytest.mark.parametrize("role", ["candidates", "history", "item_categories"])
def test_duplicate_csv_column_names_are_refused(tmp_path, capsys, role):
    """Finding 5: a candidates CSV 'user_id,item_id,score,score' was accepted (pandas read score.1)."""
    hist, cats, *_ = inputs(tmp_path)
    cands = write_csv(pd.DataFrame({"user_id": [1], "item_id": [10], "score": [0.5]}), tmp_path / "c.csv")
    header = {"candidates": "user_id,item_id,score,score", "history": "user_id,item_id,user_id",
              "item_categories": "item_id,category,category"}[role]
    bad = tmp_path / "dup.csv"
    bad.write_text(f"{header}\n1,10,0.5,0.7\n")
    paths = {"candidates": cands, "history": hist, "item_categories": cats, role: bad}
    code, out = run(tmp_path, paths["candidates"], paths["history"], paths["item_categories"], "out.csv")
    err = one_error_line(capsys)
    repeated = header.split(",")[-1]
    assert code == 2 and f"header names column '{repeated}' 2 times" in err and "dup.csv" in err
    assert not out.exists()


def test_gap_reads_csv_through_the_strict_reader(tmp_path, capsys):
    hist, cats, *_ = inputs(tmp_path)
    bad = tmp_path / "c.csv"
    bad.write_text("user_id,item_id,score\n1,10,0.5\n1,12,5,0.9\n")
    code = main(["gap", "--candidates", str(bad), "--history", str(hist), "--item-categories", str(cats)])
    err = capsys.readouterr().err
    assert code == 2 and "line 3 has 4 fields" in err


# ----------------------------------------------------------------------------- flags and outputs
@pytest.mark.parametrize(("flag", "value"), [("--k", str(2**63)), ("--k", str(2**64)), ("--batch-rows", str(2**63))])
def test_counts_of_2_63_or_more_are_input_errors(tmp_path, capsys, flag, value):
    """Finding 4: k >= 2**63 raised OverflowError (exit 1)."""
    hist, cats, *_ = inputs(tmp_path)
    cands = write_csv(pd.DataFrame({"user_id": [1], "item_id": [10], "score": [0.5]}), tmp_path / "c.csv")
    code, out = run(tmp_path, cands, hist, cats, "out.csv", flag, value)
    err = one_error_line(capsys)
    assert code == 2 and "must be < 2**63" in err and not out.exists()


def test_skipped_and_report_cannot_be_the_same_file(tmp_path, capsys):
    """Finding 6: --skipped X --report X was accepted, one overwrote the other."""
    hist, cats, *_ = inputs(tmp_path)
    cands = write_csv(pd.DataFrame({"user_id": [1], "item_id": [10], "score": [0.5]}), tmp_path / "c.csv")
    same = tmp_path / "x.csv"
    code, out = run(tmp_path, cands, hist, cats, "out.csv", "--skipped", str(same), "--report", str(same))
    err = one_error_line(capsys)
    assert code == 2 and "--report file" in err and "also an input or output" in err
    assert not out.exists() and not same.exists()


def test_pipe_joined_categories_and_ids_matching_nothing_are_warned_about(tmp_path, capsys):
    """Finding 7: 'Action|Comedy' as 215 combined categories, and '0001' against '1', silently."""
    history = write_csv(pd.DataFrame({"user_id": ["1", "2", "3"], "item_id": ["10", "11", "10"]}), tmp_path / "h.csv")
    categories = write_csv(pd.DataFrame({"item_id": ["10", "11"], "category": ["Action|Comedy", "Drama"]}),
                           tmp_path / "g.csv")
    cands = tmp_path / "c.csv"
    cands.write_text("user_id,item_id,score\n0001,10,0.5\n0002,11,0.4\n3,10,0.3\n")
    code, out = run(tmp_path, cands, history, categories, "out.csv")
    err = capsys.readouterr().err.splitlines()
    assert code == 0 and out.exists()
    warns = [line for line in err if line.startswith("rerank apply: warning: ")]
    assert len(warns) == 2, err
    assert "g.csv" in warns[0] and "'Action|Comedy'" in warns[0] and "explode" in warns[0]
    assert "2 of 3 users have no usable history" in warns[1] and "'0001' is not '1'" in warns[1]
    assert err[-1].startswith("rerank apply: wrote") and err[-1].endswith("nothing lost")


def test_summary_names_the_method_and_the_quota_shortfall(tmp_path, capsys):
    hist, cats, *_ = inputs(tmp_path)
    cands = write_csv(pd.DataFrame({"user_id": [1, 1, 2, 2], "item_id": [10, 12, 10, 11], "score": [1, 1, 1, 1]}),
                      tmp_path / "c.csv")
    code, _ = run(tmp_path, cands, hist, cats, "out.csv", "--method", "pm2", "--report", str(tmp_path / "r.json"))
    line = capsys.readouterr().err.strip().splitlines()[-1]
    assert code == 0 and "method: PM-2" in line and "kept plain top-k" not in line
    assert json.loads((tmp_path / "r.json").read_text())["counts"]["users_kept_top_k"] is None
    code, _ = run(tmp_path, cands, hist, cats, "out2.csv", "--min-share", "1", "--k", "2")
    line = capsys.readouterr().err.strip().splitlines()[-1]
    assert code == 0 and "method: quota greedy" in line and "users short of their quotas (" in line


def test_an_input_changed_while_it_is_read_is_an_error(tmp_path, capsys, monkeypatch):
    """Finding 17: a candidate file truncated (or rewritten in place) during apply passed as
    'nothing lost'. The file is changed after the first batch was reranked."""
    import rerank.cli.apply as apply_module

    hist, cats, *_ = inputs(tmp_path)
    rows = pd.DataFrame({"user_id": np.repeat(np.arange(40), 3), "item_id": np.tile([10, 11, 12], 40),
                         "score": np.tile([0.3, 0.2, 0.1], 40)})
    cands = write_csv(rows, tmp_path / "c.csv")
    real = apply_module.rerank_batches

    for change in ("truncate", "rewrite in place"):
        def changing(reranker, batches, _change=change, **options):
            def batches_then_change():
                for number, batch in enumerate(batches):
                    if number == 1:
                        text = cands.read_text()
                        if _change == "truncate":
                            cands.write_text(text[: len(text) // 2])
                        else:
                            with open(cands, "r+") as handle:  # same bytes, same size, new mtime
                                handle.write(text)
                            os.utime(cands, ns=(time.time_ns(), time.time_ns() + 10**9))
                    yield batch
            return real(reranker, batches_then_change(), **options)

        monkeypatch.setattr(apply_module, "rerank_batches", changing)
        write_csv(rows, cands)
        code, out = run(tmp_path, cands, hist, cats, "out.csv", "--batch-rows", "9")
        err = one_error_line(capsys)
        assert code == 2 and "c.csv' changed while it was read" in err, err
        assert not out.exists() and no_parts(tmp_path)


# ----------------------------------------------------------------------------- killed, full disk
def big_inputs(tmp_path: Path, n_users: int = 20_000):
    hist, cats, *_ = inputs(tmp_path)
    rows = pd.DataFrame({"user_id": np.repeat(np.arange(n_users), 10), "item_id": np.tile(np.arange(10, 20), n_users),
                         "score": np.tile(np.linspace(1, 0, 10), n_users)})
    return write_csv(rows, tmp_path / "c.csv"), hist, cats


def start(tmp_path, cands, hist, cats, out: Path, *extra) -> subprocess.Popen:
    argv = [str(SCRIPT), "apply", "--candidates", str(cands), "--history", str(hist), "--item-categories", str(cats),
            "--output", str(out), "--quiet", "--batch-rows", "200", *extra]
    env = {**os.environ, "NUMBA_NUM_THREADS": "1"}
    return subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)


def wait_for_part(proc: subprocess.Popen, directory: Path, timeout: float = 240.0) -> Path:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        parts = [p for p in directory.iterdir() if p.name.endswith(".part")]
        if parts:
            return parts[0]
        if proc.poll() is not None:
            pytest.fail(f"the run ended before writing: {proc.communicate()[1]}")
        time.sleep(0.005)
    proc.kill()
    pytest.fail("no temporary output appeared")


def test_sigterm_leaves_no_temporary_file(tmp_path):
    """Finding 14: SIGTERM left the .part file behind."""
    cands, hist, cats = big_inputs(tmp_path)
    out = tmp_path / "out.csv"
    proc = start(tmp_path, cands, hist, cats, out)
    wait_for_part(proc, tmp_path)
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 128 + signal.SIGTERM, err
    assert "rerank apply: terminated" in err and "Traceback" not in err
    assert not out.exists() and no_parts(tmp_path)


class _Interrupted(Exception):
    pass


def test_a_signal_landing_right_after_the_temporary_file_is_made_leaves_nothing(tmp_path, monkeypatch):
    """The race behind a flaky SIGTERM run: the signal arrives the instant the .part file
    exists, before it is registered for cleanup. It must wait until the file is registered."""
    import tempfile

    from rerank.outputs import AtomicFiles

    make = tempfile.mkstemp

    def make_then_signal(*args, **kwargs):
        made = make(*args, **kwargs)
        os.kill(os.getpid(), signal.SIGTERM)
        return made

    def interrupt(signum, frame):
        raise _Interrupted

    previous = signal.signal(signal.SIGTERM, interrupt)
    monkeypatch.setattr(tempfile, "mkstemp", make_then_signal)
    try:
        with pytest.raises(_Interrupted), AtomicFiles() as files:
            files.temp_for(tmp_path / "out.csv")
    finally:
        signal.signal(signal.SIGTERM, previous)
    assert no_parts(tmp_path) and not (tmp_path / "out.csv").exists()


def test_a_later_run_removes_the_part_file_a_killed_run_left(tmp_path):
    """Finding 14: SIGKILL cannot be caught; the next run writing the same output removes the
    stale temporary file (its process is gone), and keeps one whose process still runs."""
    cands, hist, cats = big_inputs(tmp_path)
    out = tmp_path / "out.csv"
    proc = start(tmp_path, cands, hist, cats, out)
    stale = wait_for_part(proc, tmp_path)
    proc.kill()
    proc.wait(timeout=60)
    assert stale.exists() and not out.exists()
    sleeper = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)"])
    try:
        host = stale.name[len(f".{out.name}."):].split(".")[0]
        alive = tmp_path / f".{out.name}.{host}.{sleeper.pid}.xyz.part"
        alive.write_text("a run still writing")
        other = tmp_path / f".other.csv.{host}.999999999.xyz.part"
        other.write_text("not ours to touch: another output")
        small = write_csv(pd.DataFrame({"user_id": [1], "item_id": [10], "score": [0.5]}), tmp_path / "small.csv")
        code, _ = run(tmp_path, small, hist, cats, "out.csv")
        assert code == 0 and out.exists()
        assert not stale.exists() and alive.exists() and other.exists()
    finally:
        sleeper.kill()
        sleeper.wait()


def test_a_write_that_fails_names_the_output_file(tmp_path):
    """Finding 15, without privileges: a file-size limit makes the kernel refuse the write
    (EFBIG) as a full disk does (ENOSPC); the message names the file, no output is left."""
    cands, hist, cats = big_inputs(tmp_path, n_users=2000)
    out = tmp_path / "out.csv"

    def limit():
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (8192, 8192))

    argv = [str(SCRIPT), "apply", "--candidates", str(cands), "--history", str(hist), "--item-categories", str(cats),
            "--output", str(out), "--quiet"]
    done = subprocess.run(argv, capture_output=True, text=True, preexec_fn=limit, timeout=300,
                          env={**os.environ, "NUMBA_NUM_THREADS": "1"})
    assert done.returncode == 2, done.stderr
    assert done.stderr.count("\n") == 1 and f"cannot write output file '{out}'" in done.stderr, done.stderr
    assert "File too large" in done.stderr
    assert not out.exists() and no_parts(tmp_path)


def test_a_full_disk_names_the_output_file(tmp_path):
    """Finding 15: ENOSPC said 'No space left on device' and no file. A 64 KiB tmpfs in a
    private mount namespace (needs unshare and mount rights; skipped without them)."""
    if shutil.which("unshare") is None:
        pytest.skip("unshare is not installed")
    probe = subprocess.run(["unshare", "-m", "sh", "-c", "mount -t tmpfs -o size=64k tmpfs /mnt"],
                           capture_output=True, text=True)
    if probe.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs in a private namespace: {probe.stderr.strip()}")
    cands, hist, cats = big_inputs(tmp_path, n_users=5000)
    disk = tmp_path / "disk"
    disk.mkdir()
    out = disk / "out.csv"
    script = (f"mount -t tmpfs -o size=64k tmpfs {disk} && NUMBA_NUM_THREADS=1 {SCRIPT} apply --candidates {cands} "
              f"--history {hist} --item-categories {cats} --output {out} --quiet; code=$?; "
              f"ls -a {disk}; exit $code")
    done = subprocess.run(["unshare", "-m", "sh", "-c", script], capture_output=True, text=True, timeout=300)
    assert done.returncode == 2, done.stderr
    assert f"cannot write output file '{out}'" in done.stderr and "No space left on device" in done.stderr
    assert ".part" not in done.stdout  # the listing taken inside the namespace, before it vanished
