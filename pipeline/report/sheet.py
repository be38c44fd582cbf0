"""The contact sheet: one row of face crops per clip, grouped by category, labelled.

Layout, in pixels (all constants of this module)::

    width  = LABEL_W + columns * (TILE + GAP) + GAP
    height = TITLE_H + groups * GROUP_H + rows * (TILE + GAP) + GAP

``columns`` is ``FRAMES`` (evenly spaced face crops), plus one when any clip shown has a
stored mouth stream (its middle mouth crop); ``groups`` is the number of categories shown
and ``rows`` the number of clips shown. Each row's label holds the clip id, its face
detection rate, frame count, its landmark measures where the manifest has them and
its flags (``low_face_rate``, ``cut``, ``shot_cuts``), flags in red.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, ImageDraw, ImageFont

import schemas
from pipeline.report import save_png
from pipeline.report.clips import face_rate, flags, frame_indices, measures, stream
from schemas.picture_text import ELLIPSIS, plain

FRAMES = 10
TILE = 64
GAP = 2
LABEL_W = 240
TITLE_H = 28
GROUP_H = 22

BACKGROUND = (250, 250, 250)
INK = (20, 20, 20)
FLAG_INK = (200, 30, 30)
GROUP_BAND = (225, 232, 240)
CATEGORY_TEXT = {
    "RARV": "real audio, real video",
    "FARV": "fake audio, real video",
    "RAFV": "real audio, fake video",
    "FAFV": "fake audio, fake video",
}


def sheet_size(rows: int, groups: int, with_mouth: bool) -> tuple[int, int]:
    """``(width, height)`` in pixels of a sheet of ``rows`` clips in ``groups`` categories."""
    columns = FRAMES + int(with_mouth)
    return (
        LABEL_W + columns * (TILE + GAP) + GAP,
        TITLE_H + groups * GROUP_H + rows * (TILE + GAP) + GAP,
    )


def write_sheet(
    store: Path,
    groups: dict[str, list[dict[str, Any]]],
    out: Path,
    *,
    title: str,
    totals: dict[str, int] | None = None,
) -> tuple[int, int]:
    """Draw the clips of ``groups`` (category -> manifest rows, in display order) into ``out``.

    ``totals`` (category -> ok clips in the store) lets each category band say how many
    of its clips are shown. Returns the PNG's ``(width, height)``.
    """
    mouths = {
        row["clip_id"]: _middle_mouth(store, row["clip_id"])
        for members in groups.values()
        for row in members
    }
    with_mouth = any(m is not None for m in mouths.values())
    shown = sum(len(m) for m in groups.values())
    size = sheet_size(shown, len(groups), with_mouth)
    image = Image.new("RGB", size, BACKGROUND)
    draw = ImageDraw.Draw(image)
    draw.text((GAP + 4, 6), _fit(draw, title, size[0] - 8, _font(14)), fill=INK, font=_font(14))
    y = TITLE_H
    for category, members in groups.items():
        draw.rectangle((0, y, size[0], y + GROUP_H - 2), fill=GROUP_BAND)
        total = (totals or {}).get(category, len(members))
        band = (
            f"{category}  {CATEGORY_TEXT.get(category, '')}  ({len(members)} of {total} ok clips)"
        )
        draw.text(
            (GAP + 4, y + 4), _fit(draw, band, size[0] - 8, _font(12)), fill=INK, font=_font(12)
        )
        y += GROUP_H
        for row in members:
            _draw_row(store, image, draw, row, mouths[row["clip_id"]], y)
            y += TILE + GAP
    save_png(image, out)
    return size


def _draw_row(
    store: Path,
    image: Image.Image,
    draw: ImageDraw.ImageDraw,
    row: dict[str, Any],
    mouth: np.ndarray | None,
    y: int,
) -> None:
    """One clip: its label on the left, ``FRAMES`` face crops and the mouth crop after."""
    video, _ = schemas.open_clip(store, row["clip_id"])
    x = LABEL_W + GAP
    for index in frame_indices(video.shape[0], FRAMES):
        image.paste(_tile(np.asarray(video[index])), (x, y + GAP))
        x += TILE + GAP
    if mouth is not None:
        image.paste(_tile(mouth), (x, y + GAP))
    font = _font(11)
    width = LABEL_W - 10
    rate = face_rate(row)
    facts = f"face {rate:.2f}  T {row['num_frames']}  {row.get('method') or ''}"
    marks = [(text, FLAG_INK) for text in _wrap(flags(row), 2)]  # what is wrong, in red
    numbers = [(text, INK) for text in _wrap(measures(row), 3)]  # numbers, in plain ink
    # Four lines in all: the flags keep their place, the numbers fill what is left.
    lines = [(row["clip_id"], INK), (facts, INK), *numbers[: max(0, 2 - len(marks))], *marks]
    for k, (text, colour) in enumerate(lines[:4]):
        draw.text((6, y + 4 + 14 * k), _fit(draw, text, width, font), fill=colour, font=font)


def _middle_mouth(store: Path, clip_id: str) -> np.ndarray | None:
    """The mouth crop ``(96, 96)`` uint8 of the clip's middle frame, or None if not stored."""
    mouth = stream(store, clip_id, "mouth")
    if mouth is None or mouth.shape[0] == 0:
        return None
    return np.asarray(mouth[mouth.shape[0] // 2])


def _tile(crop: np.ndarray) -> Image.Image:
    """A ``(H, W, 3)`` or ``(H, W)`` uint8 crop resized to ``TILE`` x ``TILE``."""
    picture = Image.fromarray(np.ascontiguousarray(crop))
    return picture.convert("RGB").resize((TILE, TILE), Image.Resampling.BILINEAR)


def _wrap(items: list[str], per_line: int) -> list[str]:
    return ["  ".join(items[i : i + per_line]) for i in range(0, len(items), per_line)]


def _fit(draw: ImageDraw.ImageDraw, text: str, width: int, font: Any) -> str:
    """``text`` as one line cut (with an ellipsis) to ``width`` pixels.

    :func:`plain` first bounds the length whatever the store holds (a 120,000-character
    method cell), then a binary search over the prefix length measures a few prefixes.
    """
    text = plain(text)
    if draw.textlength(text, font=font) <= width:
        return text
    fits, too_long = 0, len(text)  # the longest prefix that fits with the ellipsis lies between
    while too_long - fits > 1:
        middle = (fits + too_long) // 2
        if draw.textlength(text[:middle] + ELLIPSIS, font=font) <= width:
            fits = middle
        else:
            too_long = middle
    return text[:fits] + ELLIPSIS


@lru_cache(maxsize=8)
def _font(size: int) -> Any:
    return ImageFont.load_default(size=size)
