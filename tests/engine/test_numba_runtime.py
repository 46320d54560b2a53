"""Numba robustness of the one kernel (issue 6): on-disk cache fallback on a read-only install,
calls from several Python threads at once, NUMBA_NUM_THREADS, thread-count independence and
one compilation per dtype."""

from __future__ import annotations

import json
import os
import shutil
import stat
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numba
import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp

import rerank
from rerank import rerank_arrays
from rerank.bench import make_workload
from rerank.engine.kernel import rerank_block

PACKAGE = Path(rerank.__file__).resolve().parent

# A tiny job whose lists the child process prints (as JSON) so the parent compares them.
CHILD = """
import json, warnings, numba, numpy as np, scipy.sparse as sp
warnings.simplefilter("always")
with warnings.catch_warnings(record=True) as caught:
    import rerank
    from rerank import rerank_arrays
    imported = len(caught)
    A = sp.csr_matrix(np.array([[1, 0, 0], [0, 1, 0], [.5, .5, 0], [0, 0, 1]], dtype=float))
    result = rerank_arrays(np.array([0, 4, 8]), np.array([0, 1, 2, 3, 3, 2, 1, 0]),
                           np.array([.9, .8, .7, .1, .5, .5, .4, .3]), A,
                           np.array([[.7, .3, 0], [.2, .2, .6]]), 3, 0.6)
indptr, items = result.indptr, result.items
print(json.dumps({"file": rerank.__file__, "items": items.tolist(), "indptr": indptr.tolist(),
                  "threads": numba.config.NUMBA_NUM_THREADS, "warnings_at_import": imported,
                  "warnings": [str(w.message) for w in caught if issubclass(w.category, RuntimeWarning)]}))
"""


def _child_env(**extra) -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("NUMBA_", "XDG_"))}
    env.update(extra)
    return env


def _run_child(env, cwd, prefix=()) -> dict:
    res = subprocess.run([*prefix, sys.executable, "-c", CHILD], env=env, cwd=cwd, capture_output=True, text=True,
                         timeout=600)
    assert res.returncode == 0, res.stderr
    return json.loads(res.stdout.strip().splitlines()[-1])


def _expected() -> dict:
    A = sp.csr_matrix(np.array([[1, 0, 0], [0, 1, 0], [.5, .5, 0], [0, 0, 1]], dtype=float))
    result = rerank_arrays(np.array([0, 4, 8]), np.array([0, 1, 2, 3, 3, 2, 1, 0]),
                           np.array([.9, .8, .7, .1, .5, .5, .4, .3]), A,
                           np.array([[.7, .3, 0], [.2, .2, .6]]), 3, 0.6)
    indptr, items = result.indptr, result.items
    return {"items": items.tolist(), "indptr": indptr.tolist()}


def _make_read_only(root: Path) -> None:
    for path in [root, *root.rglob("*")]:
        mode = path.stat().st_mode
        path.chmod(mode & ~(stat.S_IWUSR | stat.S_IWGRP | stat.S_IWOTH))


def _read_only_install(tmp_path: Path) -> tuple[Path, Path, dict, tuple]:
    """A copy of the package in a read-only folder, HOME and NUMBA_CACHE_DIR unwritable: the
    site and home folders, the child's environment and the command prefix that makes them
    read-only (a private read-only bind mount when running as root)."""
    site = tmp_path / "site"
    shutil.copytree(PACKAGE, site / "rerank", ignore=shutil.ignore_patterns("__pycache__"))
    home = tmp_path / "home"
    home.mkdir()
    env = _child_env(PYTHONPATH=str(site), HOME=str(home), PYTHONDONTWRITEBYTECODE="1",
                     NUMBA_CACHE_DIR=str(home / "numba-cache"))
    prefix: tuple = ()
    if os.geteuid() == 0:
        # root ignores file modes: make the folders a read-only bind mount in a private mount
        # namespace instead (the child only; nothing changes for other processes)
        probe = subprocess.run(["unshare", "-m", "sh", "-c", f"mount --bind -o ro '{home}' '{home}'"],
                               capture_output=True)
        if probe.returncode != 0:
            pytest.skip("running as root without permission for a read-only bind mount")
        script = 'mount --bind -o ro "$1" "$1" && mount --bind -o ro "$2" "$2" && shift 2 && exec "$@"'
        prefix = ("unshare", "-m", "sh", "-c", script, "sh", str(site), str(home))
    else:
        _make_read_only(site)
        _make_read_only(home)
    return site, home, env, prefix


