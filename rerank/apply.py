"""``rerank apply``: files in, reranked file out (DESIGN §5), streaming by user.

    rerank apply --candidates cands.parquet --history history.csv \\
                 --item-categories genres.csv --output reranked.parquet --k 10 --lam 0.5

* Formats by suffix: ``.csv`` (optionally ``.gz``, ``.bz2``, ``.xz``, ``.zst``) or ``.parquet``
  / ``.pq``. CSV ids are read as text (kept verbatim, e.g. leading zeros); if one file holds
  integer ids and another text ids for the same column, the integers are compared as text.
* History and item categories are read whole (they define the targets); candidates are read in
  chunks of ``--batch-rows`` rows and reranked by whole users, so the candidate file can be
  larger than memory. **Each user's candidate rows must be contiguous** (grouped by
  ``user_id``, in any order of users): a user whose rows reappear after another user's is
  reported as an error naming the user and the line.
* The output is written to a temporary file next to ``--output`` and renamed only on success;
  on any error no output (or ``--skipped`` / ``--report``) file is created.
* User errors print one line naming the file, column, user, item or line, exit code 2.
* Nothing lost: the last line says where every user and row went (reranked, skipped with a
  reason under ``--on-invalid skip``, rows without a user id) and that the counts reconcile.

Details, formats and fallbacks: ``docs/inputs.md``.
"""

from __future__ import annotations

import argparse
import bz2
import contextlib
import gzip
import inspect
import json
import lzma
import os
import sys
import tempfile
import warnings
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pandas as pd

from rerank import validation
from rerank.errors import InputError, InputTypeError
from rerank.refine import DEFAULT_MAX_SWAPS
from rerank.reranker import CalibratedReranker
from rerank.streaming import StreamReport, rerank_batches

CSV_SUFFIXES = (".csv",)
COMPRESSIONS = (".gz", ".bz2", ".xz", ".zst")
PARQUET_SUFFIXES = (".parquet", ".pq")
DEFAULT_BATCH_ROWS = 200_000
NAN_TEXT = {"nan", "+nan", "-nan"}


# --------------------------------------------------------------------------- files
def file_format(path: Path, role: str) -> str:
    """``"csv"`` or ``"parquet"`` from the file name."""
    suffixes = [s.lower() for s in path.suffixes]
    if suffixes and suffixes[-1] in PARQUET_SUFFIXES:
        return "parquet"
    if suffixes and suffixes[-1] in CSV_SUFFIXES:
        return "csv"
    if len(suffixes) >= 2 and suffixes[-1] in COMPRESSIONS and suffixes[-2] in CSV_SUFFIXES:
        return "csv"
    raise InputError(
        f"{role} file '{path}': unknown format (suffix {''.join(path.suffixes) or 'none'}); "
        "use .csv (optionally .gz/.bz2/.xz/.zst) or .parquet"
    )


def _input_path(text: str, role: str) -> Path:
    path = Path(text)
    if not path.exists():
        raise InputError(f"{role} file '{path}' does not exist")
    if path.is_dir():
        raise InputError(f"{role} file '{path}' is a directory")
    file_format(path, role)
    return path


def _read_errors():
    import pyarrow as pa

    return (ValueError, TypeError, UnicodeDecodeError, pd.errors.ParserError, pd.errors.EmptyDataError,
            pd.errors.ParserWarning, pa.ArrowException, EOFError, OSError)


@contextlib.contextmanager
def reading(path: Path, role: str):
    """Turn a parse failure of a file into one ``InputError`` line naming the file.

    ``InputError`` raised inside (validation) gets the file name prefixed.
    """
    try:
        with warnings.catch_warnings():  # a row with more fields than the header: an error, not data loss
            warnings.simplefilter("error", pd.errors.ParserWarning)
            yield
    except InputError as exc:
        if str(exc).startswith(f"{role} file "):
            raise
        raise type(exc)(f"{role} file '{path}': {exc}") from None
    except FileNotFoundError:
        raise
    except _read_errors() as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise InputError(f"{role} file '{path}': cannot be read as {file_format(path, role)}: {first}") from None


def _csv_columns(path: Path) -> list[str]:
    return list(pd.read_csv(path, nrows=0, encoding="utf-8-sig").columns)


