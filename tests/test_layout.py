"""The house (docs/design.md §2), drawn from the code: who imports whom, no import circle, the
core never imports adapters or simulations, the engine sits below the frame layer, every
design citation points at a section of docs/design.md, and core files stay small."""

from __future__ import annotations

import ast
import importlib
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
FOLDERS = {"rerank": "rerank", "adapters": "rerank.adapters", "simulations": "rerank.simulations"}
MAX_CORE_LINES = 460  # "about 450": a file past this wants splitting


def module_of(path: Path) -> str:
    folder, *rest = path.relative_to(ROOT).with_suffix("").parts
    parts = [FOLDERS[folder], *rest]
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


MODULES = {module_of(p) for folder in FOLDERS for p in (ROOT / folder).rglob("*.py")}


def _runtime_imports(tree):
    """The import nodes of a module that run: everything but ``if TYPE_CHECKING:`` blocks."""
    todo = [tree]
    while todo:
        node = todo.pop()
        if isinstance(node, ast.If) and getattr(node.test, "id", "") == "TYPE_CHECKING":
            todo.extend(node.orelse)
            continue
        if isinstance(node, ast.Import | ast.ImportFrom | ast.Call):
            yield node
        todo.extend(ast.iter_child_nodes(node))


def imported_modules(folder: Path):
    """Every import in a folder's files, module level or inside functions: ``(path, name)``;
    ``from package import name`` yields ``package.name`` when that is a module, else ``package``."""
    for path in sorted(folder.rglob("*.py")):
        for node in _runtime_imports(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                for alias in node.names:
                    yield path, alias.name
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                for alias in node.names:
                    sub = f"{node.module}.{alias.name}"
                    yield path, sub if sub in MODULES else node.module
            elif isinstance(node, ast.Call) and getattr(node.func, "attr", "") == "import_module":
                if node.args and isinstance(node.args[0], ast.Constant):
                    yield path, str(node.args[0].value)


def import_graph() -> dict[str, set[str]]:
    """Module -> the package modules it imports (only names that are modules of ours)."""
    graph: dict[str, set[str]] = {m: set() for m in MODULES}
    for folder in FOLDERS:
        for path, name in imported_modules(ROOT / folder):
            if name in MODULES and name != module_of(path):
                graph[module_of(path)].add(name)
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components with more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found = []

    def visit(v):
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in graph[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return found


def test_no_import_circle():
    graph = import_graph()
    assert graph["rerank.engine.arrays"] >= {"rerank.engine.exact", "rerank.engine.kernel"}  # the graph is real
    assert cycles(graph) == []


def test_cycle_finder_finds_a_cycle():
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]


@pytest.mark.parametrize(
    ("prefix", "allowed"),
    [
        ("rerank.engine", ("rerank.engine", "rerank._numba", "rerank.errors", "rerank.params")),
        ("rerank.params", ("rerank.errors",)),
        ("rerank.errors", ()),
        ("rerank._numba", ("rerank._cache",)),
        ("rerank._cache", ()),
        ("rerank.scan", ()),
        ("rerank.schemas", ("rerank.errors", "rerank.params", "rerank.grouping", "rerank._numba", "rerank.ids",
                            "rerank.scan")),
        ("rerank.ids", ("rerank.errors", "rerank.params", "rerank.scan")),
        ("rerank.csvfiles", ("rerank.errors", "rerank.params")),
        ("rerank.io", ("rerank.errors", "rerank.params", "rerank.schemas", "rerank.grouping", "rerank._numba",
                       "rerank.ids", "rerank.csvfiles", "rerank.scan")),
        ("rerank.outputs", ("rerank.errors", "rerank.params", "rerank.io", "rerank.schemas", "rerank.grouping",
                            "rerank._numba", "rerank.ids", "rerank.csvfiles", "rerank.scan")),
    ],
)
def test_layers_import_only_downward(prefix, allowed):
    """errors / _cache / _numba / params at the bottom, then the engine, then the frame layer, then cli."""
    graph = import_graph()
    bad = [
        f"{module} imports {name}"
        for module, names in graph.items()
        if module == prefix or module.startswith(prefix + ".")
        for name in names
        if not name.startswith(allowed) and name != prefix and not name.startswith(prefix + ".")
    ]
    assert not bad, bad


def test_only_the_cli_imports_the_cli():
    graph = import_graph()
    bad = [f"{m} imports {n}" for m, names in graph.items() if not m.startswith("rerank.cli")
           for n in names if n.startswith("rerank.cli")]
    assert not bad, bad


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


def tracked_text_files():
    listed = subprocess.run(["git", "ls-files"], cwd=ROOT, capture_output=True, text=True, check=True).stdout
    for name in listed.split():
        path = ROOT / name
        if path.suffix in (".py", ".md", ".toml") and path.is_file():
            yield path


def test_every_design_citation_points_at_a_section_of_docs_design():
    design = (ROOT / "docs" / "design.md").read_text(encoding="utf-8")
    sections = set(re.findall(r"^#+ §([0-9.]+)", design, flags=re.M))
    assert {"1", "2", "3", "4.2", "4.3", "4.4", "5", "6", "7"} <= sections
    missing, unowned = [], []
    for path in tracked_text_files():
        text = path.read_text(encoding="utf-8")
        unowned += [f"{path.relative_to(ROOT)}" for _ in re.findall("DESIGN" + r" §", text)]
        for cited in re.findall(r"design\.md §([0-9]+(?:\.[0-9]+)?)", text):
            if cited not in sections:
                missing.append(f"{path.relative_to(ROOT)} cites §{cited}")
        for more in re.findall(r"design\.md §[0-9.]+((?:, §[0-9.]+)+)", text):
            missing += [f"{path.relative_to(ROOT)} cites §{c}" for c in re.findall(r"§([0-9.]+)", more)
                        if c.rstrip(".") not in sections]
    assert not unowned, f"citations of the old brief (cite docs/design.md §n): {unowned}"
    assert not missing, missing


def test_core_files_stay_small():
    big = {str(p.relative_to(ROOT)): n for p in (ROOT / "rerank").rglob("*.py")
           if (n := len(p.read_text(encoding="utf-8").splitlines())) > MAX_CORE_LINES}
    assert not big, big


def test_only_rerank_testing_imports_rerank_testing_and_hypothesis():
    """``rerank.testing`` sits on top of the core (it may import any of it, the core never
    imports it), and hypothesis, its optional extra ``rerank[testing]``, is imported nowhere
    else in the installed packages."""
    graph = import_graph()
    bad = [f"{m} imports {n}" for m, names in graph.items() if not m.startswith("rerank.testing")
           for n in names if n.startswith("rerank.testing")]
    hypothesis_users = {module_of(path) for folder in FOLDERS for path, name in imported_modules(ROOT / folder)
                        if name == "hypothesis" or name.startswith("hypothesis.")}
    bad += [f"{m} imports hypothesis" for m in sorted(hypothesis_users) if not m.startswith("rerank.testing.")]
    assert "rerank.testing.strategies" in hypothesis_users  # the scan is real
    assert not bad, bad


def test_rerank_imports_without_hypothesis():
    """``import rerank`` (and the reference, and from_reranker) work without the extra; the
    battery then says which extra to install."""
    script = (
        "import sys; sys.modules['hypothesis'] = None\n"
        "import rerank, rerank.testing, rerank.testing.reference as ref\n"
        "from rerank.testing import from_reranker\n"
        "assert ref.greedy([0.1, 0.9], [{}, {}], [1.0], 1, 0.0) == [1]\n"
        "from_reranker()\n"
        "try:\n"
        "    rerank.testing.check_reranker\n"
        "except ModuleNotFoundError as exc:\n"
        "    print(exc)\n"
    )
    probe = subprocess.run([sys.executable, "-c", script], cwd=ROOT, capture_output=True, text=True)
    assert probe.returncode == 0, probe.stderr
    assert "pip install 'calibrated-rerank[testing]'" in probe.stdout


def test_tests_mirror_the_wings():
    """Test modules live in the folder of the part they test (engine/, frame/, cli/, adapters/,
    simulations/); only this file, which draws the whole house, sits at the top. Their names are
    unique across folders: pytest imports a test module by its file name."""
    tests = ROOT / "tests"
    flat = sorted(p.name for p in tests.glob("test_*.py") if p.name != "test_layout.py")
    assert not flat, f"move these into the folder of the part they test: {flat}"
    names = [p.name for p in tests.rglob("test_*.py")]
    assert sorted({n for n in names if names.count(n) > 1}) == []
    assert {p.parent.name for p in tests.rglob("test_*.py")} >= {"engine", "frame", "cli", "adapters", "simulations"}


def test_every_package_folder_is_installed():
    """A wheel holds only the packages pyproject.toml lists: every folder with an ``__init__.py``
    must be there (``pip install .`` without rerank.engine would import nothing)."""
    import tomllib

    listed = set(tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["tool"]["setuptools"]["packages"])
    found = {module_of(path) for folder in FOLDERS for path in (ROOT / folder).rglob("__init__.py")}
    assert found - listed == set(), f"add to [tool.setuptools] packages: {sorted(found - listed)}"
