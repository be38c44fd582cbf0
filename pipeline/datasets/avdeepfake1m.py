"""AV-Deepfake1M (and AV-Deepfake1M++) adapter: one metadata source per subset, and the test list.

The release has one folder per subset (``train/``, ``val/``, ``test/``) and, at
the root, the labels of each labelled subset: ``{subset}_metadata.json`` (a JSON
array of records, hundreds of MB for ``train``: read streaming) or, in the other
form the release ships, a folder ``{subset}_metadata/`` with one JSON record per
clip. The array wins when both are present. ``test_files.txt`` lists the test
clips, one per line, whose labels are not public: they are taken with
``labelled`` false, category ``""`` and no segments.

A record: ``file`` (``id00012/dGBIDj-zRuU/00130/real.mp4``), ``original`` (the
real clip a fake was made from, or null), ``split``, ``modify_type`` (``real``,
``audio_modified``, ``visual_modified``, ``both_modified``; ``both-modified``, the
spelling the official SDK tests for, is the same), ``audio_model`` (the voice
generator), ``fake_segments``, ``audio_fake_segments``, ``visual_fake_segments``
(seconds), ``video_frames``, ``audio_frames``.

Paths: the release's ``file`` is relative to the subset folder (the official SDK
opens ``<root>/<subset>/<file>``), so ``train/<file>`` is tried first; when that
does not exist but ``<root>/<file>`` does (a copy laid out flat), the latter is
taken. ``original`` is resolved the same way (it is never opened).

Labels kept: the three segment lists as given (sorted and merged where needed);
``identity`` is the first path component (``id00012``, the VoxCeleb2 speaker);
``method`` is the canonical ``modify_type``, with the voice generator after a colon
when the audio is fake (``audio_modified:yourtts``); ``source_type`` the canonical
``modify_type``. Records give no ``duration`` (the SDK derives it from
``video_frames`` at an assumed 25 fps), so segments are checked against the clip's
length only when a record does carry ``duration``.

Refused records: a missing or mistyped field, an unknown ``modify_type``, bad
segments, labels that contradict each other (segments for a modality that
``modify_type`` says is real; a fake clip without ``fake_segments``, or a fake
modality without its own list; ``fake_segments`` that are not the union of the
audio and visual ones), a path outside the root, a record past the depth and size
bounds. A per-clip JSON file that is not a regular file inside the root (a FIFO, a
link out) is its record's refused row, never opened.
"""

from __future__ import annotations

import io
import os
from collections.abc import Iterator
from pathlib import Path, PurePosixPath
from typing import Any

from pipeline.datasets.base import (
    MISSING,
    ClipSink,
    Collector,
    ScanError,
    clip_source,
)
from pipeline.datasets.labels import MODIFY_TYPES, category_of, modify_type_of
from pipeline.datasets.records import (
    ODD_RECORD,
    BadRecord,
    confined_file,
    confined_name,
    duration_of,
    field,
    json_object,
    json_records,
    odd_record,
    optional,
    record_object,
    relative_file,
)
from pipeline.datasets.roots import find_root
from pipeline.datasets.segments import BadSegments, read_segments
from pipeline.datasets.source import ClipSource, ScanResult, Segments
from schemas.safe_files import is_inside, open_inside

NAME = "avdeepfake1m"
SUBSETS = ("train", "val", "test")
TEST_LIST = "test_files.txt"
WANTED = (
    "AV-Deepfake1M: train_metadata.json, val_metadata.json, train_metadata/, val_metadata/ "
    "or test_files.txt"
)
#: Seconds within which two segment ends are the same time (a frame is 40 ms).
SAME_TIME_S = 1e-3
_SEGMENT_FIELDS = ("fake_segments", "audio_fake_segments", "visual_fake_segments")


def looks_like(path: Path) -> bool:
    """True when ``path`` holds any of the release's metadata files or folders.

    A metadata file counts whatever it is (a FIFO, a link out): the scan then refuses it
    by name instead of saying the folder does not look like the dataset.
    """
    return os.path.lexists(path / TEST_LIST) or any(
        os.path.lexists(path / f"{s}_metadata.json") or (path / f"{s}_metadata").is_dir()
        for s in SUBSETS
    )


