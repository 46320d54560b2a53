"""Output files of ``rerank apply``: sinks, atomic writes, and the inputs' stamps (docs/inputs.md).

* :class:`Sink` writes frames to a temporary file in the format of the final path (CSV: header
  once; Parquet: one row group per frame, the schema fixed up front — the candidates' id types —
  or by the first frame). A write that fails (disk full, file too large) is an ``OSError``
  naming the output file.
* :class:`AtomicFiles` renames the temporary files over their final paths only by
  :meth:`~AtomicFiles.commit`, and removes them if anything fails — also on SIGTERM, which the
  CLI turns into an exception. A run killed outright (SIGKILL, power loss) leaves its temporary
  file behind; it is named ``.<output>.<host>.<pid>.<random>.part``, and the next run writing
  the same output removes those whose process on this host is gone.
* :class:`InputStamps` records each input's size, mtime and inode before reading and checks
  them before the commit: an input changed while it was read is an error, not "nothing lost".
"""

from __future__ import annotations

import bz2
import contextlib
import errno
import gzip
import lzma
import os
import socket
import tempfile
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from rerank.errors import InputError
from rerank.ids import text_keys
from rerank.io import file_format

ID_COLUMNS = ("user_id", "item_id")


def _open_text(path: Path, final: Path):
    suffix = final.suffix.lower()
    opener = {".gz": gzip.open, ".bz2": bz2.open, ".xz": lzma.open}.get(suffix)
    if suffix == ".zst":
        raise InputError(f"output file '{final}': writing .zst is not supported; use .csv, .csv.gz or .parquet")
    if opener is not None:
        return opener(path, "wt", encoding="utf-8", newline="")
    return open(path, "w", encoding="utf-8", newline="")


@contextlib.contextmanager
def naming(final: Path, role: str, tmp: Path | None = None):
    """An ``OSError`` while writing (``ENOSPC``, ``EFBIG``, ``EIO`` ...) names the file."""
    try:
        yield
    except OSError as exc:
        if str(final) in str(exc):
            raise
        what = exc.strerror or os.strerror(exc.errno or errno.EIO)
        via = f" (temporary file '{tmp.name}')" if tmp is not None else ""
        raise OSError(exc.errno, f"cannot write {role} file '{final}'{via}: {what}") from None


class Sink:
    """Writes frames to ``tmp`` in the format of ``final``.

    CSV: header once; whole-number float ids are written as integers (``1``, not ``1.0``: the
    same id, docs/inputs.md). Parquet: one row group per frame; the schema is ``schema`` when
    given (the candidates' id types) or the first frame's.
    """

    def __init__(self, tmp: Path, final: Path, role: str, schema=None):
        self.format = file_format(final, role)
        self.tmp = tmp
        self.final = final
        self.role = role
        self._writer = None
        self._schema = schema
        self._header = True
        self._file = None
        if self.format == "csv":
            with naming(final, role, tmp):
                self._file = _open_text(tmp, final)

    def write(self, frame: pd.DataFrame) -> None:
        with naming(self.final, self.role, self.tmp):
            if self.format == "csv":
                ids = {c: text_keys(frame[c]) for c in ID_COLUMNS if c in frame and frame[c].dtype.kind == "f"}
                (frame.assign(**ids) if ids else frame).to_csv(self._file, header=self._header, index=False)
                self._header = False
                return
            import pyarrow as pa
            import pyarrow.parquet as pq

            table = pa.Table.from_pandas(frame, preserve_index=False, schema=self._schema)
            if self._writer is None:
                self._schema = table.schema
                self._writer = pq.ParquetWriter(self.tmp, self._schema)
            self._writer.write_table(table)

    def close(self) -> None:
        with naming(self.final, self.role, self.tmp):
            if self._file is not None:
                self._file.close()
            if self._writer is not None:
                self._writer.close()


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def _host() -> str:
    return socket.gethostname().replace(".", "_").replace(os.sep, "_") or "host"


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _parts(final: Path):
    """``(path, pid)`` of the temporary files of ``final`` made on this host by this user
    (``.<name>.<host>.<pid>.<random>.part``)."""
    prefix = f".{final.name}.{_host()}."
    with contextlib.suppress(OSError):
        for entry in os.scandir(final.parent):
            name = entry.name
            if not (name.startswith(prefix) and name.endswith(".part")):
                continue
            pid_text = name[len(prefix):].split(".", 1)[0]
            with contextlib.suppress(OSError):
                if pid_text.isdigit() and entry.stat(follow_symlinks=False).st_uid == os.getuid():
                    yield Path(entry.path), int(pid_text)


