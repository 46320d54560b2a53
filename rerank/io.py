"""File sources (``rerank apply``, ``rerank gap``); docs/inputs.md. Outputs: :mod:`rerank.outputs`.

* Formats by suffix (:func:`file_format`): ``.csv`` (+ ``.gz``/``.bz2``/``.xz``/``.zst``) or
  ``.parquet``/``.pq``. CSV files go through the one strict reader, :mod:`rerank.csvfiles`
  (ids as text, verbatim; a row with too many or too few fields is an error naming the line).
* Parquet integer columns are read as pandas nullable integers, so a null never turns an id
  column into float64 (docs/inputs.md, "Ids"); the ids keep their values and type to the output.
* Sources: :func:`read_whole` (history, categories; the index gives the CSV line or Parquet row
  errors name) and :class:`CandidateSource` (chunks regrouped into batches of whole users).
  :func:`reading` turns a parse failure into one :class:`~rerank.errors.InputError` line naming
  the file.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pandas as pd

from rerank import csvfiles, schemas
from rerank.errors import InputError, InputTypeError
from rerank.ids import exact_keys, show_id
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

    return (ValueError, TypeError, UnicodeDecodeError, pa.ArrowException, EOFError, OSError)


@contextlib.contextmanager
def reading(path: Path, role: str):
    """Turn a parse failure of a file into one ``InputError`` line naming the file.

    ``InputError`` raised inside (validation) gets the file name prefixed.
    """
    try:
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


def _require(columns, needed, path: Path, role: str) -> None:
    missing = [c for c in needed if c not in columns]
    if missing:
        raise InputError(f"{role} file '{path}' is missing column(s) {missing}; it has {list(columns)}")


def _exact_integers(arrow_type):
    """pyarrow -> pandas types for Parquet columns: integers as nullable integers (a null would
    otherwise make the whole column float64, and ids above 2**53 collide); the rest as usual."""
    import pyarrow as pa

    mapping = {
        pa.int8(): pd.Int8Dtype(), pa.int16(): pd.Int16Dtype(), pa.int32(): pd.Int32Dtype(),
        pa.int64(): pd.Int64Dtype(), pa.uint8(): pd.UInt8Dtype(), pa.uint16(): pd.UInt16Dtype(),
        pa.uint32(): pd.UInt32Dtype(), pa.uint64(): pd.UInt64Dtype(),
    }
    return mapping.get(arrow_type)


def arrow_to_frame(table) -> pd.DataFrame:
    """A pyarrow table or batch as a frame whose integer columns stay exact (:func:`_exact_integers`)."""
    return table.to_pandas(types_mapper=_exact_integers)


def numbers_or_text(series: pd.Series) -> pd.Series:
    """A CSV text column as float64 when every field is a number (``nan``/``inf`` included),
    else unchanged, so the validation names the first field that is not a number."""
    stripped = series.str.strip()
    values = pd.to_numeric(stripped, errors="coerce")
    unparsed = values.isna() & stripped.notna() & ~stripped.str.lower().isin(NAN_TEXT)
    if unparsed.any():
        return series
    return values.astype(np.float64)


NUMERIC_COLUMNS = ("weight", "timestamp")


def read_whole(
    path: Path, role: str, id_columns: list[str], numeric=NUMERIC_COLUMNS, optional_ids=(),
) -> pd.DataFrame:
    """A history / item-category (or, for ``rerank gap``, candidate) file as a frame: the
    ``id_columns`` (required), the ``optional_ids`` it has (e.g. item categories' ``attribute``)
    and any ``numeric`` columns it has; other columns are not read.
    Index: CSV line numbers or Parquet rows."""
    with reading(path, role):
        if file_format(path, role) == "parquet":
            import pyarrow.parquet as pq

            names = pq.read_schema(path).names
            _require(names, id_columns, path, role)
            id_columns = id_columns + [c for c in optional_ids if c in names]
            wanted = id_columns + [c for c in numeric if c in names and c not in id_columns]
            frame = arrow_to_frame(pq.read_table(path, columns=wanted))
            frame.index = pd.RangeIndex(len(frame), name="row")
        else:
            names = csvfiles.header(path)
            _require(names, id_columns, path, role)
            id_columns = id_columns + [c for c in optional_ids if c in names]
            wanted = id_columns + [c for c in numeric if c in names and c not in id_columns]
            frame = csvfiles.read_csv(path, wanted, numbers=wanted[len(id_columns):])
            for column in wanted[len(id_columns):]:
                if not pd.api.types.is_float_dtype(frame[column].dtype):
                    frame[column] = numbers_or_text(frame[column])
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
            f"(user {show_id(row['user_id'])}, item {show_id(row['item_id'])}) holds "
            f"{show(raw.iloc[pos])}"
        )
    frame[column] = values


# --------------------------------------------------------------------------- candidates
class CandidateSource:
    """The candidate file read in chunks and regrouped into batches of whole users. Ids come as
    the file holds them (CSV: text; Parquet: the column's type, integers exact)."""

    def __init__(self, path: Path, batch_rows: int, extra_columns: list[str], skip: bool):
        self.path = path
        self.format = file_format(path, "candidates")
        self.batch_rows = batch_rows
        self.columns = schemas.CANDIDATE_COLUMNS + [c for c in extra_columns if c]
        self.numeric = ["score"] + [c for c in extra_columns if c]
        self.skip = skip
        self.output_schema = None  # Parquet: the candidates' id types, kept in a Parquet output
        with reading(path, "candidates"):
            if self.format == "parquet":
                import pyarrow as pa
                import pyarrow.parquet as pq

                # pre_buffer=False: with pre-buffering, pyarrow keeps every column chunk read so
                # far until the file is closed (memory grows with the file, not the batch)
                self._parquet = pq.ParquetFile(path, pre_buffer=False)
                schema = self._parquet.schema_arrow
                _require(schema.names, self.columns, path, "candidates")
                self.n_rows = self._parquet.metadata.num_rows
                self.output_schema = pa.schema([
                    schema.field("user_id"), schema.field("item_id"), pa.field("score", pa.float64()),
                    pa.field("rank", pa.int64()),
                ])
            else:
                _require(csvfiles.header(path), self.columns, path, "candidates")
                self.n_rows = None

    def _chunks(self) -> Iterator[pd.DataFrame]:
        if self.format == "parquet":
            offset = 0
            for batch in self._parquet.iter_batches(batch_size=self.batch_rows, columns=self.columns):
                frame = arrow_to_frame(batch)
                frame.index = pd.RangeIndex(offset, offset + len(frame), name="row")
                offset += len(frame)
                yield frame
            return
        # ids as text; numbers cast by pyarrow (fast), and by _parse_numbers only when a chunk
        # holds text that is not a plain number (to name its line)
        yield from csvfiles.iter_csv(self.path, self.columns, self.batch_rows, numbers=self.numeric)

    def _prepare(self, frame: pd.DataFrame) -> pd.DataFrame:
        for column in ("user_id", "item_id"):  # before grouping: lists or bytes cannot be grouped
            ids = frame[column]
            schemas.id_kind(ids[ids.notna().to_numpy()], "candidates")
        if self.format == "csv":  # CSV numbers arrive as text; Parquet columns keep their types
            for column in self.numeric:
                _parse_numbers(frame, column, skip=self.skip)
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
            frame = arrow_to_frame(self._parquet.schema_arrow.empty_table().select(self.columns))
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
    codes, _ = pd.factorize(exact_keys(users)[positions])  # exact: never through float64
    starts = np.flatnonzero(np.r_[True, codes[1:] != codes[:-1]])
    run_codes = codes[starts]
    if len(np.unique(run_codes)) < len(run_codes):
        again = int(np.flatnonzero(pd.Series(run_codes).duplicated().to_numpy())[0])
        pos = positions[starts[again]]
        raise InputError(
            f"user {show_id(users.iloc[pos])} reappears at "
            f"{schemas.at_row(chunk.index, chunk.index[pos])} after other users' rows; each user's rows "
            "must be contiguous (sort or group the candidates by user_id)"
        )
    return int(positions[starts[-1]])


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


