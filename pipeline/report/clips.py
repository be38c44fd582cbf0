"""The store as the pictures see it: manifest rows, flags, per-clip arrays, which clips to show.

Reads the store only through ``schemas``. Arrays other than ``video`` and ``audio``
(``face_boxes`` ``(T, 4)``, ``landmarks`` ``(T, 68, 2)``, ``mouth`` ``(T, 96, 96)``) and the
landmark columns of the manifest (``landmark_rate``, ``landmark_jitter``, ``shot_cuts``)
are optional: stores made without landmarks have none of them, and every picture says so
instead of failing.
"""

from __future__ import annotations

import math
import random
from typing import Any

import numpy as np

import schemas
from schemas.picture_text import plain

SORTS = ("random", "worst", "id")
OPTIONAL_STREAMS = ("face_boxes", "landmarks", "mouth")


def stream(store: Any, clip_id: str, name: str) -> np.ndarray | None:
    """One optional per-clip array of the store, or None where it is not stored.

    ``schemas.open_stream`` is the store's reader of optional arrays; a store (or a
    version of ``schemas``) without it simply has none.
    """
    opener = getattr(schemas, "open_stream", None)
    if opener is None:
        return None
    array = opener(store, clip_id, name)
    return None if array is None else np.asarray(array)


def manifest_rows(store: Any) -> list[dict[str, Any]]:
    """Every manifest row (ok and failed) as a dict, optional columns included where present."""
    return schemas.read_manifest(store).to_pylist()


def ok_rows(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [r for r in rows if r["status"] == schemas.STATUS_OK]


#: The manifest's boolean columns that say a clip may be unfit: the only ones drawn as
#: flags. A new quality column joins this tuple; a boolean column that describes a clip
#: without faulting it (``labelled``) joins :data:`NOT_FLAGS` (a test checks that every
#: boolean column of the manifest is in one of the two).
QUALITY_FLAGS = (
    "low_face_rate",
    "cut",
    "little_speech",
    "no_speaker",
    "low_landmark_rate",
    "low_frontal_rate",
)
NOT_FLAGS = ("labelled",)
#: Below this share of confident landmark fits a clip is flagged ``low_landmark_rate``
#: in the pictures. The recipe has no landmark threshold (``split`` does not act on it):
#: the pictures use the same half as the recipe's default ``min_face_rate``.
LOW_LANDMARK_RATE = 0.5


def flags(row: dict[str, Any]) -> list[str]:
    """The quality flags a row raises, in :data:`QUALITY_FLAGS` order: its true quality
    columns (``little_speech``: ``speech_fraction`` under
    ``pipeline.clip.speech.MIN_SPEECH_FRACTION``),
    ``low_landmark_rate`` when its landmark rate is under :data:`LOW_LANDMARK_RATE`,
    ``shot_cuts N`` when there are any, and ``faceless_frames N`` when any stored frame
    has no face (its crop shows none: the trainer masks it)."""
    names = [name for name in QUALITY_FLAGS if row.get(name) is True]
    rate = _number(row.get("landmark_rate"))
    if rate is not None and rate < LOW_LANDMARK_RATE and "low_landmark_rate" not in names:
        names.append("low_landmark_rate")
    for count in ("shot_cuts", "faceless_frames"):
        if row.get(count):
            names.append(f"{count} {row[count]}")
    return names


def measures(row: dict[str, Any]) -> list[str]:
    """The row's speech, head pose, speaker and landmark measures where the store has
    them (numbers, not flags; ``faceless_frames`` is drawn among the flags where not 0).

    At most five short items (about 70 characters together), so that a picture's
    measures line stays within :data:`schemas.picture_text.MAX_CHARS`."""
    names = []
    speech = _number(row.get("speech_fraction"))
    if speech is not None:
        names.append(f"speech {speech:.2f}")
    frontal = _number(row.get("frontal_rate"))
    if frontal is not None:
        names.append(f"frontal {frontal:.2f}")
    speaker = _number(row.get("speaker_correlation"))
    if speaker is not None:
        names.append(f"speaker r {speaker:.2f}")
    rate = _number(row.get("landmark_rate"))
    if rate is not None:
        names.append(f"landmarks {rate:.2f}")
    jitter = _number(row.get("landmark_jitter"))
    if jitter is not None:
        names.append(f"jitter {jitter:.2f}px")
    return names


def face_rate(row: dict[str, Any]) -> float:
    """The row's face detection rate; nan where it has none (a failed clip)."""
    value = _number(row.get("face_detection_rate"))
    return float("nan") if value is None else value


def _number(value: Any) -> float | None:
    if value is None:
        return None
    value = float(value)
    return None if math.isnan(value) else value


def badness(row: dict[str, Any]) -> tuple[float, float, str]:
    """Sort key of ``--sort worst``: lowest face detection rate first, then most landmark
    jitter (where stored), then clip id (so equal clips keep a stable order)."""
    rate = face_rate(row)
    jitter = _number(row.get("landmark_jitter")) or 0.0
    return (-1.0 if math.isnan(rate) else rate, -jitter, row["clip_id"])


def choose(
    rows: list[dict[str, Any]], per_category: int | None, sort: str, seed: int = 0
) -> dict[str, list[dict[str, Any]]]:
    """The ok clips to show, grouped by category in ``schemas.CATEGORIES`` order.

    ``sort``: ``worst`` (:func:`badness`), ``random`` (a seeded shuffle: the same seed
    shows the same clips) or ``id``; then the first ``per_category`` of each category
    (all when None). Categories without ok clips are left out.
    """
    if sort not in SORTS:
        raise schemas.UserError(f"--sort must be one of {', '.join(SORTS)}, not {sort!r}")
    if per_category is not None and per_category < 1:
        raise schemas.UserError(f"--per-category must be at least 1, not {per_category}")
    groups: dict[str, list[dict[str, Any]]] = {}
    for category in schemas.CATEGORIES:
        members = sorted(
            (r for r in ok_rows(rows) if r["category"] == category), key=lambda r: r["clip_id"]
        )
        if sort == "worst":
            members.sort(key=badness)
        elif sort == "random":
            # One generator per category: adding clips to one category leaves the others' pick.
            random.Random(f"{seed}:{category}").shuffle(members)
        if members:
            groups[category] = members[:per_category] if per_category else members
    return groups


def frame_indices(num_frames: int, count: int) -> np.ndarray:
    """``count`` frame indices ``(count,)`` at the centres of ``count`` equal spans of the clip.

    Centres rather than ends, so that picture ``k`` stands for frames ``[k T/n, (k+1) T/n)``
    and pictures line up with a time axis of ``T`` frames.
    """
    centres = (np.arange(count) + 0.5) * num_frames / count
    return np.clip(np.floor(centres), 0, max(num_frames - 1, 0)).astype(np.int64)


def row_of(rows: list[dict[str, Any]], clip_id: str) -> dict[str, Any]:
    """The ok manifest row of ``clip_id``; a one-line error when it is absent or failed."""
    for row in rows:
        if row["clip_id"] == clip_id:
            if row["status"] != schemas.STATUS_OK:
                reason = plain(" ".join((row["error"] or "").split()), 500)  # on one line
                raise schemas.UserError(f"clip {clip_id!r} failed at ingest: {reason}")
            return row
    raise schemas.UserError(f"clip {clip_id!r} is not in the manifest")