def _require(columns, needed, path: Path, role: str) -> None:
    missing = [c for c in needed if c not in columns]
    if missing:
        raise InputError(f"{role} file '{path}' is missing column(s) {missing}; it has {list(columns)}")


def _csv_kwargs(text_columns, columns) -> dict:
    """Ids (and numbers we parse ourselves) as text; only an empty field is missing, so ids such
    as ``NA`` stay ids."""
    return {
        "dtype": {c: str for c in text_columns if c in columns},
        "keep_default_na": False,
        "na_values": [""],
        "encoding": "utf-8-sig",
        "index_col": False,
    }


def read_whole(path: Path, role: str, id_columns: list[str]) -> pd.DataFrame:
    """A history / item-category file as a frame (index: CSV line numbers or Parquet rows)."""
    with reading(path, role):
        if file_format(path, role) == "parquet":
            import pyarrow.parquet as pq

            frame = pq.read_table(path).to_pandas()
            frame.index = pd.RangeIndex(len(frame), name="row")
        else:
            columns = _csv_columns(path)
            frame = pd.read_csv(path, **_csv_kwargs(id_columns, columns))
            frame.index = pd.RangeIndex(2, len(frame) + 2, name="line")
        _require(frame.columns, id_columns, path, role)
    return frame


def _parse_numbers(frame: pd.DataFrame, column: str, *, skip: bool) -> None:
    """Parse a text column of a candidate chunk into float64 in place.

    Text that is not a number raises ``InputTypeError`` naming the line, user and item (or, with
    ``skip``, becomes NaN so the user is skipped); ``nan``/``inf`` parse and are caught as
    non-finite by the validation.
    """
    if pd.api.types.is_numeric_dtype(frame[column].dtype) and not pd.api.types.is_bool_dtype(frame[column].dtype):
        return  # pandas parsed every value as a number
    raw = frame[column].astype(str)  # text (or booleans): parse it ourselves to name a bad line
    stripped = raw.str.strip()
    values = pd.to_numeric(stripped, errors="coerce").astype(np.float64)
    unparsed = (values.isna() & stripped.notna() & ~stripped.str.lower().isin(NAN_TEXT)).to_numpy(dtype=bool)
    if unparsed.any() and not skip:
        pos = int(np.flatnonzero(unparsed)[0])
        row = frame.iloc[pos]
        raise InputTypeError(
            f"column '{column}' must hold numbers: {validation._at(frame.index, frame.index[pos])} "
            f"(user {validation.show(row['user_id'])}, item {validation.show(row['item_id'])}) holds "
            f"{validation.show(raw.iloc[pos])}"
        )
    frame[column] = values


# --------------------------------------------------------------------------- id kinds
def _arrow_kind(arrow_type) -> str:
    import pyarrow as pa

    if pa.types.is_dictionary(arrow_type):
        arrow_type = arrow_type.value_type
    if pa.types.is_integer(arrow_type) or pa.types.is_floating(arrow_type):
        return validation.ID_INTEGER
    if pa.types.is_string(arrow_type) or pa.types.is_large_string(arrow_type):
        return validation.ID_STRING
    return validation.ID_EMPTY  # anything else is left to the validation to reject


def ids_as_text(series: pd.Series) -> pd.Series:
    """Integer ids as text (whole-number floats without a trailing ``.0``; nulls stay null).

    A float column that is not all whole numbers raises ``InputTypeError`` naming the row (a
    cast would truncate ``1.5`` to ``"1"``).
    """
    present = series.notna().to_numpy()
    if series.dtype.kind == "f":
        validation.id_kind(series, "candidates")  # raises unless every value is a whole number
        values = series.to_numpy()[present]
        text = pd.Series(values.astype(np.int64), dtype=object).astype(str).to_numpy()
    else:
        text = series[present].astype(str).to_numpy()
    out = pd.Series(None, index=series.index, dtype=object, name=series.name)
    out[present] = text
    return out.astype(str)


