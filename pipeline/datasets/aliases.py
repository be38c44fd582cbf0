"""One video, one clip: paths that reach the same file through a link are aliases.

A link inside the dataset root (to a file, or a folder above it) lets one video be
found under two paths, and in a folder-labelled tree under two labels (real in one
folder, fake in another). :func:`drop_aliases` keeps, of each real file, the path that
reaches it without a link (else the first in path order), and merges an alias with the
same labels into it, or refuses it with other labels. The metadata-driven adapters do the same record by record
(:class:`pipeline.datasets.collect.Collector`).
"""

from __future__ import annotations

import os
from pathlib import Path

from pipeline.datasets.source import ClipSource, ScanResult


def _labels(clip: ClipSource) -> tuple[str, ...]:
    return (clip.category, clip.source_type, clip.identity, clip.race, clip.gender)


def drop_aliases(dataset: Path, result: ScanResult) -> set[str]:
    """Remove from ``result.clips`` every clip whose file is an earlier clip's file.

    Each removal is a ``merged`` row (same labels) or a ``refused`` row (other labels).
    Returns the removed paths (named by the tree, so not ``unlisted``).
    """
    first: dict[str, ClipSource] = {}
    kept: list[ClipSource] = []
    dropped: set[str] = set()
    located = [(os.path.realpath(dataset / c.path), c) for c in result.clips]
    # The path without a link first: it is the file, the others point at it.
    located.sort(key=lambda rc: (rc[0] != os.path.join(dataset, rc[1].path), rc[1].path))
    for real, clip in located:
        earlier = first.setdefault(real, clip)
        if earlier is clip:
            kept.append(clip)
            continue
        dropped.add(clip.path)
        same = f"{clip.path} is {earlier.path} (the same file through a link)"
        if _labels(clip) == _labels(earlier):
            result.merged.append(f"{same}; merged")
        else:
            result.refused.append(f"{same} with other labels ({clip.category}); refused")
    result.clips = kept
    return dropped


__all__ = ["drop_aliases"]
