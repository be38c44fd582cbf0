"""Read a dataset's JSON metadata one record at a time, and check each record's fields.

A metadata file is a JSON array of objects. :func:`json_records` reads it
streaming with ``ijson`` (AV-Deepfake1M's train metadata is hundreds of MB: the
scan holds one record at a time, never the document). A file that is not valid
JSON, or not an array, is a :class:`~pipeline.datasets.common.ScanError` for the whole file
(its later records cannot be trusted, and a half-read dataset would ingest
silently short); a record that is not an object, or lacks a field, or holds the
wrong type, is :class:`BadRecord`, and the adapter refuses that record alone.

Records are built by :mod:`pipeline.datasets.json_stream`, which bounds each
record's depth and size: a record past them is refused alone, never built.

The metadata file itself is vetted like any path and opened with
:func:`schemas.safe_files.open_inside`: a link out of the root, or something that is
not a regular file, is never opened.
"""

from __future__ import annotations

import io
import math
import os
from collections.abc import Iterator
from pathlib import Path, PurePosixPath
from typing import Any

import ijson

from pipeline.datasets.common import LEAVES, MISSING, ScanError, examine, shown
from pipeline.datasets.json_stream import NumberTooLong, TooBig, array_items, one_value
from schemas.cli_errors import UserError
from schemas.safe_files import RefusedFile, open_inside

#: A per-clip metadata file (one record) is at most this many bytes.
MAX_RECORD_FILE_BYTES = 1 << 20

_MISSING_FIELD = object()


class BadRecord(UserError):
    """One record that cannot be taken (missing field, wrong type): it is refused alone."""


#: What a record no rule foresaw may still raise; the adapters refuse that record alone
#: (as the FakeAVCeleb scan does for a CSV row) rather than end a million-record scan.
ODD_RECORD = (ArithmeticError, LookupError, RecursionError, TypeError, ValueError)


def odd_record(exc: BaseException) -> str:
    """The refusal of a record that raised ``exc``, said in a phrase."""
    return f"cannot be read ({shown(f'{type(exc).__name__}: {exc}', 120)})"


def confined_file(root: Path, rel: str) -> Path:
    """``root / rel`` when it is a regular file inside ``root``; ``ScanError`` otherwise."""
    reason = examine(root, rel)
    if reason is None:
        return root / rel
    if reason == MISSING:
        raise ScanError(f"{root / rel} does not exist")
    if reason == LEAVES:
        reason = "a link to a file outside the dataset root; refused (copy the file into it)"
        raise ScanError(f"{root / rel} is {reason}")
    raise ScanError(f"{root / rel} is {reason}; refused")


def json_records(path: Path, root: Path) -> Iterator[tuple[int, Any]]:
    """``(index, record)`` for each element of the JSON array in ``path``, read streaming.

    Numbers come back as ``int``/``float`` (``1e400`` as ``inf``). A record past the
    depth or size bounds comes back as a :class:`BadRecord` in its place. Raises
    ``ScanError`` when the file is not a JSON array or stops being valid JSON part way.
    """
    try:
        raw = open_inside(os.path.realpath(path), root, what="metadata file")
    except RefusedFile as exc:
        raise ScanError(str(exc)) from None
    with raw:
        _expect_array(raw, path)
        index = -1
        try:
            for index, record in enumerate(array_items(raw)):
                yield index, _checked(record)
        except NumberTooLong as exc:  # valid JSON, but not a number Python reads
            raise ScanError(f"{path}: holds {exc}, which Python does not read; fix it") from None
        except (ijson.JSONError, UnicodeDecodeError, ValueError) as exc:
            after = f"after record {index}" if index >= 0 else "before its first record"
            raise ScanError(
                f"{path}: not valid JSON {after} ({_first_line(exc)}); fix or re-download it"
            ) from None