@pytest.mark.slow
def test_read_only_install_compiles_in_memory_and_gives_the_same_lists(tmp_path):
    """Importing and reranking on a read-only install works (in-memory compilation, one
    RuntimeWarning says so, at the first compile rather than at import), same lists."""
    site, home, env, prefix = _read_only_install(tmp_path)
    got = _run_child(env, cwd=str(home), prefix=prefix)
    assert got["warnings_at_import"] == 0, got["warnings"]
    assert got["file"] == str(site / "rerank" / "__init__.py")
    assert {k: got[k] for k in ("items", "indptr")} == _expected()
    # one warning for the whole package, not one per compiled function (issue 17, item 16)
    assert [w for w in got["warnings"] if "compiling in memory" in w] == got["warnings"][:1], got["warnings"]
    assert len(got["warnings"]) == 1, got["warnings"]
    assert not list(site.rglob("*.nbi")), "nothing may be written into the read-only install"
    assert not (home / "numba-cache").exists()


def test_numba_num_threads_is_respected(tmp_path):
    """NUMBA_NUM_THREADS=1 caps the pool; asking the kernel for more is a clear ValueError."""
    code = CHILD + """
try:
    rerank_arrays(np.array([0, 1]), np.array([0]), np.array([1.0]), A, np.ones((1, 3)) / 3, 1, 0.5, n_threads=2)
except ValueError as exc:
    print(json.dumps({"error": str(exc)}))
"""
    res = subprocess.run([sys.executable, "-c", code], env=_child_env(NUMBA_NUM_THREADS="1"), cwd=str(tmp_path),
                         capture_output=True, text=True, timeout=600)
    assert res.returncode == 0, res.stderr
    first, second = (json.loads(line) for line in res.stdout.strip().splitlines()[-2:])
    assert first["threads"] == 1
    assert {k: first[k] for k in ("items", "indptr")} == _expected()
    assert "NUMBA_NUM_THREADS=1" in second["error"]


@pytest.mark.parametrize("divergence", ["kl", "hellinger", "chi2"])
def test_same_lists_with_one_and_two_threads(divergence):
    """Users are split into blocks over threads; the lists must not depend on it (ties too)."""
    if numba.config.NUMBA_NUM_THREADS < 2:
        pytest.skip("needs NUMBA_NUM_THREADS >= 2")
    for ties in (False, True):
        wl = make_workload(3000, 40, 7, ties=ties, seed=5)
        lam = np.random.default_rng(0).random(wl.n_users)
        kwargs = {"divergence": divergence, "rank_weights": "dcg"}
        one = rerank_arrays(wl.indptr, wl.items, wl.scores, wl.categories, wl.targets, 10, lam, n_threads=1, **kwargs)
        two = rerank_arrays(wl.indptr, wl.items, wl.scores, wl.categories, wl.targets, 10, lam, n_threads=2, **kwargs)
        assert np.array_equal(one.positions, two.positions)
        assert np.array_equal(one.objective, two.objective)


def test_calls_from_several_python_threads_at_once():
    """Eight Python threads calling the parallel kernel concurrently get the serial answers."""
    jobs = [make_workload(800, 30, 6, seed=s) for s in range(8)]

    def run(wl, threads=None):
        return rerank_arrays(wl.indptr, wl.items, wl.scores, wl.categories, wl.targets, 5, 0.5,
                             n_threads=threads).items

    expected = [run(wl) for wl in jobs]
    with ThreadPoolExecutor(max_workers=4) as pool:
        for _ in range(3):
            got = list(pool.map(lambda i: run(jobs[i], threads=1 + i % 2), range(len(jobs))))
            for a, b in zip(got, expected, strict=True):
                assert np.array_equal(a, b)


def test_one_compiled_signature_whatever_the_input_dtypes():
    """Dtypes are normalised at the boundary: int32/uint16 indices, float32/int scores, float32
    targets and λ, read-only arrays reuse the one compiled kernel."""
    wl = make_workload(50, 12, 4, seed=1)
    rerank_arrays(wl.indptr, wl.items, wl.scores, wl.categories, wl.targets, 4, 0.5)
    before = set(rerank_block.signatures)
    variants = [
        (wl.indptr.astype(np.int32), wl.items.astype(np.int32), wl.scores.astype(np.float32), wl.targets, 0.5),
        (wl.indptr, wl.items.astype(np.uint16), (wl.scores * 100).astype(np.int64), wl.targets.astype(np.float32),
         np.full(wl.n_users, 0.3, dtype=np.float32)),
    ]
    frozen = [a.copy() for a in (wl.indptr, wl.items, wl.scores, wl.targets)]
    for a in frozen:  # read-only views (pandas copy-on-write hands these out) are another numba type
        a.flags.writeable = False
    variants.append((*frozen, 0.5))
    for indptr, items, scores, targets, lam in variants:
        rerank_arrays(indptr, items, scores, wl.categories.astype(np.float32), targets, 4, lam)
    assert set(rerank_block.signatures) == before


