"""The FakeAVCeleb scan and the shared scan helpers, under the names they have always had.

The scan is the FakeAVCeleb adapter, :mod:`pipeline.datasets.fakeavceleb`; the
helpers every adapter shares are in :mod:`pipeline.datasets.common`. This module
only re-exports them, for code that imports ``pipeline.scan``.
"""

from __future__ import annotations

from pipeline.datasets.common import (
    MISSING,
    MediaWalk,
    ScanError,
    examine,
    shown,
    undecodable,
    walk_media,
)
from pipeline.datasets.fakeavceleb import (
    find_dataset_root,
    infer_method,
    looks_like_dataset,
    scan_dataset,
)
from pipeline.datasets.source import ClipSource, ScanResult, make_clip_id

__all__ = [
    "MISSING",
    "ClipSource",
    "MediaWalk",
    "ScanError",
    "ScanResult",
    "examine",
    "find_dataset_root",
    "infer_method",
    "looks_like_dataset",
    "make_clip_id",
    "scan_dataset",
    "shown",
    "undecodable",
    "walk_media",
]
