"""What a dataset adapter provides, and the one way its clips are built.

An adapter is a module (one per dataset, in :mod:`pipeline.datasets` or in a
package of your own, registered with :func:`pipeline.datasets.register`) that turns
a dataset root into a :class:`~pipeline.datasets.source.ScanResult`:

- :class:`DatasetAdapter`: ``NAME`` and ``scan(root, sink)``, every clip the
  dataset names, each built with :func:`clip_source`: its path (relative to the
  root, vetted by :func:`~pipeline.datasets.common.examine` or a
  :class:`~pipeline.datasets.collect.Collector`), its labels (the category from
  the per-modality labels: :func:`~pipeline.datasets.labels.category_of`), its
  ``identity`` (the person whose clips must stay in one part of a split), its
  ``source_split`` (the dataset's own part, which ``split --official`` reads) and,
  where the dataset gives them, its fake segments (the frame labels);
- :class:`DetectedAdapter`: also ``WANTED`` and ``looks_like(path)``, so that
  ``ingest`` without ``--dataset`` can tell the dataset from its root.

The shared helpers an adapter needs are here too, so that one import serves:
:class:`ScanError` (the root cannot be scanned at all), :func:`examine`,
:func:`walk_media`, :func:`shown`, :func:`undecodable`, :data:`MISSING`, and the
:class:`Collector` that applies the rules every metadata-driven dataset shares.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Protocol, runtime_checkable

from pipeline.datasets.collect import ClipSink, Collector
from pipeline.datasets.common import (
    LEAVES,
    MISSING,
    MediaWalk,
    ScanError,
    examine,
    shown,
    undecodable,
    walk_media,
)
from pipeline.datasets.labels import MODIFY_TYPES, category_of, modify_type_of, official_split
from pipeline.datasets.source import ClipSource, ScanResult, Segments, make_clip_id

#: The three segment lists of a clip, ``(fake, audio fake, video fake)``; None: not given.
SegmentLists = tuple[Segments | None, Segments | None, Segments | None]
NO_SEGMENTS: SegmentLists = (None, None, None)


@runtime_checkable
class DatasetAdapter(Protocol):
    """A dataset adapter module: its name and its scan (see the module docstring)."""

    #: The name ``--dataset`` takes and the manifest's ``dataset`` column holds.
    NAME: str

    def scan(self, root: str | Path, sink: ClipSink | None = None) -> ScanResult:
        """Every clip of the dataset at ``root`` (or in the one folder just under it).

        Raises :class:`ScanError` when the root cannot be scanned at all; anything
        smaller is a row of the result's ``missing``, ``refused``, ``merged``,
        ``repaired`` or ``unlisted``. With a ``sink``, each clip is also handed to it
        as it is found (``sink.opened(root)`` first).
        """
        ...


@runtime_checkable
class DetectedAdapter(DatasetAdapter, Protocol):
    """An adapter that detection may pick: it can tell its dataset's root by its tree."""

    #: What detection looks for, as the error message says it (``"LAV-DF: metadata.json"``).
    WANTED: str

    def looks_like(self, path: Path) -> bool:
        """True when ``path`` is this dataset's root (a cheap look: a few ``stat`` calls)."""
        ...


def clip_source(
    dataset: str,
    path: str,
    identity: str,
    category: str,
    *,
    source_type: str | None = None,
    method: str | None = None,
    source_split: str = "",
    original: str = "",
    segments: SegmentLists = NO_SEGMENTS,
    race: str = "",
    gender: str = "",
    target1: str = "-",
    target2: str = "-",
) -> ClipSource:
    """One clip, its id and derived labels made the same way for every dataset.

    ``category`` is ``RARV``/``FARV``/``RAFV``/``FAFV``, or ``""`` for a clip whose
    labels are not public (it is then not ``labelled``). ``source_type`` defaults to
    the category's modification type (``audio_modified``, ...; ``""`` unlabelled) and
    ``method`` to ``source_type``. ``official_split`` is ``source_split`` mapped to
    ``train``/``val``/``test`` (:func:`~pipeline.datasets.labels.official_split`).
    Repeated strings are interned: a million clips share one copy of each identity.
    """
    if source_type is None:
        source_type = modify_type_of(*modalities(category)) if category else ""
    fake, audio, video = segments
    return ClipSource(
        clip_id=make_clip_id(identity, category, path),
        path=path,
        category=category,
        source_type=sys.intern(source_type),
        identity=sys.intern(identity),
        method=sys.intern(source_type if method is None else method),
        race=race,
        gender=gender,
        target1=target1,
        target2=target2,
        dataset=dataset,
        labelled=bool(category),
        official_split=official_split(source_split),
        source_split=sys.intern(source_split),
        original=original,
        fake_segments=fake,
        audio_fake_segments=audio,
        video_fake_segments=video,
    )


def modalities(category: str) -> tuple[bool, bool]:
    """``(audio fake, video fake)`` of a category: ``FARV`` -> ``(True, False)``."""
    pair = (category[:1] == "F", category[2:3] == "F")
    if category_of(*pair) != category:  # a bug in an adapter, not the user's data
        raise ValueError(f"not a category: {category!r}")
    return pair


__all__ = [
    "LEAVES",
    "MISSING",
    "MODIFY_TYPES",
    "NO_SEGMENTS",
    "ClipSink",
    "ClipSource",
    "Collector",
    "DatasetAdapter",
    "DetectedAdapter",
    "MediaWalk",
    "ScanError",
    "ScanResult",
    "SegmentLists",
    "Segments",
    "category_of",
    "clip_source",
    "examine",
    "make_clip_id",
    "modalities",
    "shown",
    "undecodable",
    "walk_media",
]
