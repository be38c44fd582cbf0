"""Build JSON values from ``ijson``'s event stream, with bounds on every record.

``ijson.items`` keeps a prefix string per nesting level, so a record nested ``d``
deep costs memory in ``d²`` (a 40 KB record nested 20,000 deep took 1.1 GB), and
Python's own recursive walks of such a value end in ``RecursionError``. Here
values are built from ``ijson.basic_parse`` (events without prefixes) while the
depth and the number of values are counted: a record past :data:`MAX_DEPTH` levels
or :data:`MAX_VALUES` values is skipped without being built and comes back as a
:class:`TooBig` in its place, so the adapter refuses that record alone.

Numbers are read exactly (``use_float=False``: an ``int``, or a ``Decimal`` turned
into a ``float`` here), so a valid number beyond a float (``1e400``, a 400-digit
integer) no longer stops the parser: ``1e400`` becomes ``inf`` and the field checks
refuse the record holding it. An integer of more than 4,300 digits is one that
Python will not convert, and ijson's C parser mishandles that error (it has crashed the
interpreter): :class:`_DigitGuard` finds such a run of digits in the bytes before the
parser sees them, and the file ends there with :class:`NumberTooLong`.
"""

from __future__ import annotations

import re
import sys
from collections.abc import Iterator
from decimal import Decimal
from typing import Any, BinaryIO

import ijson

#: Nesting levels one record may use (its own object is level 1; a LAV-DF record needs 3).
MAX_DEPTH = 16
#: Values (objects, lists, strings, numbers, ...) one record may hold.
MAX_VALUES = 20_000

#: Digits Python converts to an int (``sys.get_int_max_str_digits``; 0 means no limit).
MAX_DIGITS = sys.get_int_max_str_digits() or 4_300
_DIGIT_RUN = re.compile(rb"[0-9]{%d}" % (MAX_DIGITS + 1))

_OPENS = {"start_map": dict, "start_array": list}
_CLOSES = frozenset({"end_map", "end_array"})


class TooBig:
    """Stands for a record that was not built: ``reason`` says which bound it passed."""

    __slots__ = ("reason",)

    def __init__(self, reason: str) -> None:
        self.reason = reason


class NumberTooLong(ValueError):
    """An integer longer than Python converts (``sys.get_int_max_str_digits``)."""


def array_items(raw: BinaryIO) -> Iterator[Any]:
    """Each element of the JSON array ``raw`` holds: its value, or a :class:`TooBig`.

    Raises ``ijson.JSONError`` (or ``UnicodeDecodeError``) where the text stops being
    JSON, :class:`NumberTooLong` for an integer Python will not read, and ``ValueError``
    when the document is not an array.
    """
    events = _events(raw)
    first = next(events, None)
    if first is None or first[0] != "start_array":
        raise ValueError("the document is not a JSON array")
    for event, value in events:
        if event == "end_array":
            return
        yield _value(event, value, events)


def one_value(raw: BinaryIO) -> Any:
    """The one JSON value in ``raw`` (a per-clip file, a CSV cell), or a :class:`TooBig`.

    Raises ``StopIteration`` for an empty document and what :func:`array_items` raises.
    """
    events = _events(raw)
    event, value = next(events)
    built = _value(event, value, events)
    for _ in events:  # yajl reports trailing data as an error
        pass
    return built


class _DigitGuard:
    """A binary reader that raises :class:`NumberTooLong` on a run of over ``MAX_DIGITS``
    digits (across reads too), before the parser is handed the bytes."""

    def __init__(self, raw: BinaryIO) -> None:
        self._raw = raw
        self._run = b""  # the digits that ended the previous read
        self._offset = 0  # bytes read before this read

    def read(self, size: int = -1) -> bytes:
        data = self._raw.read(size)
        found = _DIGIT_RUN.search(self._run + data[: MAX_DIGITS + 1])
        start = self._offset - len(self._run) if found else 0
        if not found and (found := _DIGIT_RUN.search(data)):
            start = self._offset + found.start()
        if found:
            raise NumberTooLong(f"an integer of more than {MAX_DIGITS:,} digits at byte {start:,}")
        tail = data[len(data.rstrip(b"0123456789")) :]
        self._run = self._run + tail if len(tail) == len(data) else tail
        self._offset += len(data)
        return data


def _events(raw: BinaryIO) -> Iterator[tuple[str, Any]]:
    return ijson.basic_parse(_DigitGuard(raw), use_float=False)


def _scalar(value: Any) -> Any:
    # A Decimal beyond a float's range becomes inf; the field checks refuse it.
    return float(value) if isinstance(value, Decimal) else value


def _value(event: str, value: Any, events: Iterator[tuple[str, Any]]) -> Any:
    """The value that starts with ``(event, value)``, its later events read from ``events``."""
    if event not in _OPENS:
        return _scalar(value)
    top: Any = _OPENS[event]()
    stack: list[Any] = [top]
    keys: list[Any] = [None]
    count = 1
    for event, value in events:
        if event == "map_key":
            keys[-1] = value
            continue
        if event in _CLOSES:
            stack.pop()
            keys.pop()
            if not stack:
                return top
            continue
        count += 1
        if count > MAX_VALUES:
            return _skip(events, len(stack) + (event in _OPENS), f"more than {MAX_VALUES:,} values")
        item = _OPENS[event]() if event in _OPENS else _scalar(value)
        parent = stack[-1]
        if isinstance(parent, list):
            parent.append(item)
        else:
            parent[keys[-1]] = item
        if event in _OPENS:
            if len(stack) >= MAX_DEPTH:
                return _skip(events, len(stack) + 1, f"nested deeper than {MAX_DEPTH} levels")
            stack.append(item)
            keys.append(None)
    raise ValueError("the document ends inside a value")


def _skip(events: Iterator[tuple[str, Any]], depth: int, reason: str) -> TooBig:
    """Read past the rest of a record ``depth`` levels deep without building it."""
    for event, _value in events:
        if event in _OPENS:
            depth += 1
        elif event in _CLOSES:
            depth -= 1
            if depth == 0:
                return TooBig(reason)
    raise ValueError("the document ends inside a value")


__all__ = [
    "MAX_DEPTH",
    "MAX_DIGITS",
    "MAX_VALUES",
    "NumberTooLong",
    "TooBig",
    "array_items",
    "one_value",
]
