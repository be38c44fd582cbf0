"""FakeAVCeleb adapter: the clip-level scan of :mod:`pipeline.scan`, unchanged.

Labels come from ``meta_data.csv`` (or the type folders when there is none); the
dataset gives no segments and no official split, so every clip has
``fake_segments`` None and ``official_split`` ``""``.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from pipeline.datasets.source import ScanResult

if TYPE_CHECKING:
    from pipeline.datasets.collect import ClipSink

NAME = "fakeavceleb"
#: What detection looks for, as the error message says it.
WANTED = "FakeAVCeleb: meta_data.csv or the folders RealVideo-RealAudio, ... (FakeVideo-FakeAudio)"


def looks_like(path: Path) -> bool:
    """True when ``path`` holds ``meta_data.csv`` or one of the four type folders."""
    from pipeline.scan import looks_like_dataset

    return looks_like_dataset(path)


def scan(root: str | Path, sink: ClipSink | None = None) -> ScanResult:
    """Every clip of the FakeAVCeleb tree at ``root`` (or the one just under it).

    The release's own duplicate rows are merged across the whole CSV, so a ``sink``
    gets the clips once the scan is complete (21,566 paths take seconds).
    """
    from pipeline.scan import scan_dataset

    result = scan_dataset(root)
    result.dataset = NAME
    if sink is not None:
        sink.opened(result.root)
        for clip in result.clips:
            sink.found(clip)
    return result
