"""The examples of README.md ("Test your own reranker") and docs/testing.md run as written: the
README's pass, the docs page's hand-written reranker fails with the report the page shows."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def python_block(path: Path, heading: str) -> str:
    """The first ```python block after ``heading`` in ``path``."""
    text = path.read_text(encoding="utf-8")
    start = text.index(heading)
    return re.search(r"```python\n(.*?)```", text[start:], flags=re.S).group(1)


def example_tests(code: str) -> dict:
    namespace: dict = {"__name__": "example"}
    exec(compile(code, "example", "exec"), namespace)
    found = {name: fn for name, fn in namespace.items() if name.startswith("test_") and callable(fn)}
    assert found, "the example defines no test"
    return found


def test_the_readme_example_passes():
    for test in example_tests(python_block(ROOT / "README.md", "## Test your own reranker")).values():
        test()


def test_the_docs_example_fails_as_the_page_shows():
    page = ROOT / "docs" / "testing.md"
    code = python_block(page, "## A 10-line pytest example")
    assert len([line for line in code.splitlines() if line.strip()]) <= 10
    (test,) = example_tests(code).values()
    with pytest.raises(AssertionError) as caught:
        test()
    head, _, rule, *_ = str(caught.value).splitlines()
    assert head == "my_rerank: 12 of 13 guarantees hold; failed: length; not applicable: score-affine, quota"
    shown = page.read_text(encoding="utf-8")
    assert f"E   AssertionError: {head}" in shown and f"E   {rule}" in shown
