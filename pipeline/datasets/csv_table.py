"""The ``csv`` adapter: a user's own dataset, labelled by one CSV file.

Where the CSV is: ``ROOT/labels.csv``, or ``ROOT`` may name the CSV file itself,
whose folder is then the dataset root. It is used only when asked for
(``--dataset csv``): any folder could hold a ``labels.csv``, so detection never guesses it.

Columns (a header line names them, in any order): ``path`` (relative to the root,
confined to it like every path) and ``label`` (``0``/``1``, or ``real``/``fake``)
are required; optional are ``audio_label``, ``video_label`` (same values),
``identity``, ``split`` (``train``/``val``/``dev``/``test``, or empty) and
``fake_segments`` (JSON, ``[[start_s, end_s], ...]``, bounded like a metadata record:
see :mod:`pipeline.datasets.json_stream`). Any other column is a
``ScanError`` (a misspelled ``audio_lable`` would otherwise be ignored silently).

Category: from ``audio_label`` and ``video_label``. A row with ``label`` 0 is real in
both modalities. A fake row must say which modality is fake: both per-modality
labels, or one of them 0 (then the other is the fake one). A fake row that says
neither is refused rather than guessed: calling it ``FAFV`` would teach the
per-modality heads that a face-swap's real voice is fake. ``label`` must agree with
the per-modality labels (fake exactly when one of them is).

``identity`` defaults to the first folder of ``path`` (the file's stem when it has
no folder). ``fake_segments``, when given, is the clip's fake segments; a fake
modality is fake over them and a real one is real throughout, as in LAV-DF.
``method`` and ``source_type`` are the modified modalities (``audio_modified`` ...).
"""

from __future__ import annotations

import csv
import io
import os
from pathlib import Path, PurePosixPath
from typing import Any

from pipeline.datasets.base import (
    ClipSink,
    Collector,
    ScanError,
    clip_source,
    shown,
    undecodable,
)
from pipeline.datasets.labels import OFFICIAL_SPLITS, category_of, per_modality
from pipeline.datasets.records import (
    ODD_RECORD,
    BadRecord,
    confined_file,
    json_value,
    odd_record,
    relative_file,
)
from pipeline.datasets.segments import BadSegments, read_segments
from pipeline.datasets.source import ClipSource, ScanResult, Segments
from schemas.safe_files import open_inside

NAME = "csv"
CSV_NAME = "labels.csv"
REQUIRED = ("path", "label")
OPTIONAL = ("audio_label", "video_label", "identity", "split", "fake_segments")
_VALUES = {"0": False, "1": True, "real": False, "fake": True}


def locate(root: str | Path) -> tuple[Path, str]:
    """``(dataset root, CSV name)``: ``ROOT/labels.csv``, or ``ROOT`` the CSV itself."""
    root = Path(root)
    if root.is_dir():
        if not os.path.lexists(root / CSV_NAME):
            raise ScanError(f"{root} holds no {CSV_NAME}; pass the CSV file itself or add it")
        return root.resolve(), CSV_NAME
    if root.suffix.lower() == ".csv" and root.parent.is_dir():
        return root.parent.resolve(), root.name
    raise ScanError(f"{root} is neither a folder holding {CSV_NAME} nor a .csv file")


def scan(root: str | Path, sink: ClipSink | None = None) -> ScanResult:
    """Every clip the CSV names, labelled by its columns (see the module docstring)."""
    dataset, name = locate(root)
    path = confined_file(dataset, name)
    collector = Collector(dataset, NAME, sink)
    with (
        open_inside(os.path.realpath(path), dataset, what="CSV file") as raw,
        io.TextIOWrapper(raw, encoding="utf-8-sig", errors="surrogateescape", newline="") as text,
    ):
        reader = csv.reader(text)
        columns = _header(reader, path)
        while True:
            line_no = reader.line_num + 1
            where = collector.where(name, line_no)
            try:
                row = next(reader)
            except StopIteration:
                break
            except csv.Error as exc:
                collector.refuse(where, f"not a valid CSV row ({exc})")
                continue
            if not any(cell.strip() for cell in row):
                continue
            try:
                clip, repairs = _clip(collector, where, dict(zip(columns, row, strict=False)))
            except (BadRecord, BadSegments) as exc:
                collector.refuse(where, str(exc))
                continue
            except ODD_RECORD as exc:  # a row no rule foresaw is still one refused row
                collector.refuse(where, odd_record(exc))
                continue
            if clip is not None:
                collector.add(name, line_no, clip, repairs)
    return collector.finish()


