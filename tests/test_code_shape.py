"""``python -m benchmarks.code_shape``: the layering rules it checks, and that it finds what
it should (a cycle hidden in a function, one through a package's ``__init__``)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from benchmarks import code_shape

REPO = Path(__file__).resolve().parents[1]


def _is_schemas(module: str) -> bool:
    return module == "schemas" or module.startswith("schemas.")


def test_schemas_imports_nothing_from_the_halves_and_is_on_no_cycle() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "benchmarks.code_shape", "--json"],
        capture_output=True, text=True, timeout=120, cwd=REPO, check=True,
    )  # fmt: skip
    shape = json.loads(done.stdout)
    assert any(_is_schemas(m["module"]) for m in shape["modules"])
    assert any(e["source"].startswith("pipeline.") for e in shape["edges"])
    upward = [
        f"{e['source']}:{e['line']} -> {e['target']}"
        for e in shape["edges"]
        if _is_schemas(e["source"]) and not _is_schemas(e["target"])
    ]
    assert not upward, f"schemas imports from pipeline or trainer: {upward}"
    through = [c["modules"] for c in shape["cycles"] if any(map(_is_schemas, c["modules"]))]
    assert not through, f"import cycles through schemas: {through}"
    # The report prints, whatever the figures (they are not enforced yet).
    text = subprocess.run(
        [sys.executable, "-m", "benchmarks.code_shape", "--limit", "3"],
        capture_output=True, text=True, timeout=120, cwd=REPO, check=True,
    ).stdout  # fmt: skip
    assert "longest modules" in text and "import cycles" in text


def _write(root: Path, rel: str, text: str) -> None:
    path = root / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)


def test_it_finds_hidden_cycles_and_long_functions(tmp_path: Path) -> None:
    body = "".join(f"    x{i} = {i}\n" for i in range(70))
    _write(tmp_path, "toy/__init__.py", "")
    # a <-> b, b's half deferred inside a function: still a cycle.
    _write(tmp_path, "toy/a.py", "from toy.b import g\n\n\ndef f():\n" + body)
    _write(tmp_path, "toy/b.py", "def g():\n    from toy import a\n    return a\n")
    # c imports toy.pkg.inner, which runs toy/pkg/__init__.py, which imports c.
    _write(tmp_path, "toy/pkg/__init__.py", "from toy.c import C\n")
    _write(tmp_path, "toy/pkg/inner.py", "X = 1\n")
    _write(tmp_path, "toy/c.py", "import toy.pkg.inner\n\n\nclass C:\n    pass\n")
    # Under TYPE_CHECKING an import never runs: no cycle d <-> e.
    _write(tmp_path, "toy/d.py", "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n"
           "    from toy.e import E\n")  # fmt: skip
    _write(tmp_path, "toy/e.py", "from toy.d import TYPE_CHECKING as E\n")

    shape = code_shape.measure(tmp_path, ("toy",))
    assert [c["modules"] for c in shape["cycles"]] == [
        ["toy.a", "toy.b"],
        ["toy.c", "toy.pkg"],
    ]
    deferred = {(e["source"], e["target"]) for e in shape["edges"] if e["deferred"]}
    assert deferred == {("toy.b", "toy.a")}
    implicit = {(e["source"], e["target"]) for e in shape["edges"] if e["implicit"]}
    assert ("toy.c", "toy.pkg") in implicit
    assert shape["functions"][0] == {"module": "toy.a", "name": "f", "line": 4, "body_lines": 70}
    assert shape["functions_over"] == 1
    assert shape["modules"][0]["module"] == "toy.a"
