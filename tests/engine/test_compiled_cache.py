"""The on-disk compiled cache is keyed on every source a kernel inlines (rerank._cache).

Numba alone stamps a cache entry with the hash of the function's own file, so editing a file
the kernel only *calls* (divergences, ties, quota, …) left the cached kernel running the old
code. Here a copy of the package is run three times in fresh processes sharing one cache
folder: cold (compiles), warm (loads), then after an edit to the divergence module (must
recompile, and the result must change).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

import rerank

PROBE = r"""
import json, sys
import numpy as np, scipy.sparse as sp
import rerank
from rerank import rerank_arrays

rng = np.random.default_rng(0)
cats = sp.random(40, 5, density=0.4, random_state=1, format="csr")
indptr = np.arange(9) * 15
items = np.concatenate([rng.choice(40, 15, replace=False) for _ in range(8)])
result = rerank_arrays(indptr, items, rng.random(120), cats, rng.dirichlet(np.ones(5), 8), 5, 0.7,
                       divergence="hellinger")
hits = misses = 0
for name, module in list(sys.modules.items()):
    if name == "rerank" or name.startswith("rerank."):
        for value in vars(module).values():
            stats = getattr(value, "stats", None)
            if stats is not None and hasattr(stats, "cache_hits"):
                hits += sum(stats.cache_hits.values())
                misses += sum(stats.cache_misses.values())
print(json.dumps({"file": rerank.__file__, "objective": float(result.objective.sum()),
                  "hits": hits, "misses": misses}))
"""

HELLINGER_FINISH = "return math.sqrt(total) / _SQRT2"


def run_probe(package_parent: Path, cache: Path) -> dict:
    env = {**os.environ, "PYTHONPATH": str(package_parent), "NUMBA_CACHE_DIR": str(cache)}
    done = subprocess.run(
        [sys.executable, "-c", PROBE], env=env, cwd=package_parent, capture_output=True, text=True, timeout=900
    )
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout.strip().splitlines()[-1])


@pytest.mark.slow
def test_editing_a_file_the_kernel_inlines_recompiles_it(tmp_path):
    copy = tmp_path / "src"
    shutil.copytree(Path(rerank.__file__).parent, copy / "rerank", ignore=shutil.ignore_patterns("__pycache__"))
    [dependency] = [p for p in (copy / "rerank").rglob("*.py") if HELLINGER_FINISH in p.read_text()]
    cache = tmp_path / "cache"

    cold = run_probe(copy, cache)
    assert Path(cold["file"]).resolve().is_relative_to(copy.resolve())  # the copy ran, not the install
    assert cold["misses"] > 0 and cold["hits"] == 0

    warm = run_probe(copy, cache)
    assert warm["hits"] > 0 and warm["misses"] == 0  # the cache works at all
    assert warm["objective"] == cold["objective"]

    # Drop Hellinger's 1/√2 in the divergence module only; the kernel's own file is untouched.
    dependency.write_text(dependency.read_text().replace(HELLINGER_FINISH, "return math.sqrt(total)"))
    edited = run_probe(copy, cache)
    assert edited["misses"] > 0  # recompiled ...
    assert edited["objective"] != cold["objective"]  # ... and runs the edited code
