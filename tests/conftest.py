"""Shared pytest set-up: hypothesis profiles and the fixtures several test folders use.

Layout (mirrors the package, docs/design.md §2): ``engine/`` the compiled core, ``frame/`` the
pandas API and everything around it (schemas, Spark, streaming, metrics, datasets), ``cli/``
the commands, ``adapters/`` the adapters, ``simulations/`` the simulator, ``testing/`` the
battery of ``rerank.testing`` against broken rerankers. The one pure-Python reference and the
hypothesis strategies are public: ``rerank.testing.reference`` and
``rerank.testing.strategies``. Helpers every folder imports: ``hostile.py`` (hostile frames and
the valid-output check), ``budget.py`` (example budgets), ``contract.py`` (the checks every
adapter passes: ``adapters/`` and the simulator's adapters). Test file names are unique across
the folders (pytest imports them by name).

Hypothesis profiles:

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
from pathlib import Path
from typing import NamedTuple

import pandas as pd
import pytest
from hypothesis import settings

settings.register_profile("dev", deadline=None)
settings.register_profile("ci", deadline=None, derandomize=True, database=None, print_blob=True)
settings.register_profile("fuzz", deadline=None, print_blob=True)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "dev"))

ROOT = Path(__file__).resolve().parents[1]
#: MovieLens latest-small, beside the repository (``../shared/data``) as the Makefile expects it.
MOVIELENS = ROOT.parent / "shared" / "data" / "ml-latest-small"


@pytest.fixture(scope="session")
def movielens_dir() -> Path:
    """The MovieLens latest-small folder; the test is skipped (with the reason) when absent."""
    if not (MOVIELENS / "ratings.csv").is_file():
        pytest.skip(f"needs MovieLens latest-small at {MOVIELENS} (../shared/data beside the repository)")
    return MOVIELENS


@pytest.fixture(scope="session")
def spark():
    """One local Spark session (``local[2]``) for the whole run; workers use this interpreter."""
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


class Tiny(NamedTuple):
    """A hand-sized problem: integer users, string items, three categories."""

    history: pd.DataFrame
    item_categories: pd.DataFrame
    candidates: pd.DataFrame


@pytest.fixture
def tiny() -> Tiny:
    """History of users 1 and 2 (user 3 is cold), five items, six candidate rows."""
    return Tiny(
        pd.DataFrame({"user_id": [1, 1, 1, 2], "item_id": ["a", "a", "b", "c"]}),
        pd.DataFrame({"item_id": ["a", "b", "c", "d", "e"], "category": ["x", "y", "x", "y", "z"]}),
        pd.DataFrame({"user_id": [1, 1, 1, 2, 2, 3], "item_id": ["a", "b", "c", "a", "d", "e"],
                      "score": [0.3, 0.2, 0.1, 1.0, 0.5, 2.0]}),
    )


class CliRun(NamedTuple):
    code: int
    out: str
    err: str


@pytest.fixture
def cli(capsys):
    """``cli("apply", "--k", "3", ...)`` runs the ``rerank`` command line in process and returns
    its exit code and what it printed."""
    from rerank.cli import main

    def run(*argv) -> CliRun:
        capsys.readouterr()
        try:
            code = main([str(a) for a in argv])
        except SystemExit as exc:  # argparse errors exit
            code = exc.code
        captured = capsys.readouterr()
        return CliRun(code, captured.out, captured.err)

    return run