def _header(reader: Any, path: Path) -> list[str]:
    try:
        header = [h.strip().lower() for h in next(reader, [])]
    except csv.Error as exc:
        raise ScanError(f"{path}: unreadable header ({exc})") from None
    unknown = [h for h in header if h not in REQUIRED + OPTIONAL]
    absent = [h for h in REQUIRED if h not in header]
    if unknown or absent or len(set(header)) != len(header):
        problem = (
            f"unknown column(s) {shown(', '.join(unknown))}"
            if unknown
            else f"no {' or '.join(absent)} column"
            if absent
            else "a column named twice"
        )
        raise ScanError(
            f"{path}: {problem}; expected path,label and optionally {','.join(OPTIONAL)}"
        )
    return header


def _clip(
    collector: Collector, where: str, row: dict[str, str]
) -> tuple[ClipSource | None, list[str]]:
    """The clip of one CSV row and its repairs; ``(None, [])`` when its path was rejected."""
    if any("\x00" in v or undecodable(v) for v in row.values()):
        raise BadRecord("a field holds a NUL byte or bytes that are not UTF-8")
    rel = relative_file(row.get("path", ""), "path")
    audio_fake, video_fake = _modalities(row)
    source_split = row.get("split", "").strip()
    if source_split and source_split.lower() not in OFFICIAL_SPLITS:
        raise BadRecord(f"unknown split {source_split!r}; expected train, val, dev or test")
    fake, audio, video, repairs = _segments(row.get("fake_segments", ""), audio_fake, video_fake)
    reason = collector.examine(rel)
    if reason is not None:
        collector.reject_path(where, rel, reason)
        return None, []
    parts = PurePosixPath(rel).parts
    identity = row.get("identity", "").strip() or (
        parts[0] if len(parts) > 1 else PurePosixPath(rel).stem
    )
    clip = clip_source(
        NAME,
        rel,
        identity,
        category_of(audio_fake, video_fake),
        source_split=source_split,
        segments=(fake, audio, video),
    )
    return clip, repairs


def _modalities(row: dict[str, str]) -> tuple[bool, bool]:
    """``(audio fake, video fake)`` from ``label`` and the optional per-modality labels."""
    label = _value(row, "label")
    if label is None:
        raise BadRecord("the label is empty")
    audio, video = _value(row, "audio_label"), _value(row, "video_label")
    if not label:
        if audio or video:
            raise BadRecord("label 0 (real) but a per-modality label says fake")
        return False, False
    if audio is None and video is None:
        raise BadRecord(
            "label 1 (fake) without audio_label or video_label: say which modality is fake"
        )
    if (audio is True and video is None) or (video is True and audio is None):
        # One modality fake, the other not said: it could be fake too.
        raise BadRecord("label 1 with one modality fake and the other not given")
    # One of them 0 and the other not given: the other is the fake one.
    audio_fake = audio if audio is not None else not video
    video_fake = video if video is not None else not audio
    if not (audio_fake or video_fake):
        raise BadRecord("label 1 (fake) but audio_label and video_label are both 0")
    return audio_fake, video_fake


def _value(row: dict[str, str], column: str) -> bool | None:
    text = row.get(column, "").strip().lower()
    if not text:
        return None
    if text not in _VALUES:
        raise BadRecord(f"{column} {text!r} is not 0, 1, real or fake")
    return _VALUES[text]


def _segments(
    text: str, audio_fake: bool, video_fake: bool
) -> tuple[Segments | None, Segments | None, Segments | None, list[str]]:
    """The row's segments (None x3 when the column is empty or absent) and repairs."""
    if not text.strip():
        return None, None, None, []
    fake, repairs = read_segments(json_value(text, "fake_segments"), "fake_segments")
    if fake and not (audio_fake or video_fake):
        raise BadRecord("fake_segments for a row labelled real")
    if not fake and (audio_fake or video_fake):
        raise BadRecord("label 1 (fake) with empty fake_segments (leave the cell empty if unknown)")
    audio, video = per_modality(fake, audio_fake, video_fake)
    return fake, audio, video, repairs


__all__ = ["CSV_NAME", "NAME", "OPTIONAL", "REQUIRED", "locate", "scan"]
