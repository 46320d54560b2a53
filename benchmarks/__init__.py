"""Reproducible performance comparisons (docs/design.md §2): not part of the test run. ``make bench``."""

import os
import sys
import time


def report_table(table, text: str, *, out: str | None, csv: str | None, started: float, load: float) -> None:
    """Print a report's markdown ``text`` (and, on stderr, the load average at the start and
    the end with the seconds since ``started``); also write it to ``out`` and the raw ``table``
    to ``csv`` when given."""
    print(text)
    print(f"load average {load:.1f} at the start, {os.getloadavg()[0]:.1f} at the end; "
          f"{time.perf_counter() - started:.0f}s", file=sys.stderr)
    if out:
        with open(out, "w") as fh:
            fh.write(text + "\n")
    if csv:
        table.to_csv(csv, index=False)
