"""``rerank bench`` and its references: the NumPy and pure-Python greedy of rerank.reference
return the kernel's lists (ties included) for every divergence and rank weighting."""

from __future__ import annotations

import numpy as np
import pytest

from rerank.bench import kernel_lists, make_workload, numpy_one_user, python_one_user, run_cell
from rerank.cli import main
from rerank.distributions import rank_weights


@pytest.mark.parametrize("ties", [False, True])
@pytest.mark.parametrize("divergence", ["kl", "hellinger", "chi2"])
@pytest.mark.parametrize("weights", ["uniform", "dcg"])
def test_references_return_the_kernel_lists(ties, divergence, weights):
    wl = make_workload(60, 15, 4, n_items=101, ties=ties, seed=7)
    k = 6
    lam = 0.7
    out_indptr, positions = kernel_lists(wl, k, lam, divergence=divergence, rank_weights=weights)
    w = rank_weights(weights, k)
    for u in range(wl.n_users):
        expected = positions[out_indptr[u] : out_indptr[u + 1]].tolist()
        opts = {"divergence": divergence, "rank_weights": w}
        assert numpy_one_user(wl, u, k, lam, **opts) == expected
        assert python_one_user(wl, u, k, lam, **opts) == expected


def test_workload_has_distinct_candidates_and_normalised_rows():
    wl = make_workload(50, 30, 6, n_items=101, seed=3)
    for u in range(wl.n_users):
        items = wl.items[wl.indptr[u] : wl.indptr[u + 1]]
        assert len(set(items.tolist())) == len(items)
    sums = np.asarray(wl.categories.sum(axis=1)).ravel()
    assert np.allclose(sums, 1.0)
    assert set(np.diff(wl.categories.indptr).tolist()) <= {1, 2, 3}
    assert np.allclose(wl.targets.sum(axis=1), 1.0)


def test_run_cell_checks_identical_lists():
    row = run_cell(20, 5, 4, kernel_seconds=0.01, numpy_seconds=0.05, python_seconds=0.05, max_users=2_000,
                   ties=True)
    assert row["identical"] and row["numpy_users"] >= 3 and row["python_users"] >= 1
    assert row["kernel_1t_users_s"] > 0


def test_cli_bench_runs(capsys):
    code = main(["bench", "--n", "12", "--k", "3", "--G", "3", "--seconds", "0.01", "--threads", "1"])
    assert code == 0
    assert "| 12 | 3 | 3 |" in capsys.readouterr().out