# --------------------------------------------------------------------------- candidates
class CandidateSource:
    """The candidate file read in chunks and regrouped into batches of whole users."""

    def __init__(self, path: Path, batch_rows: int, extra_columns: list[str], skip: bool):
        self.path = path
        self.format = file_format(path, "candidates")
        self.batch_rows = batch_rows
        self.columns = validation.CANDIDATE_COLUMNS + [c for c in extra_columns if c]
        self.numeric = ["score"] + [c for c in extra_columns if c]
        self.skip = skip
        self.user_as_text = False
        self.item_as_text = False
        with reading(path, "candidates"):
            if self.format == "parquet":
                import pyarrow.parquet as pq

                # pre_buffer=False: with pre-buffering, pyarrow keeps every column chunk read so
                # far until the file is closed (memory grows with the file, not the batch)
                self._parquet = pq.ParquetFile(path, pre_buffer=False)
                schema = self._parquet.schema_arrow
                _require(schema.names, self.columns, path, "candidates")
                self.n_rows = self._parquet.metadata.num_rows
                self.user_kind = _arrow_kind(schema.field("user_id").type)
                self.item_kind = _arrow_kind(schema.field("item_id").type)
            else:
                _require(_csv_columns(path), self.columns, path, "candidates")
                self.n_rows = None
                self.user_kind = self.item_kind = validation.ID_STRING

    def _chunks(self) -> Iterator[pd.DataFrame]:
        if self.format == "parquet":
            offset = 0
            for batch in self._parquet.iter_batches(batch_size=self.batch_rows, columns=self.columns):
                frame = batch.to_pandas()
                frame.index = pd.RangeIndex(offset, offset + len(frame), name="row")
                offset += len(frame)
                yield frame
            return
        columns = _csv_columns(self.path)
        # ids as text; numbers parsed by pandas (fast), and by _parse_numbers only when a chunk
        # holds text that is not a number (to name its line)
        reader = pd.read_csv(
            self.path, usecols=self.columns, chunksize=self.batch_rows,
            **_csv_kwargs(["user_id", "item_id"], columns),
        )
        with reader:
            for frame in reader:
                frame.index = pd.RangeIndex(frame.index.start + 2, frame.index.stop + 2, name="line")
                yield frame

    def _prepare(self, frame: pd.DataFrame) -> pd.DataFrame:
        for column in ("user_id", "item_id"):  # before grouping: lists or bytes cannot be grouped
            ids = frame[column]
            validation.id_kind(ids[ids.notna().to_numpy()], "candidates")
        if self.format == "csv":  # CSV numbers arrive as text; Parquet columns keep their types
            for column in self.numeric:
                _parse_numbers(frame, column, skip=self.skip)
        if self.user_as_text:
            frame["user_id"] = ids_as_text(frame["user_id"])
        if self.item_as_text:
            frame["item_id"] = ids_as_text(frame["item_id"])
        return frame

    def batches(self) -> Iterator[pd.DataFrame]:
        """Frames of whole users; a user's rows must be contiguous in the file.

        The trailing user of a chunk is carried over to the next chunk. At least one (possibly
        empty) frame is yielded, so the output has the right columns even for an empty file.
        """
        carry = None
        chunks = self._chunks()
        yielded = False
        while True:
            with reading(self.path, "candidates"):
                chunk = next(chunks, None)
                if chunk is None:
                    break
                chunk = self._prepare(chunk)
            if carry is not None:
                chunk = pd.concat([carry, chunk])
            with reading(self.path, "candidates"):
                start = _check_runs(chunk)
            carry = chunk.iloc[start:]
            if start > 0:
                yielded = True
                yield chunk.iloc[:start]
        if carry is not None and (len(carry) or not yielded):
            yield carry
        elif not yielded:
            with reading(self.path, "candidates"):
                yield self._prepare(self._empty())

    def _empty(self) -> pd.DataFrame:
        if self.format == "parquet":
            frame = self._parquet.schema_arrow.empty_table().select(self.columns).to_pandas()
            frame.index = pd.RangeIndex(0, name="row")
            return frame
        frame = pd.DataFrame({c: pd.Series([], dtype=str) for c in self.columns}, index=pd.RangeIndex(0, name="line"))
        return frame.astype({c: np.float64 for c in self.numeric})


