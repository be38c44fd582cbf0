"""The one exception type that per-clip processing raises for bad inputs."""

from __future__ import annotations


class ClipError(Exception):
    """A clip that cannot be processed.

    ``str(exc)`` is the one-line reason recorded in the manifest, e.g.
    ``'no video stream'``, ``'no audio stream'``, ``'no face detected in any frame'``,
    ``'cannot decode: <ffmpeg's last stderr line>'``, ``'empty file (0 bytes)'``,
    ``'too short: 1 frame'``. Reasons never span lines, so a manifest stays one row per clip.
    """

    def __init__(self, reason: str) -> None:
        super().__init__(" ".join(reason.split()) or "unknown error")
