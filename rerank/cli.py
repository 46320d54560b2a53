"""The ``rerank`` command line.

Core sub-commands are listed in ``CORE_COMMANDS`` (module paths inside ``rerank``). Sub-commands
that live in ``rerank.adapters`` or ``rerank.simulations`` register through the
``rerank.commands`` entry-point group in ``pyproject.toml``, so the core never imports them.
A command module provides ``register(subparsers) -> None``; the parser it adds sets
``func=run(args) -> int`` with ``set_defaults``.

User errors (``ValueError``/``TypeError``/``FileNotFoundError`` raised while running a
command) print one line ``rerank <command>: error: ...`` and exit with code 2, no traceback.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from importlib.metadata import entry_points

CORE_COMMANDS = ("rerank.demo",)


class UserError(Exception):
    """An error in the user's input: reported in one line, exit code 2."""


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


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except (UserError, ValueError, TypeError, FileNotFoundError, KeyError) as exc:
        message = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        print(f"rerank {args.command}: error: {message}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
