"""Read a dataset's JSON metadata one record at a time, and check each record's fields.

A metadata file is a JSON array of objects. :func:`json_records` reads it
streaming with ``ijson`` (AV-Deepfake1M's train metadata is hundreds of MB: the
scan holds one record at a time, never the document). A file that is not valid
JSON, or not an array, is a :class:`~pipeline.scan.ScanError` for the whole file
(its later records cannot be trusted, and a half-read dataset would ingest
silently short); a record that is not an object, or lacks a field, or holds the
wrong type, is :class:`BadRecord`, and the adapter refuses that record alone.

The metadata file itself is vetted like any path: a link out of the root, or
something that is not a regular file, is never opened.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path, PurePosixPath
from typing import Any

import ijson

from pipeline.scan import MISSING, ScanError, examine, shown

_MISSING_FIELD = object()


class BadRecord(ValueError):
    """One record that cannot be taken (missing field, wrong type): it is refused alone."""


def confined_file(root: Path, rel: str) -> Path:
    """``root / rel`` when it is a regular file inside ``root``; ``ScanError`` otherwise."""
    reason = examine(root, rel)
    if reason is None:
        return root / rel
    if reason == MISSING:
        raise ScanError(f"{root / rel} does not exist")
    if reason == "leaves the dataset root":
        reason = "a link to a file outside the dataset root"
    raise ScanError(f"{root / rel} is {reason}; refused (copy the file into the dataset root)")


def json_records(path: Path) -> Iterator[tuple[int, Any]]:
    """``(index, record)`` for each element of the JSON array in ``path``, read streaming.

    Numbers come back as ``int``/``float`` (not ``Decimal``). Raises ``ScanError``
    when the file is not a JSON array or stops being valid JSON part way.
    """
    with path.open("rb") as raw:
        _expect_array(raw, path)
        index = -1
        try:
            for index, record in enumerate(ijson.items(raw, "item", use_float=True)):
                yield index, record
        except (ijson.JSONError, UnicodeDecodeError, ValueError) as exc:
            after = f"after record {index}" if index >= 0 else "before its first record"
            raise ScanError(
                f"{path}: not valid JSON {after} ({_first_line(exc)}); fix or re-download it"
            ) from None


def json_object(path: Path) -> Any:
    """The one JSON value in a small per-clip file; ``BadRecord`` when it is not valid JSON."""
    try:
        with path.open("rb") as raw:
            return next(ijson.items(raw, "", use_float=True))
    except (ijson.JSONError, UnicodeDecodeError, ValueError, StopIteration) as exc:
        raise BadRecord(f"not valid JSON ({_first_line(exc) or 'empty'})") from None


def _first_line(exc: BaseException) -> str:
    """The first line of a parser's message (yajl's goes on to draw an arrow under the text)."""
    return shown(str(exc).strip().split("\n", 1)[0], 120)


def _expect_array(raw: Any, path: Path) -> None:
    """Check the document starts with ``[`` (skipping a UTF-8 BOM and blanks); leave it unread."""
    head = raw.read(4096)
    start = 3 if head.startswith(b"\xef\xbb\xbf") else 0
    stripped = head[start:].lstrip()
    if not stripped.startswith(b"["):
        what = "empty" if not stripped else f"starts with {shown(repr(stripped[:20]))}"
        raise ScanError(f"{path}: expected a JSON array of records, but the file is {what}")
    raw.seek(start)


def field(record: dict[str, Any], name: str, kind: type | tuple[type, ...]) -> Any:
    """``record[name]``, which must be present and of ``kind``; ``BadRecord`` otherwise."""
    value = record.get(name, _MISSING_FIELD)
    if value is _MISSING_FIELD:
        raise BadRecord(f"no {name!r} field")
    return _typed(value, name, kind)


def optional(record: dict[str, Any], name: str, kind: type | tuple[type, ...]) -> Any:
    """``record[name]`` of ``kind``, or None when absent or null."""
    value = record.get(name)
    return None if value is None else _typed(value, name, kind)


def _typed(value: Any, name: str, kind: type | tuple[type, ...]) -> Any:
    kinds = kind if isinstance(kind, tuple) else (kind,)
    # A JSON true is a Python int too; a flag or a count must be what the format says.
    wrong_bool = isinstance(value, bool) and bool not in kinds
    if wrong_bool or not isinstance(value, kinds):
        want = " or ".join(_JSON_NAMES.get(k, k.__name__) for k in kinds)
        raise BadRecord(f"field {name!r} is {shown(repr(value), 40)}, not {want}")
    return value


_JSON_NAMES = {
    str: "a string",
    bool: "true/false",
    int: "a number",
    float: "a number",
    list: "a list",
}


def record_object(record: Any) -> dict[str, Any]:
    """The record as a dict; ``BadRecord`` when the array holds something else."""
    if not isinstance(record, dict):
        raise BadRecord(f"not a JSON object ({shown(repr(record), 40)})")
    return record


def relative_file(value: str, name: str = "file") -> str:
    """A record's path field in POSIX form (backslashes as slashes); ``BadRecord`` when empty."""
    if not value.strip():
        raise BadRecord(f"field {name!r} is empty")
    # "./a/b.mp4" and "a//b.mp4" name "a/b.mp4"; ".." and absolute paths stay (and are refused).
    return PurePosixPath(value.replace("\\", "/")).as_posix()


def duration_of(record: dict[str, Any]) -> float | None:
    """The record's ``duration`` in seconds (None when it gives none); ``BadRecord`` if not positive."""
    duration = optional(record, "duration", (int, float))
    if duration is not None and not duration > 0:
        raise BadRecord(f"field 'duration' is {duration}, not a positive number of seconds")
    return None if duration is None else float(duration)


def confined_name(rel: str, name: str) -> None:
    """``BadRecord`` when a path field that is never opened still points outside the root."""
    pure = PurePosixPath(rel)
    if pure.is_absolute() or ".." in pure.parts:
        raise BadRecord(f"field {name!r} ({shown(rel)}) leaves the dataset root")


__all__ = [
    "BadRecord",
    "confined_file",
    "confined_name",
    "duration_of",
    "field",
    "json_object",
    "json_records",
    "optional",
    "record_object",
    "relative_file",
]
