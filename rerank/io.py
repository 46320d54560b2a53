"""File sources, sinks and atomic writes (``rerank apply``, ``rerank gap``); docs/inputs.md.

* Formats by suffix (:func:`file_format`): ``.csv`` (+ ``.gz``/``.bz2``/``.xz``/``.zst``) or
  ``.parquet``/``.pq``. CSV ids are read as text, verbatim; only an empty field is missing.
* Sources: :func:`read_whole` (history, categories; the index gives the CSV line or Parquet row
  errors name) and :class:`CandidateSource` (chunks regrouped into batches of whole users).
  :func:`align_ids` compares integer ids as text when another file holds text ids.
* Sinks: :class:`Sink` writes to a temporary file; :class:`AtomicFiles` renames it over the
  final path only when everything succeeded. :func:`reading` turns a parse failure into one
  :class:`~rerank.errors.InputError` line naming the file.
"""

from __future__ import annotations

import bz2
import contextlib
import gzip
import lzma
import os
import tempfile
import warnings
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pandas as pd

from rerank import schemas
from rerank.errors import InputError, InputTypeError
from rerank.params import show

CSV_SUFFIXES = (".csv",)
COMPRESSIONS = (".gz", ".bz2", ".xz", ".zst")
PARQUET_SUFFIXES = (".parquet", ".pq")
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


def input_path(text: str, role: str) -> Path:
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
            f"column '{column}' must hold numbers: {schemas.at_row(frame.index, frame.index[pos])} "
            f"(user {show(row['user_id'])}, item {show(row['item_id'])}) holds "
            f"{show(raw.iloc[pos])}"
        )
    frame[column] = values


# --------------------------------------------------------------------------- id kinds
def _arrow_kind(arrow_type) -> str:
    import pyarrow as pa

    if pa.types.is_dictionary(arrow_type):
        arrow_type = arrow_type.value_type
    if pa.types.is_integer(arrow_type) or pa.types.is_floating(arrow_type):
        return schemas.ID_INTEGER
    if pa.types.is_string(arrow_type) or pa.types.is_large_string(arrow_type):
        return schemas.ID_STRING
    return schemas.ID_EMPTY  # anything else is left to the validation to reject


def ids_as_text(series: pd.Series) -> pd.Series:
    """Integer ids as text (whole-number floats without a trailing ``.0``; nulls stay null).

    A float column that is not all whole numbers raises ``InputTypeError`` naming the row (a
    cast would truncate ``1.5`` to ``"1"``).
    """
    present = series.notna().to_numpy()
    if series.dtype.kind == "f":
        schemas.id_kind(series, "candidates")  # raises unless every value is a whole number
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
        self.columns = schemas.CANDIDATE_COLUMNS + [c for c in extra_columns if c]
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
                self.user_kind = self.item_kind = schemas.ID_STRING

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
            schemas.id_kind(ids[ids.notna().to_numpy()], "candidates")
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
            f"user {show(values[starts[again]])} reappears at "
            f"{schemas.at_row(chunk.index, chunk.index[pos])} after other users' rows; each user's rows "
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


def output_path(text: str, role: str, inputs: list[Path], *, any_format: bool = False) -> Path:
    """A path to write ``role`` to: a known format (unless ``any_format``), in a writable
    directory, not a directory, not one of ``inputs``."""
    path = Path(text)
    if not any_format:
        file_format(path, role)
    if not path.parent.is_dir():
        raise InputError(f"{role} file '{path}': directory '{path.parent}' does not exist")
    if not os.access(path.parent, os.W_OK | os.X_OK):
        raise InputError(f"{role} file '{path}': directory '{path.parent}' is not writable")
    if path.is_dir():
        raise InputError(f"{role} file '{path}' is a directory")
    if any(os.path.realpath(other) == os.path.realpath(path) for other in inputs):
        raise InputError(f"{role} file '{path}' is also an input or output file; write somewhere else")
    return path


def write_frame(frame: pd.DataFrame, tmp: Path, final: Path, role: str) -> None:
    sink = Sink(tmp, final, role)
    try:
        sink.write(frame)
    finally:
        sink.close()



def align_ids(
    history: pd.DataFrame, categories: pd.DataFrame, source: CandidateSource, paths, shown: pd.DataFrame | None = None,
) -> None:
    """Make ids of the same column comparable across files (``shown``: the ``--shown`` file, if
    any): if any file holds text ids, the integer ids of the others are compared as text."""
    with reading(paths["history"], "history"):
        users = [(history, "user_id", schemas.id_kind(history["user_id"], "history"))]
        items = [(history, "item_id", schemas.id_kind(history["item_id"], "history"))]
    with reading(paths["item_categories"], "item_categories"):
        items.append((categories, "item_id", schemas.id_kind(categories["item_id"], "item_categories")))
    if shown is not None:
        with reading(paths["shown"], "shown"):
            users.append((shown, "user_id", schemas.id_kind(shown["user_id"], "shown")))
            items.append((shown, "item_id", schemas.id_kind(shown["item_id"], "shown")))
    for frames, kind, attr in ((users, source.user_kind, "user_as_text"), (items, source.item_kind, "item_as_text")):
        if schemas.ID_STRING in (kind, *(k for _, _, k in frames)):
            for frame, column, k in frames:
                if k == schemas.ID_INTEGER:
                    frame[column] = ids_as_text(frame[column])
            setattr(source, attr, kind == schemas.ID_INTEGER)


def parse_timestamps(history: pd.DataFrame) -> None:
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
                f"{schemas.at_row(history.index, history.index[pos])} holds {show(ts.iloc[pos])}"
            )
        history["timestamp"] = parsed


