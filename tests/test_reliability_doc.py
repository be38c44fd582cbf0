"""docs/reliability.md stays true: its counts match its tables, every test it names exists."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DOC = ROOT / "docs" / "reliability.md"
README = ROOT / "README.md"


def _rows_per_section(text: str) -> dict[str, int]:
    """Body rows of each table, by the ``##`` heading above it."""
    counts: dict[str, int] = {}
    section = ""
    for line in text.splitlines():
        if line.startswith("## "):
            section = line[3:].strip()
        elif line.startswith("| ") and not line.startswith("| input or fault"):
            counts[section] = counts.get(section, 0) + 1
    return counts


def _stated_total(text: str) -> int:
    found = re.search(r"\*\*(\d+) kinds of bad input\*\*", text)
    assert found, "the kinds of bad input are not counted"
    return int(found.group(1))


def test_the_stated_counts_are_the_tables_rows():
    text = DOC.read_text()
    rows = _rows_per_section(text)
    assert _stated_total(text) == sum(rows.values()), rows
    stated = [int(n) for n in re.findall(r"(\d+) of [a-z]", text.split("\n## ")[0])]
    assert sorted(stated) == sorted(rows.values()), (stated, rows)
    assert _stated_total(README.read_text()) == sum(rows.values())


def test_every_test_a_row_names_exists():
    text = DOC.read_text()
    sources = {path.name: path.read_text() for path in (ROOT / "tests").glob("test_*.py")}
    every = "\n".join(sources.values())
    missing = []
    for file, name in re.findall(r"(test_[a-z_0-9]+\.py)::(test_[A-Za-z_0-9]+)", text):
        if file not in sources or not re.search(rf"def {name}\b", sources[file]):
            missing.append(f"{file}::{name}")
    for name in re.findall(r"`(test_[a-z_0-9]+)`", text):
        if not re.search(rf"def {name}\b", every):
            missing.append(name)
    assert not missing, missing