LAZY_CHILD = """
import json, numpy as np, scipy.sparse as sp
from rerank import rerank_arrays
from rerank.engine import exact, kernel, pm2, quota, refine
A = sp.csr_matrix(np.array([[1, 0, 0], [0, 1, 0], [.5, .5, 0], [0, 0, 1]], dtype=float))
args = (np.array([0, 4, 8]), np.array([0, 1, 2, 3, 3, 2, 1, 0]), np.array([.9, .8, .7, .1, .5, .5, .4, .3]), A,
        np.array([[.7, .3, 0], [.2, .2, .6]]), 3, 0.6)
def compiled():
    return {"block": len(kernel.rerank_block.signatures), "quota": len(quota.quota_one_user.signatures),
            "pm2": len(pm2.pm2_one_user.signatures), "exact": len(exact.enumerate_users.signatures),
            "refine": len(refine.refine_user.signatures)}
steps = []
for options in ({}, {"divergence": "chi2", "normalize": "rank"}, {"min_share": True}, {"method": "pm2"},
                {"solver": "exact"}, {"refine": "swap"}):
    rerank_arrays(*args, **options)
    steps.append(compiled())
print(json.dumps(steps))
"""


@pytest.mark.slow
def test_a_call_compiles_only_the_list_builder_it_uses(tmp_path):
    """Issue 16: the default call (greedy) compiles neither the quota greedy, PM-2, the exact
    solver nor the swap refinement; each is compiled the first time a call asks for it (a new
    specialisation of the block function), and divergence / normalisation choices reuse it."""
    res = subprocess.run([sys.executable, "-c", LAZY_CHILD], env=_child_env(NUMBA_CACHE_DIR=str(tmp_path)),
                         cwd=str(tmp_path), capture_output=True, text=True, timeout=900)
    assert res.returncode == 0, res.stderr
    default, other_options, with_quota, with_pm2, with_exact, with_refine = json.loads(
        res.stdout.strip().splitlines()[-1])
    assert default == {"block": 1, "quota": 0, "pm2": 0, "exact": 0, "refine": 0}
    assert other_options == default
    assert with_quota == {**default, "block": 2, "quota": 1}
    assert with_pm2 == {**with_quota, "block": 3, "pm2": 1}
    assert with_exact["exact"] == 1 and with_exact["block"] == 3 and with_exact["refine"] == 0
    assert with_refine == {**with_exact, "block": 4, "refine": 1}


@pytest.mark.slow
def test_read_only_install_cli_prints_a_usage_error_alone_and_one_warning_line(tmp_path):
    """Finding 16: 54 warning lines on stderr before a one-line usage error. Now a usage error
    is the only line, and a real run prints the in-memory warning as one line."""
    site, home, env, prefix = _read_only_install(tmp_path)
    data = tmp_path / "data"
    data.mkdir()
    pd.DataFrame({"user_id": [1, 1, 2, 2], "item_id": [10, 11, 10, 12], "score": [.9, .8, .7, .6]}).to_csv(
        data / "c.csv", index=False)
    pd.DataFrame({"user_id": [1, 2], "item_id": [10, 11]}).to_csv(data / "h.csv", index=False)
    pd.DataFrame({"item_id": [10, 11, 12], "category": ["a", "b", "a"]}).to_csv(data / "g.csv", index=False)
    cli = [*prefix, sys.executable, "-c", "import sys; from rerank.cli import main; sys.exit(main(sys.argv[1:]))"]
    usage = subprocess.run([*cli, "apply", "--k", "2"], env=env, cwd=str(home), capture_output=True, text=True,
                           timeout=600)
    assert usage.returncode == 2
    assert usage.stderr.splitlines() == [
        "rerank apply: error: the following arguments are required: --candidates, --history, "
        "--item-categories, --output"], usage.stderr
    run = subprocess.run([*cli, "apply", "--candidates", str(data / "c.csv"), "--history", str(data / "h.csv"),
                          "--item-categories", str(data / "g.csv"), "--output", str(data / "o.csv"), "--k", "2",
                          "--quiet"], env=env, cwd=str(home), capture_output=True, text=True, timeout=600)
    assert run.returncode == 0, run.stderr
    warning, summary = run.stderr.splitlines()  # the warning on one line, then the run's summary
    assert warning == (
        "rerank apply: warning: numba has no writable cache folder here: compiling in memory, so every new "
        "process pays the compile. Set NUMBA_CACHE_DIR to a writable folder to keep compiled code across runs."
    ), run.stderr
    assert summary.startswith("rerank apply: wrote ") and summary.endswith("nothing lost"), run.stderr
    assert len(pd.read_csv(data / "o.csv")) == 4
