"""Shared pytest set-up: hypothesis profiles.

* ``dev`` (default for a plain ``pytest``): random examples, the example database on, so
  local runs keep exploring.
* ``ci`` (``make test``, hence ``.ci/run``): ``derandomize=True`` and no database, so a landing
  never depends on luck: the same code gives the same examples on every run.
* ``fuzz`` (``make fuzz``): random, with every property's example budget multiplied by
  ``RERANK_FUZZ_FACTOR`` (see :func:`budget.examples`).

Choose one with ``HYPOTHESIS_PROFILE``. The profile is loaded here, before any test module
builds its ``settings(...)``, so every module inherits it.

``spark``: the one local Spark session (``local[2]``) every Spark test module shares; it
starts on first use and stops at the end of the run.
"""

from __future__ import annotations

import os
import shutil
import sys

import pytest
from hypothesis import settings

settings.register_profile("dev", deadline=None)
settings.register_profile("ci", deadline=None, derandomize=True, database=None, print_blob=True)
settings.register_profile("fuzz", deadline=None, print_blob=True)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "dev"))


@pytest.fixture(scope="session")
def spark():
    pytest.importorskip("pyspark", reason="pyspark is not installed (pip install -e '.[spark]')")
    java = shutil.which("java") or (
        os.environ.get("JAVA_HOME") and os.path.join(os.environ["JAVA_HOME"], "bin", "java")
    )
    if not java:
        pytest.skip("Spark needs Java (none on PATH or JAVA_HOME)")
    from pyspark.sql import SparkSession

    # Python workers must run this interpreter (the one with rerank, numba, pyarrow).
    os.environ["PYSPARK_PYTHON"] = sys.executable
    os.environ["PYSPARK_DRIVER_PYTHON"] = sys.executable
    session = (
        SparkSession.builder.master("local[2]")
        .appName("rerank-tests")
        .config("spark.ui.enabled", "false")
        .config("spark.driver.host", "127.0.0.1")
        .config("spark.driver.bindAddress", "127.0.0.1")
        .config("spark.sql.shuffle.partitions", "3")
        .config("spark.default.parallelism", "2")
        .config("spark.sql.session.timeZone", "UTC")
        .config("spark.ui.showConsoleProgress", "false")
        .getOrCreate()
    )
    session.sparkContext.setLogLevel("ERROR")
    yield session
    session.stop()