def remove_stale_parts(final: Path) -> list[Path]:
    """Remove temporary files of ``final`` left by runs on this host whose process is gone;
    returns what was removed."""
    removed = []
    for path, pid in list(_parts(final)):
        if pid != os.getpid() and not _alive(pid):
            with contextlib.suppress(OSError):
                os.unlink(path)
                removed.append(path)
    return removed


class AtomicFiles:
    """Temporary files next to their final paths, renamed over them only by :meth:`commit`;
    removed if the block fails. Stale temporary files of the same outputs left by killed runs
    on this host are removed first (:func:`remove_stale_parts`)."""

    def __init__(self):
        self._pairs: list[tuple[Path, Path]] = []
        self._finals: list[Path] = []

    def temp_for(self, final: Path) -> Path:
        remove_stale_parts(final)
        # Registered before the file exists: a signal landing between mkstemp and the line
        # after it still leaves a file that discard() finds by its name (this process's pid).
        self._finals.append(final)
        with naming(final, "output"):
            fd, name = tempfile.mkstemp(dir=final.parent, prefix=f".{final.name}.{_host()}.{os.getpid()}.",
                                        suffix=".part")
            os.close(fd)
            os.chmod(name, 0o666 & ~_umask())  # mkstemp makes 0600; the output gets the usual mode
        self._pairs.append((Path(name), final))
        return Path(name)

    def commit(self) -> None:
        for tmp, final in self._pairs:
            with naming(final, "output", tmp):
                os.replace(tmp, final)
        self._pairs = []
        self._finals = []

    def discard(self) -> None:
        """Remove this process's temporary files of every output asked for, registered or not."""
        for final in self._finals:
            for path, pid in list(_parts(final)):
                if pid == os.getpid():
                    with contextlib.suppress(FileNotFoundError):
                        os.unlink(path)
        self._pairs = []
        self._finals = []

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.discard()
        return False


def output_path(text: str, role: str, others: list[Path], *, any_format: bool = False) -> Path:
    """A path to write ``role`` to: a known format (unless ``any_format``), in a writable
    directory, not a directory, not one of ``others`` (the inputs and the other outputs)."""
    path = Path(text)
    if not any_format:
        file_format(path, role)
    if not path.parent.is_dir():
        raise InputError(f"{role} file '{path}': directory '{path.parent}' does not exist")
    if not os.access(path.parent, os.W_OK | os.X_OK):
        raise InputError(f"{role} file '{path}': directory '{path.parent}' is not writable")
    if path.is_dir():
        raise InputError(f"{role} file '{path}' is a directory")
    for other in others:
        if os.path.realpath(other) == os.path.realpath(path):
            raise InputError(f"{role} file '{path}' is also an input or output file ('{other}'); write somewhere else")
    return path


def write_frame(frame: pd.DataFrame, tmp: Path, final: Path, role: str) -> None:
    sink = Sink(tmp, final, role)
    try:
        sink.write(frame)
    finally:
        sink.close()


@dataclass(frozen=True)
class InputStamps:
    """Size, modification time and inode of each input file, taken before reading."""

    stamps: dict

    @classmethod
    def take(cls, paths: dict) -> InputStamps:
        return cls({role: (Path(p), _stamp(Path(p))) for role, p in paths.items()})

    def check(self) -> None:
        """``InputError`` naming the first input whose size, mtime or inode changed (or that
        vanished) since :meth:`take`: what was read may mix two versions of the file."""
        for role, (path, before) in self.stamps.items():
            try:
                after = _stamp(path)
            except FileNotFoundError:
                after = None
            if after != before:
                what = "was removed" if after is None else _change(before, after)
                raise InputError(
                    f"{role} file '{path}' changed while it was read ({what}); the output would mix "
                    "versions of it, so nothing was written: run again once the file is complete"
                )


def _stamp(path: Path) -> tuple[int, int, int, int]:
    st = os.stat(path)
    return st.st_size, st.st_mtime_ns, st.st_ino, st.st_dev


def _change(before, after) -> str:
    if before[0] != after[0]:
        return f"size {before[0]} -> {after[0]} bytes"
    if before[2:] != after[2:]:
        return "replaced by another file"
    return "modified in place"
