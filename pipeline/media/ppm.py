"""Reading a stream of PPM images (ffmpeg's ``-c:v ppm -f image2pipe``) into one frame array.

PPM makes the video stream self-describing (``P6\\nW H\\n255\\n`` before each frame's
RGB bytes), so the frame size need not be known before decoding; the header costs
15 bytes of a 150 KB frame.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import IO

import numpy as np

from pipeline.errors import ClipError


def read_ppm_frames(
    stream: IO[bytes],
    max_frames: int,
    budget_bytes: int | None,
    on_frame: Callable[[int, np.ndarray], None] | None,
) -> tuple[np.ndarray, int, str]:
    """Read PPM frames into one ``(capacity, H, W, 3)`` array: (array, frames read, stopped).

    The array is allocated once at its largest size: ``np.empty`` only reserves address
    space, and pages are committed as frames land, so memory follows the frames read
    and no frame is ever copied to grow it.
    """
    first = _read_ppm_header(stream)
    if first is None:
        return np.empty((0, 0, 0, 3), np.uint8), 0, ""
    width, height, header = first
    frame_bytes = width * height * 3
    capacity = max_frames
    if budget_bytes is not None:
        capacity = min(capacity, budget_bytes // frame_bytes)
        if capacity < 1:
            return np.empty((0, height, width, 3), np.uint8), 0, "frame budget"
    frames = np.empty((capacity, height, width, 3), np.uint8)
    count = 0
    while True:
        if not _read_exact(stream, frames[count].reshape(-1), frame_bytes):
            break  # a partial last frame is dropped
        if on_frame is not None:
            on_frame(count, frames[count])
        count += 1
        if count == max_frames:
            break
        tag = stream.read(len(header))
        if len(tag) < len(header):
            break
        if tag != header:
            return frames, count, "frame size changed"
        if count == capacity:
            return frames, count, "frame budget"
    return frames, count, ""


def _read_ppm_header(stream: IO[bytes]) -> tuple[int, int, bytes] | None:
    """``(width, height, header bytes)`` of the first PPM image; None at end of stream.

    ffmpeg's encoder writes ``P6\\n<W> <H>\\n255\\n`` with no comments: four tokens.
    """
    header = bytearray()
    tokens = 0
    while tokens < 4 and len(header) < 64:
        byte = stream.read(1)
        if not byte:
            return None
        if byte in b" \t\r\n" and header and header[-1:] not in (b" ", b"\t", b"\r", b"\n"):
            tokens += 1
        header += byte
    fields = header.split()
    if len(fields) != 4 or fields[0] != b"P6" or fields[3] != b"255":
        raise ClipError(f"cannot decode: unexpected frame header {bytes(header[:32])!r}")
    return int(fields[1]), int(fields[2]), bytes(header)


def _read_exact(stream: IO[bytes], out: np.ndarray, nbytes: int) -> bool:
    """Fill ``out`` (a flat uint8 view) from ``stream``; False at end of stream."""
    view = memoryview(out)  # type: ignore[arg-type]  # numpy's stubs omit the buffer protocol
    got = 0
    while got < nbytes:
        n = stream.readinto(view[got:])  # type: ignore[attr-defined]
        if not n:
            return False  # end of stream; a partial last frame is dropped
        got += n
    return True
