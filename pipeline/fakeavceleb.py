"""The layout of a FakeAVCeleb v1.2 release, under the name it has always had.

The names live in :mod:`pipeline.datasets.fakeavceleb_layout` (beside the
FakeAVCeleb adapter that reads them); this module re-exports them.
"""

from __future__ import annotations

from pipeline.datasets.fakeavceleb_layout import (
    CSV_COLUMNS,
    CSV_DIR_PREFIX,
    CSV_HEADER,
    CSV_NAME,
    ROOT_NAME,
    TYPE_DIRS,
)

__all__ = ["CSV_COLUMNS", "CSV_DIR_PREFIX", "CSV_HEADER", "CSV_NAME", "ROOT_NAME", "TYPE_DIRS"]
