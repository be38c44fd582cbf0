"""LAV-DF adapter: ``metadata.json`` (or ``metadata.min.json``) at the root, a JSON array of records.

Each record names one clip: ``file`` (``train/000001.mp4``, relative to the root),
``split`` (``train``/``dev``/``test``; ``dev`` is the project's ``val``),
``modify_video`` and ``modify_audio`` (booleans: the category is the pair),
``fake_periods`` (``[[start, end], ...]`` seconds, the manipulated parts),
``duration`` (seconds), ``original`` (the real clip it was made from, or null),
and counts the scan does not need (``n_fakes``, ``video_frames``, ``audio_frames``,
``audio_channels``). ``metadata.json`` is read when both files are present.

Labels kept: ``fake_segments`` is ``fake_periods``; a modified modality is fake over
those periods, the other is real throughout (``()``). The release names no
speakers, so ``identity`` is the stem of the real clip a fake was made from (of the
clip itself for a real one): a real clip and its fakes stay in one part of a split.
``method`` and ``source_type`` are the modified modalities in AV-Deepfake1M's words
(``real``, ``audio_modified``, ``visual_modified``, ``both_modified``).

Refused records: a missing or mistyped field, bad segments (see
:mod:`pipeline.datasets.segments`), a real clip with fake periods, a fake clip
without any (its frame labels would say it is real throughout), a path outside the
root, a record past the depth and size bounds (:mod:`pipeline.datasets.json_stream`). Repairs (listed in ``repaired``): segments sorted, merged or cut at the
duration; an ``n_fakes`` that disagrees with the periods (the periods are kept).
"""

from __future__ import annotations

import os
from pathlib import Path, PurePosixPath
from typing import Any

from pipeline.datasets.base import ClipSink, Collector, ScanError, clip_source, examine
from pipeline.datasets.labels import category_of, per_modality
from pipeline.datasets.records import (
    ODD_RECORD,
    BadRecord,
    confined_file,
    confined_name,
    duration_of,
    field,
    json_records,
    odd_record,
    optional,
    record_object,
    relative_file,
)
from pipeline.datasets.roots import find_root
from pipeline.datasets.segments import BadSegments, read_segments
from pipeline.datasets.source import ClipSource, ScanResult

NAME = "lavdf"
METADATA_NAMES = ("metadata.json", "metadata.min.json")
WANTED = "LAV-DF: metadata.json or metadata.min.json holding records with 'modify_video'"


def looks_like(path: Path) -> bool:
    """True when ``path`` holds a LAV-DF metadata file (its first record has ``modify_video``)."""
    return _metadata_name(path.resolve()) is not None


def scan(root: str | Path, sink: ClipSink | None = None) -> ScanResult:
    """Every clip LAV-DF's metadata names under ``root`` (or the one folder just under it)."""
    # Asked for by name, a metadata file that detection would pass over (not an array,
    # broken JSON) is read anyway, so that the error says what is wrong with it.
    dataset = find_root(root, _holds_metadata, WANTED)
    name = next(n for n in METADATA_NAMES if os.path.lexists(dataset / n))
    collector = Collector(dataset, NAME, sink)
    for index, raw in json_records(confined_file(dataset, name), dataset):
        where = collector.where(name, index)
        try:
            clip, repairs = _clip(collector, where, raw)
        except (BadRecord, BadSegments) as exc:
            collector.refuse(where, str(exc))
            continue
        except ODD_RECORD as exc:  # a record no rule foresaw is still one refused row
            collector.refuse(where, odd_record(exc))
            continue
        if clip is not None:
            collector.add(name, index, clip, repairs)
    return collector.finish()


def _holds_metadata(path: Path) -> bool:
    return any(os.path.lexists(path / name) for name in METADATA_NAMES)


def _metadata_name(path: Path) -> str | None:
    """The metadata file detection takes (``metadata.json`` first), or None."""
    for name in METADATA_NAMES:
        if examine(path, name) is None and _first_record_has(path / name, "modify_video"):
            return name
    return None


def _first_record_has(path: Path, key: str) -> bool:
    """Whether the first record of the JSON array in ``path`` has ``key`` (reads one record)."""
    try:
        first = next((record for _, record in json_records(path, path.parent)), None)
    except (OSError, ScanError):
        return False
    return isinstance(first, dict) and key in first


def _clip(collector: Collector, where: str, raw: Any) -> tuple[ClipSource | None, list[str]]:
    """The clip of one record and its repairs; ``(None, [])`` when its path was rejected."""
    record = record_object(raw)
    rel = relative_file(field(record, "file", str))
    video_fake = field(record, "modify_video", bool)
    audio_fake = field(record, "modify_audio", bool)
    duration = duration_of(record)
    periods = field(record, "fake_periods", list)
    fake, repairs = read_segments(periods, "fake_periods", duration)
    if fake and not (audio_fake or video_fake):
        raise BadRecord("a real clip (modify_audio and modify_video false) with fake_periods")
    if not fake and (audio_fake or video_fake):
        which = "modify_video" if video_fake else "modify_audio"
        raise BadRecord(f"a fake clip ({which} true) with no fake_periods")
    n_fakes = optional(record, "n_fakes", int)
    if n_fakes is not None and n_fakes != len(periods):
        repairs.append(f"n_fakes {n_fakes} but {len(periods)} fake_periods; the periods are kept")
    original = optional(record, "original", str)
    original = relative_file(original, "original") if original else ""
    confined_name(original, "original")
    source_split = optional(record, "split", str) or PurePosixPath(rel).parts[0]
    reason = collector.examine(rel)
    if reason is not None:
        collector.reject_path(where, rel, reason)
        return None, []
    audio_segments, video_segments = per_modality(fake, audio_fake, video_fake)
    clip = clip_source(
        NAME,
        rel,
        PurePosixPath(original or rel).stem,
        category_of(audio_fake, video_fake),
        source_split=source_split,
        original=original,
        segments=(fake, audio_segments, video_segments),
    )
    return clip, repairs


__all__ = ["METADATA_NAMES", "NAME", "WANTED", "looks_like", "scan"]
