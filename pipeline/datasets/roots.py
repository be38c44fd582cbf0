"""Find a dataset's root folder: the folder given, or the one folder inside it that holds the dataset.

Every adapter accepts the dataset's own folder or its parent (``OUT`` as well as
``OUT/LAV-DF``), as the FakeAVCeleb scan always has.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from pipeline.datasets.common import ScanError


def candidate_roots(root: Path, looks_like: Callable[[Path], bool]) -> list[Path]:
    """``[root]`` when it looks like the dataset, else the folders right inside it that do."""
    if looks_like(root):
        return [root]
    return [p for p in sorted(root.iterdir()) if p.is_dir() and looks_like(p)]


def find_root(root: str | Path, looks_like: Callable[[Path], bool], wanted: str) -> Path:
    """The resolved dataset root at or just under ``root``; ``ScanError`` naming ``wanted`` if none.

    ``wanted`` says what was looked for, e.g. ``"LAV-DF: metadata.json or metadata.min.json"``.
    """
    root = Path(root)
    if not root.is_dir():
        raise ScanError(f"dataset root {root} is not a directory")
    candidates = candidate_roots(root, looks_like)
    if len(candidates) > 1:
        names = ", ".join(p.name for p in candidates)
        raise ScanError(f"{root} holds several datasets ({names}); pass one of them")
    if not candidates:
        raise ScanError(f"{root} does not look like {wanted}")
    return candidates[0].resolve()


__all__ = ["candidate_roots", "find_root"]
