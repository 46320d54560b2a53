"""Reproducible performance comparisons (docs/design.md §2): not part of the test run. ``make bench``."""
