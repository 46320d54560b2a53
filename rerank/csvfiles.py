"""The one strict CSV reader every input file goes through (docs/inputs.md, "CSV files").

One configuration, shared by ``rerank apply``, ``rerank gap`` and the MovieLens loader:

* UTF-8 (a byte-order mark is skipped), comma-separated, ``"`` quotes; a quoted field may span
  lines; blank lines are skipped. Compressed files by suffix: ``.gz``, ``.bz2``, ``.zst``, ``.xz``.
* The first row is the header; it must name every column once (a repeated name is an error:
  pandas would rename the second ``score`` to ``score.1`` and read the first).
* **Every row has exactly as many fields as the header**: a row with more or fewer is an error
  naming the file, the line and both counts. (pandas drops extra fields when told which
  columns to use, and fills missing ones with NaN, silently.)
* Every field is read as text, verbatim: ids keep leading zeros and spaces; only an empty field
  is missing (``NA``, ``null`` and ``nan`` are ids like any other). Numbers are parsed by the
  caller, which names the line of any field that is not one.

Rows are labelled by their line in the file (the header is line 1; a quoted field spanning
lines makes the labels of later rows run behind the physical lines). Errors are
:class:`~rerank.errors.InputError` messages without the file name; :func:`rerank.io.reading`
prefixes it.
"""

from __future__ import annotations

import contextlib
import lzma
from collections.abc import Iterator
from pathlib import Path

import pandas as pd

from rerank.errors import InputError
from rerank.params import show

FIRST_LINE = 2  # the label of the first data row (the header is line 1)


@contextlib.contextmanager
def _binary(path: Path):
    """The file's bytes, decompressed by suffix (pyarrow reads .gz/.bz2/.zst, Python .xz)."""
    import pyarrow as pa

    suffix = path.suffix.lower()
    if suffix == ".xz":
        with lzma.open(path, "rb") as handle:
            yield handle
    elif suffix in (".gz", ".bz2", ".zst"):
        with pa.input_stream(str(path), compression="detect") as handle:
            yield handle
    else:
        with pa.OSFile(str(path), "rb") as handle:
            yield handle


class _RowCheck:
    """pyarrow's handler for a row whose field count differs from the header's: remembers the
    first one (line, counts, text) and stops the read."""

    def __init__(self):
        self.bad = None

    def __call__(self, row) -> str:
        if self.bad is None:
            self.bad = row
        return "error"

    def error(self) -> InputError | None:
        row = self.bad
        if row is None:
            return None
        where = f"line {row.number}" if row.number is not None else "a row"
        return InputError(
            f"{where} has {row.actual_columns} fields but the header has {row.expected_columns} "
            f"({show(row.text)}); every row needs one field per column"
        )


def _options(names: list[str], check: _RowCheck):
    import pyarrow as pa
    import pyarrow.csv as pacsv

    read = pacsv.ReadOptions(use_threads=False, block_size=1 << 20)  # single-threaded: line numbers known
    parse = pacsv.ParseOptions(newlines_in_values=True, invalid_row_handler=check)
    convert = pacsv.ConvertOptions(
        column_types={name: pa.string() for name in names}, include_columns=names,
        null_values=[""], strings_can_be_null=True, quoted_strings_can_be_null=True,
    )
    return read, parse, convert


def header(path: Path) -> list[str]:
    """The column names of a CSV file; an empty file or a repeated name is an ``InputError``."""
    import pyarrow as pa
    import pyarrow.csv as pacsv

    with _binary(path) as handle:
        try:
            reader = pacsv.open_csv(
                handle, read_options=pacsv.ReadOptions(use_threads=False),
                parse_options=pacsv.ParseOptions(newlines_in_values=True, invalid_row_handler=lambda row: "skip"),
            )
        except pa.ArrowInvalid as exc:
            if "Empty CSV file" in str(exc):
                raise InputError("cannot be read as csv: the file is empty (no header line)") from None
            raise
        names = list(reader.schema.names)
    repeated = sorted({name for name in names if names.count(name) > 1})
    if repeated:
        raise InputError(f"header names column {show(repeated[0])} {names.count(repeated[0])} times; "
                         "name every column once")
    return names


def _frame(table, first_line: int, numbers) -> pd.DataFrame:
    import pyarrow as pa
    import pyarrow.compute as pc

    for name in numbers:
        at = table.schema.get_field_index(name)
        try:
            table = table.set_column(at, name, pc.cast(table.column(at), pa.float64()))
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
            pass  # some field is not a plain number: left as text for the caller to parse or name
    frame = table.to_pandas()
    frame.index = pd.RangeIndex(first_line, first_line + len(frame), name="line")
    return frame


def iter_csv(path: Path, columns: list[str], batch_rows: int, numbers=()) -> Iterator[pd.DataFrame]:
    """The ``columns`` of a CSV file as text, ``batch_rows`` rows at a time (the last chunk may
    be shorter; an empty file body gives no chunk). Index: the line of each row. The columns in
    ``numbers`` come as float64 in a chunk where every field is a number (``nan``, ``inf``
    included), else as text."""
    import pyarrow as pa
    import pyarrow.csv as pacsv

    check = _RowCheck()
    line = FIRST_LINE
    pending: list = []
    n_pending = 0
    with _binary(path) as handle:
        try:
            reader = pacsv.open_csv(handle, *_options(columns, check))
            for batch in reader:
                pending.append(batch)
                n_pending += batch.num_rows
                while n_pending >= batch_rows:
                    table = pa.Table.from_batches(pending)
                    chunk, rest = table.slice(0, batch_rows), table.slice(batch_rows)
                    yield _frame(chunk, line, numbers)
                    line += batch_rows
                    pending, n_pending = rest.to_batches(), rest.num_rows
        except pa.ArrowInvalid:
            error = check.error()
            if error is None:
                raise
            raise error from None
    if n_pending:
        yield _frame(pa.Table.from_batches(pending), line, numbers)


def read_csv(path: Path, columns: list[str], numbers=()) -> pd.DataFrame:
    """The ``columns`` of a whole CSV file (:func:`iter_csv`; index: the line of each row)."""
    chunks = list(iter_csv(path, columns, 1 << 62, numbers))
    if chunks:
        return chunks[0]
    frame = pd.DataFrame({c: pd.Series([], dtype=str) for c in columns})
    frame.index = pd.RangeIndex(FIRST_LINE, FIRST_LINE, name="line")
    return frame
