"""Reading ffmpeg's stderr: why an input would not open, its last error, its input banner.

Decodes run ffmpeg with ``-v level+info``, which tags every line with its level, so
that :class:`StderrLog` can tell error lines from the input banner while stderr is
drained; the banner gives the source's duration and rate (:class:`InputReport`) for
free, and the ``showinfo`` lines give each stream's first-frame time.
"""

from __future__ import annotations

import collections
import math
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import IO, Any

from pipeline.media.timeouts import decode_timeout_s
from schemas.containers import DEMUXERS, MP4, container_of

# "[mov,mp4,m4a,3gp,3g2,mj2 @ 0x55ea6f07c980] ": which ffmpeg component spoke, not why.
_CONTEXT_PREFIX = re.compile(r"^\[[^\]]* @ 0x[0-9a-f]+\]\s*")
# "[hls @ 0x55...] Format not on whitelist 'mov,...'": ffmpeg names what it found.
_NOT_WHITELISTED = re.compile(r"^\[([^\]@]*?) @ 0x[0-9a-f]+\]\s*Format not on whitelist")
# "  Duration: 00:00:02.56, start: 0.000000, bitrate: 234 kb/s" (or "Duration: N/A, ...")
_DURATION = re.compile(r"^\s*Duration: (\d+):(\d\d):(\d\d(?:\.\d+)?)")
# "  Stream #0:0[0x1](und): Video: h264 (High) ..., 224x224, ..., 25 fps, 25 tbr, 12800 tbn"
_VIDEO_STREAM = re.compile(r"^\s*Stream #0:\d+\S*: Video: ")
_RATE = {unit: re.compile(rf", (\d+(?:\.\d+)?) {unit}\b") for unit in ("fps", "tbr")}
# "[h264 @ 0x55...] [error] msg" / "[error] msg": ffmpeg's "-v level+..." tags each line.
_LEVEL = re.compile(r"^((?:\[[^\]]* @ 0x[0-9a-f]+\]\s*)?)\[(\w+)\] ?")
_ERROR_LEVELS = frozenset({"error", "fatal", "panic"})
# The demuxers' own log lines: "[mov,mp4,m4a,3gp,3g2,mj2 @ 0x55...] ...", "[avi @ ...".
_DEMUXER_CONTEXTS = tuple(f"[{demuxers} @ " for demuxers in DEMUXERS)
# "[Parsed_showinfo_2 @ 0x55...] n:   0 pts:   2560 pts_time:0.2     pos: ..."
_FIRST_FRAME = re.compile(r"^\[Parsed_(a?)showinfo_\d+ @ 0x[0-9a-f]+\]\s*n:\s*0 .*pts_time:(\S+)")
# "... fmt:yuv420p sar:4/3 s:320x240 i:P ..." (the video line: the frame before any scale)
_FRAME_SIZE = re.compile(r" sar:(\d+)/(\d+) s:(\d+)x(\d+) ")


def open_failure(stderr: bytes | str, url: str) -> str | None:
    """Why ffmpeg could not open ``url`` as the container its suffix promises, or None
    when it opened it.

    ffmpeg reports a failed open with one line that starts with the input's URL
    (``file:/x.mp4: Invalid argument``). The reason returned says which container
    was found when the whitelist refused it (``'the container is not an mp4 (hls)'``,
    ``'... not a Matroska/WebM file (mov,mp4,...)'`` for a ``.mkv``), else what the
    demuxer said (``'... (moov atom not found)'``).
    """
    text = stderr.decode("utf-8", "replace") if isinstance(stderr, bytes) else stderr
    lines = [_strip_level(line.strip()) for line in text.splitlines() if line.strip()]
    if not any(line.startswith(url + ": ") for line in lines):
        return None
    expected = (container_of(url) or MP4).name
    for line in lines:
        if (found := _NOT_WHITELISTED.match(line)) is not None:
            return f"the container is not {expected} ({found.group(1).strip()})"
    before = [line for line in lines if not line.startswith(url + ": ")]
    detail = last_stderr_line("\n".join(before[-1:])) if before else ""
    if not detail or detail == "no error message":
        detail = last_stderr_line(lines[-1])
    return f"the container is not {expected} ({detail})"


def _strip_level(line: str) -> str:
    """``'[mov @ 0x1] [error] x'`` -> ``'[mov @ 0x1] x'``: the ``level+`` tag removed."""
    match = _LEVEL.match(line)
    return match.group(1) + line[match.end() :] if match else line


def last_stderr_line(stderr: bytes | str) -> str:
    """The last non-empty line of ffmpeg's stderr, without the file name it often repeats."""
    text = stderr.decode("utf-8", "replace") if isinstance(stderr, bytes) else stderr
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    if not lines:
        return "no error message"
    line = _CONTEXT_PREFIX.sub("", lines[-1])
    # "file:/abs/path.mp4: Invalid data found" -> "Invalid data found": the path is in the row.
    if line.startswith("file:") and ": " in line:
        line = line.rsplit(": ", 1)[1]
    return line[:300]