def _check_runs(chunk: pd.DataFrame) -> int:
    """Check that each user's rows are contiguous in ``chunk`` (null user ids are ignored) and
    return the position where the chunk's last user starts (the rows to carry over)."""
    users = chunk["user_id"]
    present = users.notna().to_numpy()
    if not present.any():
        return len(chunk)
    positions = np.flatnonzero(present)
    values = users.to_numpy()[positions]
    codes, _ = pd.factorize(values)
    starts = np.flatnonzero(np.r_[True, codes[1:] != codes[:-1]])
    run_codes = codes[starts]
    if len(np.unique(run_codes)) < len(run_codes):
        again = int(np.flatnonzero(pd.Series(run_codes).duplicated().to_numpy())[0])
        pos = positions[starts[again]]
        raise InputError(
            f"user {validation.show(values[starts[again]])} reappears at "
            f"{validation._at(chunk.index, chunk.index[pos])} after other users' rows; each user's rows "
            "must be contiguous (sort or group the candidates by user_id)"
        )
    return int(positions[starts[-1]])


# --------------------------------------------------------------------------- outputs
def _open_text(path: Path, final: Path):
    suffix = final.suffix.lower()
    opener = {".gz": gzip.open, ".bz2": bz2.open, ".xz": lzma.open}.get(suffix)
    if suffix == ".zst":
        raise InputError(f"output file '{final}': writing .zst is not supported; use .csv, .csv.gz or .parquet")
    if opener is not None:
        return opener(path, "wt", encoding="utf-8", newline="")
    return open(path, "w", encoding="utf-8", newline="")


class Sink:
    """Writes frames to ``tmp`` in the format of ``final`` (CSV: header once; Parquet: one
    row group per frame, schema fixed by the first frame)."""

    def __init__(self, tmp: Path, final: Path, role: str):
        self.format = file_format(final, role)
        self.tmp = tmp
        self.final = final
        self._writer = None
        self._schema = None
        self._file = None
        if self.format == "csv":
            self._file = _open_text(tmp, final)

    def write(self, frame: pd.DataFrame) -> None:
        if self.format == "csv":
            frame.to_csv(self._file, header=self._schema is None, index=False)
            self._schema = True
            return
        import pyarrow as pa
        import pyarrow.parquet as pq

        table = pa.Table.from_pandas(frame, preserve_index=False, schema=self._schema)
        if self._writer is None:
            self._schema = table.schema
            self._writer = pq.ParquetWriter(self.tmp, self._schema)
        self._writer.write_table(table)

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
        if self._writer is not None:
            self._writer.close()


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


class AtomicFiles:
    """Temporary files next to their final paths, renamed over them only by :meth:`commit`;
    removed if the block fails."""

    def __init__(self):
        self._pairs: list[tuple[Path, Path]] = []

    def temp_for(self, final: Path) -> Path:
        fd, name = tempfile.mkstemp(dir=final.parent, prefix=f".{final.name}.", suffix=".part")
        os.close(fd)
        os.chmod(name, 0o666 & ~_umask())  # mkstemp makes 0600; the output gets the usual mode
        self._pairs.append((Path(name), final))
        return Path(name)

    def commit(self) -> None:
        for tmp, final in self._pairs:
            os.replace(tmp, final)
        self._pairs = []

    def discard(self) -> None:
        for tmp, _ in self._pairs:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp)
        self._pairs = []

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.discard()
        return False


def _check_directory(path: Path, role: str) -> None:
    if not path.parent.is_dir():
        raise InputError(f"{role} file '{path}': directory '{path.parent}' does not exist")
    if not os.access(path.parent, os.W_OK | os.X_OK):
        raise InputError(f"{role} file '{path}': directory '{path.parent}' is not writable")


def _output_path(text: str, role: str, inputs: list[Path]) -> Path:
    path = Path(text)
    file_format(path, role)
    _check_directory(path, role)
    if path.is_dir():
        raise InputError(f"{role} file '{path}' is a directory")
    for other in inputs:
        if os.path.realpath(other) == os.path.realpath(path):
            raise InputError(f"{role} file '{path}' is also an input file; write somewhere else")
    return path


