"""Reproducible performance comparisons (DESIGN §2): not part of the test run. ``make bench``."""