def scan(root: str | Path, sink: ClipSink | None = None) -> ScanResult:
    """Every clip the metadata (and ``test_files.txt``) names under ``root`` or just under it."""
    dataset = find_root(root, looks_like, WANTED)
    collector = Collector(dataset, NAME, sink)
    for subset in SUBSETS:
        for source, index, raw in _subset_records(dataset, subset):
            where = collector.where(source, index)
            try:
                clip, repairs = _clip(collector, where, subset, raw)
            except (BadRecord, BadSegments) as exc:
                collector.refuse(where, str(exc))
                continue
            except ODD_RECORD as exc:  # a record no rule foresaw is still one refused row
                collector.refuse(where, odd_record(exc))
                continue
            if clip is not None:
                collector.add(source, index, clip, repairs)
    if os.path.lexists(dataset / TEST_LIST):
        _add_test_list(collector, confined_file(dataset, TEST_LIST))
    return collector.finish()


def _subset_records(dataset: Path, subset: str) -> Iterator[tuple[str, int, Any]]:
    """``(source, index, record)`` of a subset: its JSON array, else its per-clip JSON files.

    A per-clip file's ``source`` is its path and its index -1 (where says only the file).
    """
    array = f"{subset}_metadata.json"
    if os.path.lexists(dataset / array):
        for index, raw in json_records(confined_file(dataset, array), dataset):
            yield array, index, raw
        return
    folder = dataset / f"{subset}_metadata"
    if not folder.is_dir():
        return
    if not is_inside(os.path.realpath(folder), dataset):  # never list a folder outside
        raise ScanError(f"{folder} leads outside the dataset root; refused")
    for rel in _json_files(dataset, folder):
        try:
            raw = json_object(dataset / rel, dataset)
        except BadRecord as exc:
            raw = exc  # reported by _clip as a refused record
        yield rel, -1, raw


def _json_files(dataset: Path, folder: Path) -> list[str]:
    """Relative paths of the ``.json`` files under ``folder``, sorted."""
    found = []
    for dirpath, _dirs, files in os.walk(folder):
        found += [
            (Path(dirpath) / f).relative_to(dataset).as_posix()
            for f in files
            if f.endswith(".json")
        ]
    return sorted(found)


def _clip(
    collector: Collector, where: str, subset: str, raw: Any
) -> tuple[ClipSource | None, list[str]]:
    """The clip of one record and its repairs; ``(None, [])`` when its path was rejected."""
    if isinstance(raw, BadRecord):
        raise raw
    record = record_object(raw)
    file = relative_file(field(record, "file", str))
    kind = _modify_type(record)
    audio_fake, video_fake = MODIFY_TYPES[kind]
    fake, audio, video, repairs = _segments(record, audio_fake, video_fake)
    original = optional(record, "original", str)
    original = (
        _resolved(collector.root, subset, relative_file(original, "original")) if original else ""
    )
    audio_model = optional(record, "audio_model", str) or ""
    source_split = optional(record, "split", str) or subset
    rel = _locate(collector, where, subset, file)
    if rel is None:
        return None, []
    clip = clip_source(
        NAME,
        rel,
        PurePosixPath(file).parts[0],
        category_of(audio_fake, video_fake),
        source_type=kind,
        method=kind if not (audio_fake and audio_model) else f"{kind}:{audio_model}",
        source_split=source_split,
        original=original,
        segments=(fake, audio, video),
    )
    return clip, repairs


def _modify_type(record: dict[str, Any]) -> str:
    """The record's ``modify_type`` in its canonical spelling (``both-modified`` -> ``both_modified``)."""
    kind = field(record, "modify_type", str)
    if kind not in MODIFY_TYPES:
        expected = ", ".join(k for k in MODIFY_TYPES if k != "both-modified")
        raise BadRecord(f"unknown modify_type {kind!r}; expected {expected}")
    return Collector.intern(modify_type_of(*MODIFY_TYPES[kind]))


