"""Validate and normalise fake segments read from a dataset's metadata.

Every adapter hands its raw ``[[start, end], ...]`` lists (seconds of the source
clip) to :func:`read_segments`, so that all datasets obey the same rules:

- not a list of ``[start, end]`` number pairs, more than :data:`MAX_SEGMENTS` of
  them, a negative start, a non-finite number (``1e400``, an integer beyond a float),
  or ``end <= start``: :class:`BadSegments` (the adapter refuses the row);
- unsorted or overlapping (or touching) segments: sorted and merged into disjoint
  ones, reported as a repair;
- a segment ending after the clip's ``duration`` (where the record gives one):
  cut at the duration, reported as a repair; one starting at or after the
  duration: :class:`BadSegments`.
"""

from __future__ import annotations

import math
from typing import Any

from pipeline.datasets.source import Segments
from schemas.cli_errors import UserError

#: Segments one list may hold: a clip's labels are a few spans, and every one is kept
#: in the manifest row that each later read pays for.
MAX_SEGMENTS = 1_000


class BadSegments(UserError):
    """A segment list that cannot be taken: the row holding it is refused."""


def read_segments(
    value: Any, field: str, duration: float | None = None
) -> tuple[Segments, list[str]]:
    """``(segments, repairs)`` of the raw list ``value`` of the metadata field ``field``.

    ``segments`` is sorted and disjoint with ``0 <= start < end`` (``end <= duration``
    when a duration is given); ``repairs`` says, one phrase each, what was changed.
    Raises :class:`BadSegments` naming ``field`` when the list cannot be taken.
    """
    pairs = [_pair(item, field) for item in _as_list(value, field)]
    repairs: list[str] = []
    if duration is not None:
        pairs = _clip_to_duration(pairs, field, duration, repairs)
    merged = _sorted_disjoint(pairs)
    if merged != pairs:
        repairs.append(f"{field} unsorted or overlapping; sorted and merged into {len(merged)}")
    return tuple(merged), repairs


def _as_list(value: Any, field: str) -> list[Any]:
    if not isinstance(value, list | tuple):
        raise BadSegments(f"{field} is not a list of [start, end] pairs ({_brief(value)})")
    if len(value) > MAX_SEGMENTS:
        raise BadSegments(
            f"{field} holds {len(value):,} segments, over the limit of {MAX_SEGMENTS:,}"
        )
    return list(value)


def _pair(item: Any, field: str) -> tuple[float, float]:
    """One ``[start, end]`` as floats; the checks that no repair can fix."""
    if not isinstance(item, list | tuple) or len(item) != 2:
        raise BadSegments(f"{field} holds {_brief(item)}, not a [start, end] pair")
    start, end = (_number(x, field) for x in item)
    if start < 0:
        raise BadSegments(f"{field} segment [{start:g}, {end:g}] starts before 0")
    if end <= start:
        raise BadSegments(f"{field} segment [{start:g}, {end:g}] does not end after it starts")
    return start, end


def _number(value: Any, field: str) -> float:
    # bool is an int in Python, but true/false in a segment is a broken record.
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise BadSegments(f"{field} holds {_brief(value)}, not a number")
    try:
        number = float(value)
    except OverflowError:  # an integer beyond a float (a 400-digit one)
        number = math.inf
    if not math.isfinite(number):
        raise BadSegments(f"{field} holds {_brief(value)}, not a finite number")
    return number


def _clip_to_duration(
    pairs: list[tuple[float, float]], field: str, duration: float, repairs: list[str]
) -> list[tuple[float, float]]:
    clipped = []
    for start, end in pairs:
        if start >= duration:
            raise BadSegments(
                f"{field} segment [{start:g}, {end:g}] starts at or after the clip's end "
                f"({duration:g} s)"
            )
        if end > duration:
            repairs.append(
                f"{field} segment [{start:g}, {end:g}] cut at the duration {duration:g} s"
            )
            end = duration
        clipped.append((start, end))
    return clipped


def _sorted_disjoint(pairs: list[tuple[float, float]]) -> list[tuple[float, float]]:
    """Sorted, with overlapping or touching segments joined (frame labels cannot tell them apart)."""
    merged: list[tuple[float, float]] = []
    for start, end in sorted(pairs):
        if merged and start <= merged[-1][1]:
            merged[-1] = (merged[-1][0], max(merged[-1][1], end))
        else:
            merged.append((start, end))
    return merged


def _brief(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 40 else text[:40] + "..."


__all__ = ["MAX_SEGMENTS", "BadSegments", "read_segments"]
