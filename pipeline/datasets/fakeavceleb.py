"""FakeAVCeleb adapter: the clip-level scan of :mod:`pipeline.scan`, unchanged.

Labels come from ``meta_data.csv`` (or the type folders when there is none); the
dataset gives no segments and no official split, so every clip has
``fake_segments`` None and ``official_split`` ``""``.
"""

from __future__ import annotations

from pathlib import Path

from pipeline.datasets.source import ScanResult

NAME = "fakeavceleb"
#: What detection looks for, as the error message says it.
WANTED = "FakeAVCeleb: meta_data.csv or the folders RealVideo-RealAudio, ... (FakeVideo-FakeAudio)"


def looks_like(path: Path) -> bool:
    """True when ``path`` holds ``meta_data.csv`` or one of the four type folders."""
    from pipeline.scan import looks_like_dataset

    return looks_like_dataset(path)


def scan(root: str | Path) -> ScanResult:
    """Every clip of the FakeAVCeleb tree at ``root`` (or the one just under it)."""
    from pipeline.scan import scan_dataset

    result = scan_dataset(root)
    result.dataset = NAME
    return result
