"""What ffprobe says about a file: its streams, displayed size, rate, duration, rotation.

The pipeline runs ffprobe only to diagnose a decode that went wrong or to pin the
frame size of a second decode; the happy path learns what it needs from ffmpeg's
own input banner (:class:`pipeline.media.ffmpeg_log.InputReport`).
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pipeline.errors import ClipError
from pipeline.media.ffmpeg_args import ffmpeg_url, input_guard
from pipeline.media.ffmpeg_log import to_float
from pipeline.media.process import run
from pipeline.media.timeouts import PROBE_TIMEOUT_S


@dataclass(frozen=True)
class MediaInfo:
    """What ffprobe says about a file; sizes are as displayed (rotation and SAR applied)."""

    has_video: bool
    has_audio: bool
    width: int
    height: int
    fps: float
    duration_s: float  # nan when the container does not say
    rotation: int  # 0, 90, 180 or 270 degrees, applied by ffmpeg's autorotate on decode
    audio_sample_rate: int
    audio_channels: int


def probe(path: Path, timeout_s: float = PROBE_TIMEOUT_S) -> MediaInfo:
    """Run ffprobe on ``path``; raises :class:`ClipError` when it is not a readable media file."""
    args = [
        "ffprobe", "-v", "error", "-of", "json", "-show_format", "-show_streams",
        *input_guard(path), ffmpeg_url(path),
    ]  # fmt: skip
    stdout = run(args, timeout_s, ffmpeg_url(path))
    try:
        data = json.loads(stdout.decode("utf-8", "replace"))
    except ValueError as exc:
        raise ClipError("cannot decode: ffprobe gave unreadable output") from exc
    return parse_probe(data)


def parse_probe(data: dict[str, Any]) -> MediaInfo:
    """Turn ffprobe's JSON (``-show_format -show_streams``) into :class:`MediaInfo`."""
    streams = data.get("streams") or []
    # Cover art in an mp4 is a one-picture "video" stream; it is not the video.
    video = next(
        (
            s
            for s in streams
            if s.get("codec_type") == "video"
            and not (s.get("disposition") or {}).get("attached_pic")
        ),
        None,
    )
    audio = next((s for s in streams if s.get("codec_type") == "audio"), None)
    fmt = data.get("format") or {}
    duration = to_float((video or {}).get("duration"))
    if not math.isfinite(duration):
        duration = to_float(fmt.get("duration"))
    width = height = rotation = 0
    fps = math.nan
    if video is not None:
        width, height = int(video.get("width") or 0), int(video.get("height") or 0)
        sar = _ratio(video.get("sample_aspect_ratio"))
        if math.isfinite(sar) and sar > 0 and abs(sar - 1.0) > 1e-3:
            width = max(1, round(width * sar))  # anamorphic: ffmpeg scales to square pixels
        rotation = _rotation(video)
        if rotation in (90, 270):
            width, height = height, width
        fps = _ratio(video.get("avg_frame_rate"))
        if not (math.isfinite(fps) and fps > 0):
            fps = _ratio(video.get("r_frame_rate"))
    return MediaInfo(
        has_video=video is not None,
        has_audio=audio is not None,
        width=width,
        height=height,
        fps=fps,
        duration_s=duration,
        rotation=rotation,
        audio_sample_rate=int((audio or {}).get("sample_rate") or 0),
        audio_channels=int((audio or {}).get("channels") or 0),
    )


def _ratio(value: Any) -> float:
    if not isinstance(value, str):
        return math.nan
    num, _, den = value.replace(":", "/").partition("/")
    try:
        return float(num) / float(den) if den else float(num)
    except (ValueError, ZeroDivisionError):
        return math.nan


def _rotation(stream: dict[str, Any]) -> int:
    """Clockwise display rotation in degrees, from the display matrix or the old ``rotate`` tag."""
    angle = math.nan
    for side in stream.get("side_data_list") or []:
        if "rotation" in side:
            # The display matrix angle is counter-clockwise; the tag is clockwise.
            angle = -to_float(side["rotation"])
    if not math.isfinite(angle):
        angle = to_float((stream.get("tags") or {}).get("rotate"))
    if not math.isfinite(angle):
        return 0
    return round(angle / 90.0) % 4 * 90
