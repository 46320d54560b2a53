"""``rerank bench``: the compiled kernel against two references on the same inputs (docs/design.md §6).

For one cell (``n`` candidates per user, list length ``k``, ``G`` categories) it builds a
synthetic workload, times :func:`rerank.engine.arrays.rerank_arrays` (the public array entry point,
validation included) with 1 and 2 numba threads, times the references of
:mod:`rerank.reference` on the first users, and checks that all three return **identical
lists** (it raises otherwise). Reported: users/s of each, the ratios, the peak Python-heap
memory of each call (``tracemalloc``: NumPy arrays included; the kernel's own work buffers are
O(threads · (n · ḡ + G)) and not counted) and the machine.

Workload (issue 6): ``n_items`` items (a prime, so each user's candidates are distinct), each
with 1-3 distinct categories sharing its mass equally; candidates drawn per user; scores
uniform in [0, 1); targets ``p(·|u)`` Dirichlet(1) over the G categories; λ = 0.5, α = 0.01,
KL, uniform rank weights, safeguard on. ``ties=True`` rounds the scores to one decimal and
draws the item categories from a few patterns, so exact ties happen at every step.

This module is part of the installed package, so ``rerank bench`` runs from a wheel; the full
grid and the memory/frame benchmarks live in ``benchmarks/`` (run ``make bench``).
"""

from __future__ import annotations

import os
import platform
import subprocess
import sys
import time
import tracemalloc
from dataclasses import dataclass

import numba
import numpy as np
import scipy.sparse as sp

from rerank.engine.arrays import rerank_arrays
from rerank.reference import numpy_greedy, python_greedy

DEFAULT_ITEMS = 20011  # prime: user u's candidates (a_u + b_u · j) mod n_items are distinct


@dataclass(frozen=True)
class Workload:
    """Candidates (CSR by user), item categories (CSR) and targets of a synthetic benchmark."""

    indptr: np.ndarray
    items: np.ndarray
    scores: np.ndarray
    categories: sp.csr_matrix
    targets: np.ndarray

    @property
    def n_users(self) -> int:
        return self.indptr.size - 1

    def head(self, n_users: int) -> Workload:
        """The first ``n_users`` users (views, no copy)."""
        end = self.indptr[n_users]
        return Workload(self.indptr[: n_users + 1], self.items[:end], self.scores[:end], self.categories,
                        self.targets[:n_users])


def make_workload(
    n_users: int,
    n_candidates: int = 100,
    n_categories: int = 20,
    *,
    n_items: int = DEFAULT_ITEMS,
    max_item_categories: int = 3,
    ties: bool = False,
    seed: int = 0,
) -> Workload:
    """The issue-6 workload, vectorised (no Python loop over users or items)."""
    if n_candidates > n_items:
        raise ValueError(f"n_candidates={n_candidates} exceeds n_items={n_items}")
    rng = np.random.default_rng(seed)
    width = min(max_item_categories, n_categories)
    if ties:  # a handful of category patterns: many candidates with identical categories
        patterns = np.argsort(rng.random((8, n_categories)), axis=1)[:, :width]
        picked = patterns[rng.integers(0, len(patterns), n_items)]
    else:
        picked = np.argsort(rng.random((n_items, n_categories)), axis=1)[:, :width]
    counts = rng.integers(1, width + 1, n_items)
    keep = np.arange(width)[None, :] < counts[:, None]
    rows = np.repeat(np.arange(n_items), counts)
    categories = sp.csr_matrix(
        (1.0 / counts[rows], (rows, picked[keep])), shape=(n_items, n_categories), dtype=np.float64
    )
    categories.sort_indices()
    start = rng.integers(0, n_items, n_users)
    stride = rng.integers(1, n_items, n_users)
    items = ((start[:, None] + stride[:, None] * np.arange(n_candidates)) % n_items).ravel()
    scores = rng.random(n_users * n_candidates)
    if ties:
        scores = np.round(scores, 1)
    targets = rng.dirichlet(np.ones(n_categories), n_users)
    indptr = np.arange(n_users + 1, dtype=np.int64) * n_candidates
    return Workload(indptr, items.astype(np.int64), scores, categories, targets)


def kernel_lists(wl: Workload, k: int, lam: float = 0.5, n_threads: int | None = None, **options):
    """``(out_indptr, positions)`` of :func:`rerank_arrays` (positions local to each user); the
    scores as given (``normalize=None`` unless asked: the references take them raw)."""
    result = rerank_arrays(
        wl.indptr, wl.items, wl.scores, wl.categories, wl.targets, k, lam, n_threads=n_threads,
        **{"normalize": None, **options},
    )
    owners = np.repeat(np.arange(wl.n_users), np.diff(result.indptr))
    return result.indptr, result.positions - wl.indptr[owners]


