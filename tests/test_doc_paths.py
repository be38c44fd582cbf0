"""Every file or folder of the project that the docs name exists, so the docs follow a move."""

from __future__ import annotations

import importlib
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md")), ROOT / "docker" / "README.md"]
# A path into the three packages, as the docs write one: `pipeline/clip/faces.py`, `trainer/data/`.
PATH = re.compile(r"(?<![\w/.-])((?:schemas|pipeline|trainer)/[\w/.-]*[\w/])")
# A dotted module path: ``pipeline.clip.faces``, `trainer.data.streams.require_streams`.
MODULE = re.compile(r"(?<![\w/.-])((?:schemas|pipeline|trainer)(?:\.[a-z_]\w*)+)")


def _exists(parts: list[str]) -> bool:
    """True when ``parts`` name a module, or a name defined in one (imported to see)."""
    for end in range(len(parts), 0, -1):
        base = ROOT.joinpath(*parts[:end])
        if base.with_suffix(".py").is_file() or (base / "__init__.py").is_file():
            found: object = importlib.import_module(".".join(parts[:end]))
            for name in parts[end:]:
                if not hasattr(found, name):
                    return False
                found = getattr(found, name)
            return True
    return False


def test_every_path_the_docs_name_exists() -> None:
    missing = []
    for doc in DOCS:
        text = doc.read_text(encoding="utf-8")
        for path in PATH.findall(text):
            if "<" not in path and not (ROOT / path.rstrip(".")).exists():
                missing.append(f"{doc.name}: {path}")
        for module in MODULE.findall(text):
            if module.endswith(".md"):  # a doc's name, as `docs/pipeline.md` writes it
                continue
            if not _exists(module.split(".")):
                missing.append(f"{doc.name}: {module}")
    assert not missing, missing
