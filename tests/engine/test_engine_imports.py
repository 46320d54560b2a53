"""The engine is the compiled core alone: it imports numpy, scipy and numba, never pandas
(docs/design.md §2). Checked by running it with pandas blocked, and by reading its imports."""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from pathlib import Path

ENGINE = Path(__file__).resolve().parents[2] / "rerank" / "engine"
ALLOWED_OURS = ("rerank.engine", "rerank._numba", "rerank.errors", "rerank.params")


def test_engine_runs_with_pandas_blocked():
    code = (
        "import sys\n"
        "sys.modules['pandas'] = None  # any import of pandas now raises ImportError\n"
        "import numpy as np, scipy.sparse as sp\n"
        "import rerank.engine as engine\n"
        "from rerank.engine import CandidateLists, RerankOptions, rerank_arrays, rerank_lists\n"
        "A = sp.csr_matrix(np.eye(3))\n"
        "p = np.full((1, 3), 1 / 3)\n"
        "r = rerank_arrays(np.array([0, 3]), np.arange(3), np.array([.3, .2, .1]), A, p, k=2, lam=0.5)\n"
        "lists = CandidateLists(np.array([0, 3]), np.arange(3), np.array([.3, .2, .1]))\n"
        "q = rerank_lists(lists, A, p, RerankOptions(k=2, lam=0.5, min_share=True))\n"
        "e = rerank_arrays(*lists, A, p, options=RerankOptions(k=2, lam=0.9, solver='exact'))\n"
        "print(json.dumps([r.items.tolist(), q.items.tolist(), e.items.tolist()]))\n"
        "print(sys.modules['pandas'] is None)  # still blocked: nothing imported pandas\n"
    )
    out = subprocess.run([sys.executable, "-c", "import json\n" + code], capture_output=True, text=True, check=True)
    lists, blocked = out.stdout.strip().splitlines()
    assert [len(items) for items in json.loads(lists)] == [2, 2, 2]
    assert blocked == "True"


def test_engine_modules_import_only_the_engine_and_its_base():
    third_party = {"numpy", "scipy", "numba"}
    bad = []
    for path in sorted(ENGINE.glob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            names = []
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names = [node.module]
            for name in names:
                top = name.split(".")[0]
                if top == "rerank":
                    if not name.startswith(ALLOWED_OURS):
                        bad.append(f"{path.name} imports {name}")
                elif top not in third_party and top not in sys.stdlib_module_names:
                    bad.append(f"{path.name} imports {name}")
    assert not bad, bad