def _user_inputs(wl: Workload, u: int):
    lo, hi = wl.indptr[u], wl.indptr[u + 1]
    return wl.items[lo:hi], wl.scores[lo:hi], wl.targets[u]


def python_one_user(wl: Workload, u: int, k: int, lam: float = 0.5, **options) -> list[int]:
    """The pure-Python dict-loop greedy for user ``u`` (local positions)."""
    A = wl.categories
    items, scores, p = _user_inputs(wl, u)
    cats = [
        dict(zip(A.indices[A.indptr[i] : A.indptr[i + 1]].tolist(), A.data[A.indptr[i] : A.indptr[i + 1]].tolist(),
                 strict=True))
        for i in items
    ]
    return python_greedy(scores.tolist(), cats, p.tolist(), k, lam, **options)


def numpy_one_user(wl: Workload, u: int, k: int, lam: float = 0.5, dense=None, **options) -> list[int]:
    """The NumPy incremental greedy for user ``u`` (``dense``: the items × G array of
    ``p(g|i)``; pass it to build it once, outside the timing)."""
    dense = wl.categories.toarray() if dense is None else dense
    items, scores, p = _user_inputs(wl, u)
    return numpy_greedy(scores, dense[items], p, k, lam, **options).tolist()


def run_reference(one_user, wl: Workload, k: int, seconds: float, min_users: int = 1, **kwargs):
    """Lists of the first users by ``one_user`` until ``seconds`` have passed (at least
    ``min_users``); returns ``(lists, users/s, peak traced MB)``."""
    lists = []
    tracemalloc.start()
    start = time.perf_counter()
    while len(lists) < wl.n_users and (len(lists) < min_users or time.perf_counter() - start < seconds):
        lists.append(one_user(wl, len(lists), k, **kwargs))
    elapsed = time.perf_counter() - start
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    return lists, len(lists) / elapsed, peak / 2**20


def _timed(fn, *args, **kwargs):
    tracemalloc.start()
    start = time.perf_counter()
    value = fn(*args, **kwargs)
    elapsed = time.perf_counter() - start
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    return value, elapsed, peak


def _best_kernel_time(wl: Workload, k: int, n_threads: int, repeats: int) -> tuple[float, int, tuple]:
    best, peak, out = np.inf, 0, None
    for _ in range(repeats):
        start = time.perf_counter()
        out = kernel_lists(wl, k, n_threads=n_threads)
        best = min(best, time.perf_counter() - start)
    _, _, peak = _timed(kernel_lists, wl, k, n_threads=n_threads)
    return best, peak, out


def run_cell(
    n: int, k: int, G: int, *, kernel_seconds: float = 0.3, numpy_seconds: float = 0.5,
    python_seconds: float = 0.5, max_users: int = 400_000, threads=(1, 2), repeats: int = 3,
    seed: int = 0, ties: bool = False, run_python: bool = True, compiled_refs: dict | None = None,
) -> dict:
    """Time one cell and check identical lists; returns a row of the results table.

    ``compiled_refs``: more references ``name -> fn(workload, k) -> (users × k) positions``
    run on all the cell's users (compiled ones, e.g. the plain Numba greedy of ``benchmarks/``).
    """
    pilot = make_workload(256, n, G, seed=seed, ties=ties)
    kernel_lists(pilot, k, n_threads=1)  # compile (or load from cache) outside the timing
    start = time.perf_counter()
    kernel_lists(pilot, k, n_threads=1)
    per_user = (time.perf_counter() - start) / pilot.n_users
    n_users = int(min(max_users, max(2_000, kernel_seconds / max(per_user, 1e-9))))
    wl = make_workload(n_users, n, G, seed=seed, ties=ties)
    row = {"n": n, "k": k, "G": G, "users": n_users, "ties": ties}
    lists = None
    for t in threads:
        if t > numba.config.NUMBA_NUM_THREADS:
            continue
        elapsed, peak, lists = _best_kernel_time(wl, k, t, repeats)
        row[f"kernel_{t}t_users_s"] = n_users / elapsed
        row[f"kernel_{t}t_peak_mb"] = peak / 2**20
    out_indptr, positions = lists
    for name, fn in (compiled_refs or {}).items():
        fn(wl.head(8), k)  # compile outside the timing
        start = time.perf_counter()
        got = np.asarray(fn(wl, k))
        row[f"{name}_users_s"] = n_users / (time.perf_counter() - start)
        if got.shape != (n_users, k) or not np.array_equal(got.ravel(), lists[1]):
            raise AssertionError(f"{name} differs from the kernel (n={n}, k={k}, G={G})")
    checked = min(n_users, 20_000)  # references never get further in their time budget
    expected = [positions[out_indptr[u] : out_indptr[u + 1]].tolist() for u in range(checked)]

    checks = [("numpy", numpy_one_user, numpy_seconds, 3, {"dense": wl.categories.toarray()})]
    if run_python:
        checks.append(("python", python_one_user, python_seconds, 1, {}))
    for name, one_user, seconds, min_users, kwargs in checks:
        refs, rate, peak = run_reference(one_user, wl.head(checked), k, seconds, min_users, **kwargs)
        row[f"{name}_users"] = len(refs)
        row[f"{name}_users_s"] = rate
        row[f"{name}_peak_mb"] = peak
        if refs != expected[: len(refs)]:
            bad = next(u for u in range(len(refs)) if refs[u] != expected[u])
            raise AssertionError(
                f"{name} reference differs from the kernel for user {bad} (n={n}, k={k}, G={G}): "
                f"{refs[bad]} != {expected[bad]}"
            )
    row["identical"] = True
    best_t = max(t for t in threads if t <= numba.config.NUMBA_NUM_THREADS)
    row["kernel_best_users_s"] = row[f"kernel_{best_t}t_users_s"]
    row["ratio_numpy"] = row["kernel_best_users_s"] / row["numpy_users_s"]
    if run_python:
        row["ratio_python"] = row["kernel_best_users_s"] / row["python_users_s"]
    if "kernel_2t_users_s" in row:
        row["speedup_2t"] = row["kernel_2t_users_s"] / row["kernel_1t_users_s"]
    return row


