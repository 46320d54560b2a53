"""The ``rerank`` command line.

Core sub-commands are listed in ``CORE_COMMANDS`` (module paths inside ``rerank``). Sub-commands
that live in ``rerank.adapters`` or ``rerank.simulations`` register through the
``rerank.commands`` entry-point group in ``pyproject.toml``, so the core never imports them.
A command module provides ``register(subparsers) -> None``; the parser it adds sets
``func=run(args) -> int`` with ``set_defaults``.

User errors print one line ``rerank <command>: error: ...`` and exit with code 2, no
traceback: :class:`rerank.errors.InputError` (what every check in :mod:`rerank.params`,
:mod:`rerank.schemas` and :class:`rerank.RerankOptions` raises) and ``OSError`` (missing file,
permission denied, disk full). Commands should raise ``InputError`` for anything the user can
fix. Any other exception (a plain ``ValueError``, ``KeyError``, ...) is a bug: it keeps its
traceback (exit code 1) so it is not disguised as bad input. Ctrl-C exits with code 130 and
SIGTERM with 143; both unwind through the commands' cleanup, so no temporary file is left.
A Python warning raised while a command runs prints as one line ``rerank <command>: warning: ...``.

Commands: :mod:`~rerank.cli.apply`, :mod:`~rerank.cli.demo`, :mod:`~rerank.cli.bench`,
:mod:`~rerank.cli.gap`, :mod:`~rerank.cli.warmup`; their reranking flags and
:func:`~rerank.cli.options.options_from_args` live in :mod:`~rerank.cli.options`.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import os
import signal
import sys
import threading
import warnings
from importlib.metadata import entry_points

from rerank.errors import InputError

CORE_COMMANDS = ("rerank.cli.demo", "rerank.cli.apply", "rerank.cli.bench", "rerank.cli.gap", "rerank.cli.warmup")


def _command_registrars():
    for module_name in CORE_COMMANDS:
        yield importlib.import_module(module_name).register
    for entry in sorted(entry_points(group="rerank.commands"), key=lambda e: e.name):
        yield entry.load()


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="rerank",
        description="Calibrated reranking of recommendation lists (Steck 2018), at scale.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {_version()}")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    subparsers.required = True
    for register in _command_registrars():
        register(subparsers)
    return parser


def _version() -> str:
    from rerank import __version__

    return __version__


class Terminated(BaseException):
    """SIGTERM, raised where the process is, so ``finally`` blocks and ``with`` exits run
    (temporary outputs removed) as they do for Ctrl-C."""


def _raise_terminated(signum, frame):
    raise Terminated()


@contextlib.contextmanager
def _sigterm_unwinds():
    """While a command runs in the main thread, SIGTERM raises :class:`Terminated`."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.signal(signal.SIGTERM, _raise_terminated)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


@contextlib.contextmanager
def _warnings_on_one_line(command: str):
    """While a command runs, a Python warning prints as one line ``rerank <command>: warning:
    ...`` (not the file, line and source line Python shows by default)."""
    previous = warnings.showwarning

    def show(message, category, filename, lineno, file=None, line=None):
        text = " ".join(str(message).split())
        print(f"rerank {command}: warning: {text}", file=sys.stderr if file is None else file)

    warnings.showwarning = show
    try:
        yield
    finally:
        warnings.showwarning = previous


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        with _sigterm_unwinds(), _warnings_on_one_line(args.command):
            return int(args.func(args) or 0)
    except (InputError, OSError) as exc:
        print(f"rerank {args.command}: error: {one_line(exc)}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"rerank {args.command}: interrupted", file=sys.stderr)
        return 130
    except Terminated:
        print(f"rerank {args.command}: terminated", file=sys.stderr)
        _exit_now(128 + signal.SIGTERM)
        return 128 + signal.SIGTERM


def _exit_now(code: int) -> None:
    """After SIGTERM, once the commands' cleanup has run: end the process at once (``os._exit``),
    skipping the interpreter's shutdown. A terminated process is meant to end, and the shutdown
    can abort in native thread pools that were busy when the signal came (seen as ``terminate
    called without an active exception`` and exit status 134 instead of 143)."""
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


def one_line(exc: BaseException) -> str:
    """The first line of an exception's message (its type name when the message is empty)."""
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


if __name__ == "__main__":
    sys.exit(main())
