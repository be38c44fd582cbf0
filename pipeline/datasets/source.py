"""What every dataset adapter produces: clips with their labels, and the scan's report.

A dataset adapter (one module per dataset in :mod:`pipeline.datasets`) turns a
dataset root into a :class:`ScanResult`: one :class:`ClipSource` per clip, every
path relative to the root and confined to it, and one text row per file it could
not take (``missing``, ``refused``, ``merged``, ``repaired``, ``unlisted``,
``unsupported``). The
ingest core after that point is the same for every dataset.

Segments are ``(start_s, end_s)`` pairs in seconds of the source clip. ``None``
means the source gives no segment labels (a clip-level dataset, e.g. FakeAVCeleb);
``()`` means it gives them and the clip has none (a real clip of LAV-DF).
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass, field
from pathlib import Path

#: A list of fake segments, ``((start_s, end_s), ...)``, sorted, disjoint, start < end.
Segments = tuple[tuple[float, float], ...]


@dataclass(frozen=True, slots=True)
class ClipSource:
    """One clip named by a dataset, with every label the source gives. ``path`` is relative, POSIX.

    ``category`` is ``RARV``/``FARV``/``RAFV``/``FAFV`` (from the pair of per-modality
    labels), or ``""`` when ``labelled`` is false (e.g. AV-Deepfake1M's test files,
    whose labels are not public). ``official_split`` is the dataset's own part, mapped
    to ``train``/``val``/``test`` (LAV-DF's ``dev`` is ``val``), or ``""`` when it has
    none. ``original`` is the real clip a fake was made from, relative to the root,
    where the source says. ``source_split`` keeps the source's own spelling.
    """

    clip_id: str
    path: str
    category: str
    source_type: str
    identity: str
    method: str
    race: str = ""
    gender: str = ""
    target1: str = "-"
    target2: str = "-"
    dataset: str = "fakeavceleb"
    labelled: bool = True
    official_split: str = ""
    source_split: str = ""
    original: str = ""
    fake_segments: Segments | None = None
    audio_fake_segments: Segments | None = None
    video_fake_segments: Segments | None = None


@dataclass
class ScanResult:
    """A dataset's clips and what the scan could not take, each listed once."""

    root: Path  # the folder the clips' paths are relative to
    clips: list[ClipSource]
    used_csv: bool  # the labels came from the dataset's metadata file, not its folders
    dataset: str = "fakeavceleb"
    missing: list[str] = field(default_factory=list)  # rows naming files that do not exist
    unlisted: list[str] = field(default_factory=list)  # media files that no row names
    refused: list[str] = field(default_factory=list)  # "<row>: <reason>" (escaping, bad labels)
    # "<path>: .flv is not a supported video container (...); unsupported", sorted
    unsupported: list[str] = field(default_factory=list)
    merged: list[str] = field(default_factory=list)  # "<row>: <path> merged with line N (...)"
    repaired: list[str] = field(default_factory=list)  # "<row>: <what was repaired>"
    respelled: int = 0  # rows found only under the other race-folder spelling


def make_clip_id(identity: str, category: str, rel_path: str) -> str:
    """Stable, file-system-safe id: readable prefix plus a hash of the relative path."""
    # surrogateescape: a name read from a non-UTF-8 file system still gets an id, not a crash.
    digest = hashlib.sha256(rel_path.encode("utf-8", "surrogateescape")).hexdigest()[:12]
    safe_identity = re.sub(r"[^A-Za-z0-9_.-]", "_", identity)[:32].lstrip(".-_") or "x"
    return f"{safe_identity}_{category or 'unlabelled'}_{digest}"


__all__ = ["ClipSource", "ScanResult", "Segments", "make_clip_id"]