def first_call_latency(cache_dir: str | None = None) -> dict:
    """Seconds from a fresh interpreter to the first result: import, compile (cold cache) or
    load from cache (warm), tiny call. Runs in subprocesses; ``cache_dir`` defaults to a new
    temporary folder used for both runs (so the second run loads what the first compiled)."""
    import tempfile

    code = (
        "import time; t0 = time.perf_counter()\n"
        "import numpy as np, scipy.sparse as sp\n"
        "from rerank import rerank_arrays\n"
        "t1 = time.perf_counter()\n"
        "A = sp.csr_matrix(np.eye(3))\n"
        "rerank_arrays(np.array([0, 3]), np.arange(3), np.array([.3, .2, .1]), A, np.full((1, 3), 1/3), 2, 0.5)\n"
        "t2 = time.perf_counter()\n"
        "print(t1 - t0, t2 - t1)\n"
    )
    with tempfile.TemporaryDirectory() as tmp:
        env = dict(os.environ, NUMBA_CACHE_DIR=cache_dir or tmp)
        out = {}
        for label in ("cold", "warm"):
            res = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
            imp, call = (float(x) for x in res.stdout.split())
            out[f"{label}_import_s"] = imp
            out[f"{label}_first_call_s"] = call
    return out


def machine() -> dict:
    """What the numbers were measured on."""
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as fh:
            cpu = next(line.split(":", 1)[1].strip() for line in fh if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    try:
        load = os.getloadavg()[0]
    except OSError:
        load = float("nan")
    return {
        "cpu": cpu, "cores": os.cpu_count(), "python": platform.python_version(),
        "numpy": np.__version__, "numba": numba.__version__,
        "numba_threads": numba.config.NUMBA_NUM_THREADS, "load_1min": round(load, 2),
    }


def format_table(rows: list[dict]) -> str:
    """Markdown table of :func:`run_cell` rows (a plain-Numba column when the rows have one).

    Memory: the kernel call's peak traced bytes per user of the cell (its output and boundary
    arrays; the kernel's work buffers are per block of users, not per user) and the NumPy
    greedy's peak traced MB for one user."""
    def f(x, digits=0):
        return "–" if x is None else f"{x:,.{digits}f}"

    plain = any("plain_numba_users_s" in r for r in rows)
    head = ("| n | k | G | kernel 1 thread (users/s) | kernel 2 threads (users/s) | 2T/1T | NumPy (users/s) "
            "| Python (users/s) | kernel/NumPy | kernel/Python | " + ("plain Numba (users/s) | " if plain else "")
            + "identical | peak: kernel B/user, NumPy MB |")
    lines = [head, "|" + "---|" * (13 if plain else 12)]
    for r in rows:
        per_user = r.get("kernel_1t_peak_mb", 0.0) * 2**20 / r["users"]
        lines.append(
            f"| {r['n']} | {r['k']} | {r['G']} | {f(r.get('kernel_1t_users_s'))} | {f(r.get('kernel_2t_users_s'))} "
            f"| {f(r.get('speedup_2t'), 2)} | {f(r['numpy_users_s'], 1)} | {f(r.get('python_users_s'), 2)} "
            f"| {f(r['ratio_numpy'])}× | {f(r.get('ratio_python'))}× | "
            + (f"{f(r.get('plain_numba_users_s'))} | " if plain else "")
            + f"{'yes' if r['identical'] else 'NO'} | {f(per_user)} B, {f(r['numpy_peak_mb'], 1)} MB |"
        )
    return "\n".join(lines)
