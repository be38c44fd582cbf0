"""How long one ffprobe or ffmpeg run may take before it is killed.

The bounds only exist to stop a worker from hanging on a file that makes ffmpeg
spin: decoding a few seconds of 224² H.264 takes well under a second.
"""

from __future__ import annotations

import math

PROBE_TIMEOUT_S = 30.0
DECODE_TIMEOUT_BASE_S = 30.0
DECODE_TIMEOUT_PER_MEDIA_S = 5.0
DECODE_TIMEOUT_CAP_S = 600.0


def decode_timeout_s(duration_s: float) -> float:
    """Timeout for one decode of a clip lasting ``duration_s`` seconds (nan: unknown)."""
    if not math.isfinite(duration_s) or duration_s <= 0:
        return DECODE_TIMEOUT_CAP_S
    return min(
        DECODE_TIMEOUT_CAP_S, DECODE_TIMEOUT_BASE_S + DECODE_TIMEOUT_PER_MEDIA_S * duration_s
    )
