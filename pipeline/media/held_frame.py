"""A last frame shown longer than one frame step: the frames the ffmpeg process misses.

A camera or muxer may hold a clip's last frame: every frame lasts one step (40 ms at
25 fps) but the last one lasts until the track ends, later (the last sample's
duration, or the edit list's end). ffprobe then reports an average rate a little
under the nominal one: 109 frames over 4.43 s is 24.6 fps where the stream's rate is 25.
The presentation timeline shows that last frame until 4.43 s, so resampled at 25 fps it
gives ``round(4.43 × 25) = 111`` frames, the last three alike; PyAV's FFmpeg 8 ends
its ``fps`` filter there when the held packet is the last frame shown. The ffmpeg 5.1
process ended it one step after the last frame (109) on such clips with B-frames: its
mov demuxer gives the last packet of the edit-listed track one step's duration, not
the track's remainder (measured; the same clip without B-frames gives 111 on both).

:func:`with_held_frames` makes the process's decode end where the track does: when
the banner's duration leaves room for more frames than were decoded, ffprobe says
where the first video stream ends (exactly, in its own time base), and the last
frame is repeated up to the count the ``fps`` filter gives for that end, as the
filter itself would repeat it.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from dataclasses import replace
from fractions import Fraction
from pathlib import Path
from typing import Any

import numpy as np

from pipeline.errors import ClipError
from pipeline.media.decode import DecodedClip
from pipeline.media.ffmpeg_args import ffmpeg_url, input_guard
from pipeline.media.process import run
from pipeline.media.timeouts import PROBE_TIMEOUT_S

#: Half a step of the banner's duration (printed to 10 ms, rounded).
_BANNER_ROUNDING_S = 0.005


def may_hold(decoded: DecodedClip, fps: float, max_seconds: float) -> bool:
    """Whether ``decoded`` (a clean, complete process decode) may lack held frames.

    The banner's duration is the container's, the longest stream's: when it gives
    no more frames than were decoded, the video cannot end later, and no probe runs.
    """
    report = decoded.report
    if decoded.returncode or decoded.error_lines or decoded.stopped or not report.complete:
        return False
    seconds = min(report.duration_s + _BANNER_ROUNDING_S, max_seconds)
    return frames_until(Fraction(seconds), fps) > decoded.num_frames


def frames_until(end_s: Fraction, fps: float) -> int:
    """Frames the ``fps`` filter gives for a video ending at ``end_s`` on the timeline:
    its end in output ticks, rounded half up (``eof_action=round``)."""
    return math.floor(end_s * Fraction(fps) + Fraction(1, 2))


def video_end_s(path: Path, timeout_s: float = PROBE_TIMEOUT_S) -> Fraction | None:
    """Where the first video stream ends on the decode's timeline (the container's
    start is 0), exactly; None when ffprobe does not say (no duration in ticks)."""
    args = [
        "ffprobe", "-v", "error", "-of", "json", "-select_streams", "v:0",
        "-show_entries", "stream=start_pts,duration_ts,time_base:format=start_time",
        *input_guard(path), ffmpeg_url(path),
    ]  # fmt: skip
    try:
        data = json.loads(run(args, timeout_s, ffmpeg_url(path)).decode("utf-8", "replace"))
        return _end_s(data)
    except (ClipError, ValueError, TypeError, ZeroDivisionError):
        return None  # nothing more is known: the decode stays as it came


def _end_s(data: dict[str, Any]) -> Fraction | None:
    streams = data.get("streams") or []
    if not streams:
        return None
    stream, container_start = streams[0], data.get("format", {}).get("start_time")
    start, ticks = stream.get("start_pts"), stream.get("duration_ts")
    if not isinstance(start, int) or not isinstance(ticks, int) or ticks <= 0:
        return None
    if container_start is None:  # ffprobe leaves out what it does not know
        return None
    return (start + ticks) * Fraction(stream["time_base"]) - Fraction(str(container_start))


def with_held_frames(
    decoded: DecodedClip,
    end_s: Fraction,
    fps: float,
    max_seconds: float,
    on_frame: Callable[[int, np.ndarray], None] | None = None,
) -> DecodedClip:
    """``decoded`` with its last frame repeated up to the frames a video ending at
    ``end_s`` gives at ``fps`` (none past ``max_seconds``: the cut decides there).
    ``on_frame`` sees each new one; kept frames ``(T, H, W, 3)`` become ``(T', H, W, 3)``."""
    count, last = decoded.num_frames, decoded.last_frame
    if end_s >= max_seconds or count == 0 or last is None:
        return decoded
    missing = frames_until(end_s, fps) - count
    if missing <= 0:
        return decoded
    if on_frame is not None:
        for t in range(count, count + missing):
            on_frame(t, last)
    frames = decoded.frames
    if len(frames) == count:  # kept: the array grows too
        frames = np.concatenate([frames, np.repeat(last[None], missing, axis=0)])
    return replace(decoded, frames=frames, frame_count=count + missing)
