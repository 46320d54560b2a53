"""``rerank warmup`` (issue 16): compiles the default path into the on-disk cache, so a later
process on the same cache loads machine code instead of compiling."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

LATER_CALL = """
import json, numpy as np, scipy.sparse as sp
from rerank import rerank_arrays
from rerank.engine.kernel import rerank_block
A = sp.csr_matrix(np.eye(3))
rerank_arrays(np.array([0, 3]), np.arange(3), np.array([.3, .2, .1]), A, np.full((1, 3), 1 / 3), 2, 0.5)
stats = rerank_block.stats
print(json.dumps({"hits": sum(stats.cache_hits.values()), "misses": sum(stats.cache_misses.values())}))
"""


@pytest.mark.slow
def test_warmup_fills_the_cache_a_later_process_loads(tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith("NUMBA_")}
    env["NUMBA_CACHE_DIR"] = str(tmp_path / "cache")
    command = "import sys; from rerank.cli import main; sys.exit(main(['warmup']))"
    done = subprocess.run([sys.executable, "-c", command], env=env, cwd=str(tmp_path), capture_output=True, text=True,
                          timeout=1800)
    assert done.returncode == 0, done.stderr
    first = done.stdout.splitlines()[0]
    assert first.startswith("numba cache: " + str(tmp_path / "cache"))
    assert "warm-up done" in done.stdout
    assert list((tmp_path / "cache").rglob("*.nbi"))
    later = subprocess.run([sys.executable, "-c", LATER_CALL], env=env, cwd=str(tmp_path), capture_output=True,
                           text=True, timeout=1800)
    assert later.returncode == 0, later.stderr
    assert json.loads(later.stdout.strip().splitlines()[-1]) == {"hits": 1, "misses": 0}