def _report_path(text: str, inputs: list[Path]) -> Path:
    path = Path(text)
    _check_directory(path, "--report")
    if path.is_dir():
        raise InputError(f"--report file '{path}' is a directory")
    if any(os.path.realpath(other) == os.path.realpath(path) for other in inputs):
        raise InputError(f"--report file '{path}' is also an input or output file")
    return path


def write_frame(frame: pd.DataFrame, tmp: Path, final: Path, role: str) -> None:
    sink = Sink(tmp, final, role)
    try:
        sink.write(frame)
    finally:
        sink.close()


# --------------------------------------------------------------------------- command
def _rank_weights(text: str):
    if text in validation.RANK_WEIGHT_NAMES:
        return text
    try:
        return [float(x) for x in text.split(",")]
    except ValueError:
        raise InputError(f"--rank-weights must be 'uniform', 'dcg' or comma-separated numbers, got {text!r}") from None


def _max_swaps(text: str):
    """``--max-swaps``: a whole number >= 0, or ``none`` for no cap."""
    if text.strip().lower() == "none":
        return None
    try:
        return int(text)
    except ValueError:
        raise InputError(f"--max-swaps must be a whole number >= 0 or 'none', got {text!r}") from None


def _supports_min_share() -> bool:
    return "min_share" in inspect.signature(CalibratedReranker.__init__).parameters


def build_reranker(args) -> CalibratedReranker:
    """The reranker from the flags (parameter errors name the flag's parameter)."""
    options = {}
    if _supports_min_share() and getattr(args, "min_share", None) is not None:
        options["min_share"] = args.min_share
        if args.min_share_threshold is not None:
            options["min_share_threshold"] = args.min_share_threshold
    elif getattr(args, "min_share_threshold", None) is not None:
        raise InputError("--min-share-threshold needs --min-share")
    return CalibratedReranker(
        k=args.k,
        lam=args.lam_column if args.lam_column else args.lam,
        alpha=args.alpha,
        divergence=args.divergence,
        rank_weights=_rank_weights(args.rank_weights),
        normalize=None if args.normalize == "none" else args.normalize,
        safeguard=not args.no_safeguard,
        order=args.order,
        half_life=args.half_life,
        n_threads=args.threads,
        refine=None if args.refine == "none" else args.refine,
        max_swaps=args.max_swaps,
        **options,
    )


def _align_ids(history: pd.DataFrame, categories: pd.DataFrame, source: CandidateSource, paths) -> None:
    """Make ids of the same column comparable across files: if any file holds text ids, the
    integer ids of the others are compared as text."""
    with reading(paths["history"], "history"):
        hist_user = validation.id_kind(history["user_id"], "history")
        hist_item = validation.id_kind(history["item_id"], "history")
    with reading(paths["item_categories"], "item_categories"):
        cat_item = validation.id_kind(categories["item_id"], "item_categories")
    if validation.ID_STRING in (hist_user, source.user_kind):
        if hist_user == validation.ID_INTEGER:
            history["user_id"] = ids_as_text(history["user_id"])
        source.user_as_text = source.user_kind == validation.ID_INTEGER
    if validation.ID_STRING in (hist_item, cat_item, source.item_kind):
        if hist_item == validation.ID_INTEGER:
            history["item_id"] = ids_as_text(history["item_id"])
        if cat_item == validation.ID_INTEGER:
            categories["item_id"] = ids_as_text(categories["item_id"])
        source.item_as_text = source.item_kind == validation.ID_INTEGER


def _parse_timestamps(history: pd.DataFrame) -> None:
    """ISO dates in a CSV history's ``timestamp`` column become datetimes (numbers stay)."""
    if "timestamp" not in history.columns:
        return
    ts = history["timestamp"]
    if pd.api.types.is_string_dtype(ts.dtype) or pd.api.types.is_object_dtype(ts.dtype):
        parsed = pd.to_datetime(ts, errors="coerce", format="ISO8601", utc=True)
        bad = parsed.isna() & ts.notna()
        if bad.any():
            pos = int(np.flatnonzero(bad.to_numpy())[0])
            raise InputTypeError(
                f"column 'timestamp' must hold numbers or ISO dates: "
                f"{validation._at(history.index, history.index[pos])} holds {validation.show(ts.iloc[pos])}"
            )
        history["timestamp"] = parsed