def _segments(
    record: dict[str, Any], audio_fake: bool, video_fake: bool
) -> tuple[Segments, Segments, Segments, list[str]]:
    """The three segment lists, checked against each other and ``modify_type``, and repairs."""
    duration = duration_of(record)
    lists, repairs = [], []
    for name in _SEGMENT_FIELDS:
        segments, fixed = read_segments(field(record, name, list), name, duration)
        lists.append(segments)
        repairs += fixed
    fake, audio, video = lists
    if audio and not audio_fake:
        raise BadRecord("audio_fake_segments for a clip whose modify_type says the audio is real")
    if video and not video_fake:
        raise BadRecord("visual_fake_segments for a clip whose modify_type says the video is real")
    if fake and not (audio_fake or video_fake):
        raise BadRecord("fake_segments for a clip whose modify_type is real")
    _check_fake_labels(fake, audio if audio_fake else None, video if video_fake else None)
    # One shared tuple where lists are equal: a million clips, a third of the memory.
    audio = fake if audio == fake else audio
    video = fake if video == fake else video
    return fake, audio, video, repairs


def _check_fake_labels(fake: Segments, audio: Segments | None, video: Segments | None) -> None:
    """``BadRecord`` when a fake clip's lists contradict (``None``: that modality is real).

    Each fake modality needs its own segments, and ``fake_segments`` must be their
    union: otherwise the stored frame labels would call a frame fake while neither
    modality is, or the other way round.
    """
    if audio is None and video is None:
        return
    if not fake:
        raise BadRecord("a fake clip (modify_type not real) with empty fake_segments")
    for name, segments in (("audio_fake_segments", audio), ("visual_fake_segments", video)):
        if segments is not None and not segments:
            raise BadRecord(f"{name} is empty although modify_type says that modality is fake")
    union, _ = read_segments([*(audio or ()), *(video or ())], "union")
    ends = [(u, f) for pair in zip(union, fake, strict=False) for u, f in zip(*pair, strict=True)]
    if len(union) != len(fake) or any(abs(u - f) > SAME_TIME_S for u, f in ends):
        raise BadRecord(
            "fake_segments are not the union of audio_fake_segments and visual_fake_segments"
        )


def _locate(collector: Collector, where: str, subset: str, file: str) -> str | None:
    """The clip's path relative to the root (``subset/file``, else ``file``), or None if rejected."""
    pure = PurePosixPath(file)
    if pure.is_absolute() or ".." in pure.parts:
        # Checked before joining: "train" + "/etc/x" would otherwise read as "train/etc/x".
        collector.reject_path(where, file, "leaves the dataset root")
        return None
    rel = f"{subset}/{file}"
    reason = collector.examine(rel)
    if reason == MISSING and collector.examine(file) is None:
        return file
    if reason is not None:
        collector.reject_path(where, rel, reason)
        return None
    return rel


def _resolved(dataset: Path, subset: str, original: str) -> str:
    """Where ``original`` is, relative to the root: under the subset folder unless only the root has it."""
    confined_name(original, "original")
    in_subset = f"{subset}/{original}"
    if not os.path.lexists(dataset / in_subset) and os.path.lexists(dataset / original):
        return original
    return in_subset


def _add_test_list(collector: Collector, path: Path) -> None:
    """The unlabelled test clips, one path per line, relative to ``test/`` (else to the root)."""
    with (
        open_inside(os.path.realpath(path), collector.root, what="test list") as raw,
        io.TextIOWrapper(raw, encoding="utf-8-sig", errors="surrogateescape") as text,
    ):
        for line_no, line in enumerate(text, start=1):
            file = line.rstrip("\r\n")
            if not file.strip():
                continue
            where = collector.where(TEST_LIST, line_no)
            if any("\udc80" <= ch <= "\udcff" for ch in file) or "\x00" in file:
                collector.refuse(where, "the line is not a valid UTF-8 path")
                continue
            file = PurePosixPath(file.replace("\\", "/")).as_posix()
            rel = _locate(collector, where, "test", file)
            if rel is not None:
                collector.add(TEST_LIST, line_no, _unlabelled(rel, file), [])


def _unlabelled(rel: str, file: str) -> ClipSource:
    """A test clip whose labels are not public: category ``""``, labels and segments unknown."""
    return clip_source(NAME, rel, PurePosixPath(file).parts[0], "", source_split="test")


__all__ = ["NAME", "SUBSETS", "TEST_LIST", "WANTED", "looks_like", "scan"]
