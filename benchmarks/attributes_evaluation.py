"""Aggregate `rerank evaluate --attributes {genre, popularity, genre,popularity} --seed S` runs
(S = 0..4) into the mean ± sd table of docs/evaluation.md ("Popularity calibration").

    for a in genre popularity genre,popularity; do for s in 0 1 2 3 4; do
      rerank evaluate --data ../shared/data/ml-latest-small --no-download --quiet --threads 1 \\
        --attributes $a --seed $s --out out/attr/$a/s$s; done; done
    python -m benchmarks.attributes_evaluation out/attr
"""

from __future__ import annotations

import sys
from pathlib import Path

import pandas as pd

COLUMNS = ["precision@10", "C_KL", "C_KL[genre]", "C_KL[popularity]", "minority_attainment"]


def main(argv=None) -> int:
    root = Path((argv or sys.argv[1:])[0])
    frames = []
    for run in sorted(p for p in root.iterdir() if p.is_dir()):
        for seed in sorted(run.iterdir()):
            table = pd.read_csv(seed / "evaluation.csv")
            frames.append(table.assign(run=run.name, seed=seed.name))
    every = pd.concat(frames)
    for run, sub in every[every["lambda"].isin([0.0, 0.5, 0.9])].groupby("run"):
        cols = [c for c in COLUMNS if c in sub and sub[c].notna().any()]
        grouped = sub.groupby(["user_group", "lambda"])[cols]
        cells = grouped.mean().round(3).astype(str) + " ± " + grouped.std().round(3).astype(str)
        print(f"== {run} ({sub['seed'].nunique()} seeds)")
        print(cells.to_string())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