def run(args) -> int:
    reranker = build_reranker(args)  # parameter errors first, before reading anything
    batch_rows = validation.check_whole("--batch-rows", args.batch_rows)
    paths = {
        "candidates": _input_path(args.candidates, "candidates"),
        "history": _input_path(args.history, "history"),
        "item_categories": _input_path(args.item_categories, "item_categories"),
    }
    inputs = list(paths.values())
    output = _output_path(args.output, "output", inputs)
    skipped_path = _output_path(args.skipped, "--skipped", inputs + [output]) if args.skipped else None
    report_path = _report_path(args.report, inputs + [output]) if args.report else None
    skip = args.on_invalid == "skip"

    history = read_whole(paths["history"], "history", ["user_id", "item_id"])
    categories = read_whole(paths["item_categories"], "item_categories", ["item_id", "category"])
    source = CandidateSource(paths["candidates"], batch_rows, [args.lam_column], skip)
    _align_ids(history, categories, source, paths)
    with reading(paths["history"], "history"):
        if reranker.half_life is not None:
            _parse_timestamps(history)
        validation.validate_history(history)
    with reading(paths["item_categories"], "item_categories"):
        validation.validate_item_categories(categories)
    try:
        reranker.fit(history, categories)
    except InputError as exc:
        raise type(exc)(
            f"history file '{paths['history']}' / item_categories file '{paths['item_categories']}': {exc}"
        ) from None
    del history, categories

    from tqdm import tqdm

    with AtomicFiles() as files:
        sink = Sink(files.temp_for(output), output, "output")
        stream = rerank_batches(reranker, source.batches(), on_invalid="skip" if skip else "raise")
        # no bar with --quiet, nor when stderr is not a terminal (logs stay clean)
        bar = tqdm(total=source.n_rows, unit=" rows", unit_scale=True, desc="rerank apply",
                   disable=True if args.quiet else None, file=sys.stderr, leave=False)
        try:
            with bar:
                for out in _prefixed(stream, paths["candidates"]):
                    sink.write(out)
                    bar.update(stream.report.n_candidates - bar.n)
        finally:
            sink.close()
        report = stream.report
        if not report.reconciles:  # a bug, not bad input: keep the traceback
            raise RuntimeError(f"row counts do not reconcile: {report.as_dict()}")
        if skipped_path is not None:
            write_frame(report.skipped, files.temp_for(skipped_path), skipped_path, "--skipped")
        if report_path is not None:
            tmp = files.temp_for(report_path)
            tmp.write_text(json.dumps(_report_json(report, args, paths, output), indent=2) + "\n")
        files.commit()
    print(f"rerank apply: wrote {output}: {report.summary()}{_skipped_hint(report, skipped_path)}", file=sys.stderr)
    return 0


def _prefixed(stream, path: Path):
    """Iterate the stream, naming the candidate file in any input error."""
    iterator = iter(stream)
    while True:
        try:
            out = next(iterator)
        except StopIteration:
            return
        except InputError as exc:
            message = str(exc)
            if not message.startswith("candidates file"):
                message = f"candidates file '{path}': {message}"
            raise type(exc)(message) from None
        yield out


def _skipped_hint(report: StreamReport, skipped_path) -> str:
    skipped = report.skipped
    if not len(skipped) or skipped_path is not None:
        return ""
    shown = ", ".join(
        f"{validation.show(u)} ({r})" for u, r in zip(skipped["user_id"][:3], skipped["reason"][:3], strict=True)
    )
    more = ", ..." if len(skipped) > 3 else ""
    return f"; skipped users: {shown}{more} (list them all with --skipped FILE)"


def _report_json(report: StreamReport, args, paths, output) -> dict:
    return {
        "output": str(output),
        "inputs": {role: str(p) for role, p in paths.items()},
        "parameters": {
            "k": args.k, "lam": args.lam_column or args.lam, "alpha": args.alpha,
            "divergence": args.divergence, "normalize": args.normalize, "order": args.order,
            "rank_weights": args.rank_weights, "half_life": args.half_life,
            "safeguard": not args.no_safeguard, "on_invalid": args.on_invalid,
            "refine": args.refine, "max_swaps": args.max_swaps,
            "min_share": getattr(args, "min_share", None),
            "min_share_threshold": getattr(args, "min_share_threshold", None),
        },
        "counts": report.as_dict(),
        "summary": report.summary(),
    }


