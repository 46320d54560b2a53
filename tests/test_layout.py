"""DESIGN §2: the core never imports adapters or simulations; folders install under rerank."""

from __future__ import annotations

import ast
import importlib
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def imported_modules(folder: Path):
    for path in sorted(folder.rglob("*.py")):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                for alias in node.names:
                    yield path, alias.name
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                yield path, node.module
            elif isinstance(node, ast.Call) and getattr(node.func, "attr", "") == "import_module":
                if node.args and isinstance(node.args[0], ast.Constant):
                    yield path, str(node.args[0].value)


@pytest.mark.parametrize(
    ("folder", "forbidden"),
    [
        ("rerank", ("rerank.adapters", "rerank.simulations", "adapters", "simulations", "implicit", "lightfm")),
        ("adapters", ("rerank.simulations", "simulations", "adapters")),
        ("simulations", ("simulations", "adapters")),
    ],
)
def test_import_boundaries(folder, forbidden):
    bad = [
        f"{path.relative_to(ROOT)} imports {name}"
        for path, name in imported_modules(ROOT / folder)
        if any(name == f or name.startswith(f + ".") for f in forbidden)
    ]
    assert not bad, bad


def test_subpackages_install_under_rerank():
    for name in ("rerank.adapters", "rerank.simulations"):
        module = importlib.import_module(name)
        assert Path(module.__file__).resolve().parent.name in ("adapters", "simulations")


@pytest.mark.parametrize("name", ["adapters", "simulations"])
def test_folders_are_not_installed_as_top_level_names(name, tmp_path):
    """'adapters' is an unrelated package on the index: ours must not shadow it."""
    probe = subprocess.run(
        [sys.executable, "-c", f"import importlib.util as u; print(u.find_spec({name!r}) is None)"],
        cwd=tmp_path, capture_output=True, text=True, check=True,
    )
    assert probe.stdout.strip() == "True"