@dataclass(frozen=True)
class InputReport:
    """What ffmpeg's own input banner (``-v info``) says about the source.

    The banner is printed once the container is opened, before any frame is decoded,
    so a decode learns these facts for free instead of from a separate ffprobe run
    (a whole extra process start-up). ``duration_s`` is the container's duration,
    i.e. of its longest stream, to 10 ms; ``fps`` is the first video stream's average
    rate (ffprobe's ``avg_frame_rate``, to 0.01), else its ``tbr`` (``r_frame_rate``).
    Either is nan when the banner does not give it.
    """

    duration_s: float = math.nan
    fps: float = math.nan

    @property
    def complete(self) -> bool:
        return math.isfinite(self.duration_s) and math.isfinite(self.fps)


def parse_input_report(lines: list[str]) -> InputReport:
    """Duration and video rate from the ``Input #0`` section of ffmpeg's banner lines."""
    duration = fps = math.nan
    inside = False
    for line in lines:
        if line.startswith("Input #0"):
            inside = True
        elif line.startswith(("Output #", "Stream mapping:", "Input #")):
            inside = False
        if not inside:
            continue
        if (match := _DURATION.match(line)) is not None:
            hours, minutes, seconds = match.groups()
            duration = int(hours) * 3600 + int(minutes) * 60 + float(seconds)
        elif not math.isfinite(fps) and _VIDEO_STREAM.match(line) and "(attached pic)" not in line:
            for unit in ("fps", "tbr"):
                if (rate := _RATE[unit].search(line)) is not None and float(rate.group(1)) > 0:
                    fps = float(rate.group(1))
                    break
    return InputReport(duration_s=duration, fps=fps)


class StderrLog:
    """Splits ffmpeg's ``-v level+info`` stderr into banner lines and error lines, and
    picks out the streams' start times and the demuxer's first error."""

    BANNER_LINES = 200  # the input banner comes first; a corrupt file may log thousands

    def __init__(self, on_duration: Callable[[float], None] | None, url: str = "") -> None:
        self.banner: list[str] = []
        self.errors: collections.deque[str] = collections.deque(maxlen=20)
        self.error_count = 0
        self.starts: dict[str, float] = {}  # 'video' / 'audio' -> first frame's time (s)
        # The first video frame's displayed size (W, H: upright, width times its sample
        # aspect ratio, rounded as the scale filter's ``round(iw*sar)``); None: not seen.
        self.video_size: tuple[int, int] | None = None
        self.demuxer_error = ""
        self.url = url
        self._on_duration = on_duration

    def drain(self, stream: IO[bytes] | None) -> None:
        if stream is None:
            return
        with stream:
            for raw in stream:
                self._add(raw.decode("utf-8", "replace").rstrip())

    def _add(self, line: str) -> None:
        match = _LEVEL.match(line)
        level = match.group(2) if match else "info"
        text = match.group(1) + line[match.end() :] if match else line
        if level in _ERROR_LEVELS:
            self.error_count += 1
            self.errors.append(text)
            # A demuxer error means packets are missing or damaged (a truncated or
            # corrupt file), however many frames still came out.
            if not self.demuxer_error and text.startswith(_DEMUXER_CONTEXTS):
                self.demuxer_error = last_stderr_line(text)
        elif (first := _FIRST_FRAME.match(text)) is not None:
            self.starts["audio" if first.group(1) else "video"] = to_float(first.group(2))
            if not first.group(1) and (size := _FRAME_SIZE.search(text)) is not None:
                self.video_size = displayed_size(*(int(v) for v in size.groups()))
        elif len(self.banner) < self.BANNER_LINES:
            self.banner.append(text)
            if self._on_duration is not None and (found := _DURATION.match(text)):
                hours, minutes, seconds = found.groups()
                self._on_duration(
                    decode_timeout_s(int(hours) * 3600 + int(minutes) * 60 + float(seconds))
                )


def displayed_size(sar_num: int, sar_den: int, width: int, height: int) -> tuple[int, int]:
    """``(W, H)`` of a ``width × height`` frame of sample aspect ratio ``sar_num/sar_den``
    in square pixels, as ``scale=w='round(iw*sar)'`` gives it (an unknown ratio, 0, is 1)."""
    sar = sar_num / sar_den if sar_num and sar_den else 1.0
    return max(1, math.floor(width * sar + 0.5)), height


def to_float(value: Any) -> float:
    """``float(value)``, or nan when ffmpeg or ffprobe printed no number (``N/A``, missing)."""
    try:
        return float(value)
    except (TypeError, ValueError):
        return math.nan