class _OneLineParser(argparse.ArgumentParser):
    """Argument errors of ``rerank apply`` in one line (no usage block), exit code 2."""

    def error(self, message):
        self.exit(2, f"{self.prog}: error: {message}\n")


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "apply",
        help="rerank a candidate file (CSV/Parquet) into an output file",
        description="Rerank a candidate file into an output file (CSV or Parquet by suffix), streaming by "
        "user: each user's candidate rows must be contiguous. Bad input: one line naming the file, "
        "column, line, user or item, exit code 2, no output file. See docs/inputs.md.",
    )
    parser.__class__ = _OneLineParser
    io = parser.add_argument_group("files (CSV or Parquet by suffix)")
    io.add_argument("--candidates", required=True, help="user_id, item_id, score; each user's rows contiguous")
    io.add_argument("--history", required=True, help="user_id, item_id [, weight, timestamp]")
    io.add_argument("--item-categories", required=True, help="item_id, category [, weight]")
    io.add_argument("--output", required=True, help="user_id, item_id, score, rank (written atomically)")
    io.add_argument("--skipped", help="write the skipped users (user_id, reason, n_rows) here")
    io.add_argument("--report", help="write a JSON report (counts, reconciliation, parameters) here")
    opts = parser.add_argument_group("reranking")
    opts.add_argument("--k", type=int, default=10, help="list length (default 10)")
    lam = opts.add_mutually_exclusive_group()
    lam.add_argument("--lam", type=float, default=0.5, help="trade-off λ in [0, 1] (default 0.5)")
    lam.add_argument("--lam-column", help="candidates column holding a per-user λ (constant within a user)")
    opts.add_argument("--alpha", type=float, default=0.01, help="KL smoothing α in (0, 1) (default 0.01)")
    opts.add_argument("--divergence", choices=["kl", "hellinger", "chi2"], default="kl")
    opts.add_argument("--normalize", choices=["none", "minmax", "rank"], default="none",
                      help="per-user score normalisation before reranking (default none)")
    opts.add_argument("--order", choices=["greedy", "score"], default="greedy",
                      help="output order: greedy pick order or chosen set by score")
    opts.add_argument("--rank-weights", default="uniform", help="uniform, dcg or comma-separated weights")
    opts.add_argument("--half-life", type=float, help="recency half-life on the history's timestamp")
    opts.add_argument("--no-safeguard", action="store_true", help="exactly Steck's greedy (no top-k safeguard)")
    opts.add_argument("--refine", choices=["none", "swap"], default="none",
                      help="swap: improve each list by single swaps until none improves the objective "
                           "(starts from the better of the greedy and top-k); default none")
    opts.add_argument("--max-swaps", type=_max_swaps, default=DEFAULT_MAX_SWAPS,
                      help=f"with --refine swap: cap on the swaps per user (default {DEFAULT_MAX_SWAPS}; none: no cap)")
    if _supports_min_share():
        opts.add_argument("--min-share", type=float,
                          help="hard quotas (DESIGN §4.3): each category g gets at least floor(ρ·k·p_g) "
                               "items carrying it when the candidates allow; ρ in (0, 1], 1 = full share")
        opts.add_argument("--min-share-threshold", type=float,
                          help="with --min-share: protect only categories with p_g >= this share (default 0)")
    run_opts = parser.add_argument_group("running")
    run_opts.add_argument("--on-invalid", choices=["error", "skip"], default="error",
                          help="invalid candidate rows: fail (default) or skip their users and report them")
    run_opts.add_argument("--batch-rows", type=int, default=DEFAULT_BATCH_ROWS,
                          help=f"candidate rows read per chunk (default {DEFAULT_BATCH_ROWS})")
    run_opts.add_argument("--threads", type=int, help="numba threads (default: all cores)")
    run_opts.add_argument("--quiet", action="store_true",
                          help="no progress bar (it is shown only when stderr is a terminal anyway)")
    parser.set_defaults(func=run)
