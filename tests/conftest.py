"""Shared pytest set-up: hypothesis profiles.

* ``dev`` (default for a plain ``pytest``): random examples, the example database on, so
  local runs keep exploring.
* ``ci`` (``make test``, hence ``.ci/run``): ``derandomize=True`` and no database, so a landing
  never depends on luck: the same code gives the same examples on every run.
* ``fuzz`` (``make fuzz``): random, with every property's example budget multiplied by
  ``RERANK_FUZZ_FACTOR`` (see :func:`budget.examples`).

Choose one with ``HYPOTHESIS_PROFILE``. The profile is loaded here, before any test module
builds its ``settings(...)``, so every module inherits it.
"""

from __future__ import annotations

import os

from hypothesis import settings

settings.register_profile("dev", deadline=None)
settings.register_profile("ci", deadline=None, derandomize=True, database=None, print_blob=True)
settings.register_profile("fuzz", deadline=None, print_blob=True)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "dev"))