def json_object(path: Path, root: Path) -> Any:
    """The one JSON value in a small per-clip file inside ``root``.

    ``BadRecord`` when it is not valid JSON, past the bounds, or not a regular file
    inside the root (a FIFO, a link out, never opened): that file's record alone is
    refused.
    """
    reason = examine(root, path.relative_to(root).as_posix())
    if reason is not None:
        verb = "" if reason == LEAVES else "is "
        raise BadRecord(f"the file {verb}{reason}" if reason != MISSING else "the file is gone")
    try:
        # Resolved first: a link inside the root is followed, one out of it refused.
        real = os.path.realpath(path)
        with open_inside(real, root, max_bytes=MAX_RECORD_FILE_BYTES, what="file") as raw:
            return _checked(one_value(raw))
    except RefusedFile as exc:  # changed since it was examined, or oversize
        raise BadRecord(str(exc).removesuffix("; refused")) from None
    except (ijson.JSONError, UnicodeDecodeError, ValueError, StopIteration) as exc:
        raise BadRecord(f"not valid JSON ({_first_line(exc) or 'empty'})") from None


def json_value(text: str, name: str) -> Any:
    """The JSON value in the text of a field ``name`` (a CSV cell), bounded like a record."""
    try:
        value = _checked(one_value(io.BytesIO(text.encode("utf-8", "surrogateescape"))))
    except (ijson.JSONError, UnicodeDecodeError, ValueError, StopIteration) as exc:
        raise BadRecord(f"{name} is not JSON ({_first_line(exc) or 'empty'})") from None
    if isinstance(value, BadRecord):
        raise BadRecord(f"{name} is {str(value).removeprefix('the record is ')}")
    return value


def _checked(value: Any) -> Any:
    """``value``, or ``BadRecord`` for a record that was too deep or too big to build."""
    if isinstance(value, TooBig):
        return BadRecord(f"the record is {value.reason}")
    return value


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
        # int and float together are "a number"; int alone is "a whole number".
        names = [_JSON_NAMES.get(k, k.__name__) for k in kinds if not (k is int and float in kinds)]
        raise BadRecord(f"field {name!r} is {shown(repr(value), 40)}, not {' or '.join(names)}")
    return value


_JSON_NAMES = {
    str: "a string",
    bool: "true/false",
    int: "a whole number",
    float: "a number",
    list: "a list",
}


def record_object(record: Any) -> dict[str, Any]:
    """The record as a dict; ``BadRecord`` when the array holds something else (or
    held a record past the bounds, which :func:`json_records` hands over as one)."""
    if isinstance(record, BadRecord):
        raise record
    if not isinstance(record, dict):
        raise BadRecord(f"not a JSON object ({shown(repr(record), 40)})")
    return record


def relative_file(value: str, name: str = "file") -> str:
    """A record's path field in POSIX form (backslashes as slashes); ``BadRecord`` when empty."""
    if not value.strip():
        raise BadRecord(f"field {name!r} is empty")
    # "./a/b.mp4" and "a//b.mp4" name "a/b.mp4"; ".." and absolute paths stay (and are refused).
    pure = PurePosixPath(value.replace("\\", "/"))
    if not pure.parts or pure.name in ("", ".", ".."):
        raise BadRecord(f"field {name!r} ({shown(value, 40)}) names no file")
    return pure.as_posix()


def duration_of(record: dict[str, Any]) -> float | None:
    """The record's ``duration`` in seconds (None when it gives none); ``BadRecord`` if not positive."""
    duration = optional(record, "duration", (int, float))
    if duration is None:
        return None
    seconds = finite(duration)
    if seconds is None or not seconds > 0:
        raise BadRecord(
            f"field 'duration' is {shown(repr(duration), 40)}, not a positive number of seconds"
        )
    return seconds


def finite(number: float) -> float | None:
    """``number`` as a finite float, or None (``inf``, ``nan``, an integer beyond a float)."""
    try:
        value = float(number)
    except OverflowError:
        return None
    return value if math.isfinite(value) else None


def confined_name(rel: str, name: str) -> None:
    """``BadRecord`` when a path field that is never opened still points outside the root."""
    pure = PurePosixPath(rel)
    if pure.is_absolute() or ".." in pure.parts:
        raise BadRecord(f"field {name!r} ({shown(rel)}) leaves the dataset root")


__all__ = [
    "ODD_RECORD",
    "BadRecord",
    "confined_file",
    "confined_name",
    "duration_of",
    "field",
    "finite",
    "json_object",
    "json_records",
    "json_value",
    "odd_record",
    "optional",
    "record_object",
    "relative_file",
]
