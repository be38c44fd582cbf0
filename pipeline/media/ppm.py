"""Reading a stream of PPM images (ffmpeg's ``-c:v ppm -f image2pipe``) frame by frame.

PPM makes the video stream self-describing (``P6\\nW H\\n255\\n`` before each frame's
RGB bytes), so the frame size need not be known before decoding; the header costs
15 bytes of a 150 KB frame.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import IO

import numpy as np

from pipeline.errors import ClipError


@dataclass
class PpmFrames:
    """What :func:`read_ppm_frames` read."""

    frames: np.ndarray  # (T, H, W, 3) uint8 when kept, else (0, H, W, 3)
    count: int  # T: the frames read
    stopped: str  # why reading stopped early ('' when it did not)
    last: np.ndarray | None  # (H, W, 3): the last frame read (None: none)


def read_ppm_frames(
    stream: IO[bytes],
    max_frames: int,
    on_frame: Callable[[int, np.ndarray], None] | None,
    keep: bool = True,
) -> PpmFrames:
    """Read up to ``max_frames`` PPM frames, each into its own ``(H, W, 3)`` array.

    ``on_frame(t, frame)`` sees each frame as it lands; with ``keep`` the frames are
    also gathered into one ``(T, H, W, 3)`` array, else nothing outlives what
    ``on_frame`` keeps, so memory does not follow the clip's length. A frame of
    another size than the first stops the read (``'frame size changed'``).
    """
    first = _read_ppm_header(stream)
    if first is None:
        return PpmFrames(np.empty((0, 0, 0, 3), np.uint8), 0, "", None)
    width, height, header = first
    frame_bytes = width * height * 3
    kept: list[np.ndarray] = []
    count, stopped, last = 0, "", None
    while True:
        frame = np.empty((height, width, 3), np.uint8)
        if not _read_exact(stream, frame.reshape(-1), frame_bytes):
            break  # a partial last frame is dropped
        if on_frame is not None:
            on_frame(count, frame)
        if keep:
            kept.append(frame)
        count, last = count + 1, frame
        if count == max_frames:
            break
        tag = stream.read(len(header))
        if len(tag) < len(header):
            break
        if tag != header:
            stopped = "frame size changed"
            break
    frames = np.stack(kept) if kept else np.empty((0, height, width, 3), np.uint8)
    return PpmFrames(frames, count, stopped, last)


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
