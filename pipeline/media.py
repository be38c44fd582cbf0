"""Probe and decode one media file with ffprobe / ffmpeg, entirely through pipes.

Nothing is written to disk: video arrives as RGB frames (raw, or as PPM images when
the frame size is not known in advance) on stdout and audio as 16-bit PCM on a
second pipe. Every subprocess gets an argument list (never a shell string), a
``file:`` URL of the absolute path (so that a name such as ``-i.mp4`` or
``a:b.mp4`` can never be read as an option or a protocol), one decoder thread,
and a timeout, so that a pathological file cannot hang a worker.

Containers: every ffmpeg and ffprobe run opens its input with :data:`INPUT_GUARD`,
which admits only the mp4 family's demuxer (``mov,mp4,m4a,3gp,3g2,mj2``) and only
the ``file`` protocol. A playlist or script named ``.mp4`` (HLS, ``concat``,
``ffconcat``) could otherwise make ffmpeg open files outside the dataset root or
URLs; the whitelist refuses it after ffmpeg has looked at the file's first bytes and
before any other file is opened. MKV and WebM files renamed ``.mp4`` are refused the
same way: a file named ``.mp4`` must be an mp4. The mov demuxer's external data
references stay off (ffmpeg's default), so an mp4 cannot name another file either.

Timeline: both streams of a decode are placed on the container's presentation
timeline, so that audio sample ``n`` and video frame ``t`` are heard and seen
together as a player presents them: the ``fps`` filter starts at time 0 (a video
stream that starts late is padded with copies of its first frame) and
``aresample=async=1:first_pts=0`` pads leading silence before audio that starts
late, and fills gaps. ffmpeg's timeline starts at the container's start (the
earliest stream), after edit lists and AAC priming are applied. The first frame of
each stream also passes a ``showinfo`` filter, whose log line gives the stream's
start on that timeline (:attr:`DecodedClip.video_start_s`, ``audio_start_s``)
without an ffprobe run.
"""

from __future__ import annotations

import collections
import contextlib
import fcntl
import json
import math
import os
import re
import subprocess
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

import ffmpeg
import numpy as np

from pipeline.errors import ClipError

PROBE_TIMEOUT_S = 30.0
# Decoding a few seconds of 224² H.264 takes well under a second; these bounds only
# exist to stop a worker from hanging on a file that makes ffmpeg spin.
DECODE_TIMEOUT_BASE_S = 30.0
DECODE_TIMEOUT_PER_MEDIA_S = 5.0
DECODE_TIMEOUT_CAP_S = 600.0
# Decoded RGB frames held per clip. 224² at 25 fps for 60 s is 226 MB; larger frames
# are scaled down by ffmpeg so that a clip never holds more than this.
DEFAULT_FRAME_BUDGET_BYTES = 384 * 2**20
PIPE_BYTES = 1 << 20  # Linux's default pipe-max-size for unprivileged processes
# "[mov,mp4,m4a,3gp,3g2,mj2 @ 0x55ea6f07c980] ": which ffmpeg component spoke, not why.
_CONTEXT_PREFIX = re.compile(r"^\[[^\]]* @ 0x[0-9a-f]+\]\s*")

#: The demuxer names ffmpeg may use for a source: the mov demuxer (mp4, m4a, 3gp,
#: 3g2, mj2, QuickTime) and nothing else.
MP4_DEMUXER = "mov,mp4,m4a,3gp,3g2,mj2"
#: Input options of every ffmpeg / ffprobe run: the mp4 demuxer only, local files only.
INPUT_GUARD = ("-protocol_whitelist", "file", "-format_whitelist", MP4_DEMUXER)
# Gaps in the audio timestamps above this many seconds are filled with silence (and
# overlaps trimmed); smaller ones are timestamp jitter. Well under one 40 ms frame.
AUDIO_SYNC_MIN_S = 0.01
# "[hls @ 0x55...] Format not on whitelist 'mov,...'": ffmpeg names what it found.
#: Audio filter that puts the samples on the container's timeline (module notes).
AUDIO_TIMELINE = f"aresample=async=1:min_hard_comp={AUDIO_SYNC_MIN_S}:first_pts=0"
_NOT_WHITELISTED = re.compile(r"^\[([^\]@]*?) @ 0x[0-9a-f]+\]\s*Format not on whitelist")


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


def ffmpeg_url(path: Path) -> str:
    """``file:`` URL of the absolute path: never parsed as an option or another protocol."""
    return "file:" + str(Path(path).absolute())


def open_failure(stderr: bytes | str, url: str) -> str | None:
    """Why ffmpeg could not open ``url`` as an mp4, or None when it opened it.

    ffmpeg reports a failed open with one line that starts with the input's URL
    (``file:/x.mp4: Invalid argument``). The reason returned says which container
    was found when the whitelist refused it (``'the container is not an mp4 (hls)'``),
    else what the demuxer said (``'... (moov atom not found)'``).
    """
    text = stderr.decode("utf-8", "replace") if isinstance(stderr, bytes) else stderr
    lines = [_strip_level(line.strip()) for line in text.splitlines() if line.strip()]
    if not any(line.startswith(url + ": ") for line in lines):
        return None
    for line in lines:
        if (found := _NOT_WHITELISTED.match(line)) is not None:
            return f"the container is not an mp4 ({found.group(1).strip()})"
    before = [line for line in lines if not line.startswith(url + ": ")]
    detail = last_stderr_line("\n".join(before[-1:])) if before else ""
    if not detail or detail == "no error message":
        detail = last_stderr_line(lines[-1])
    return f"the container is not an mp4 ({detail})"


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


def decode_timeout_s(duration_s: float) -> float:
    """Timeout for one decode of a clip lasting ``duration_s`` seconds (nan: unknown)."""
    if not math.isfinite(duration_s) or duration_s <= 0:
        return DECODE_TIMEOUT_CAP_S
    return min(
        DECODE_TIMEOUT_CAP_S, DECODE_TIMEOUT_BASE_S + DECODE_TIMEOUT_PER_MEDIA_S * duration_s
    )


def probe(path: Path, timeout_s: float = PROBE_TIMEOUT_S) -> MediaInfo:
    """Run ffprobe on ``path``; raises :class:`ClipError` when it is not a readable media file."""
    args = [
        "ffprobe", "-v", "error", "-of", "json", "-show_format", "-show_streams",
        *INPUT_GUARD, ffmpeg_url(path),
    ]  # fmt: skip
    stdout = _run(args, timeout_s, ffmpeg_url(path))
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
    duration = _float((video or {}).get("duration"))
    if not math.isfinite(duration):
        duration = _float(fmt.get("duration"))
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


def _float(value: Any) -> float:
    try:
        return float(value)
    except (TypeError, ValueError):
        return math.nan


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
            angle = -_float(side["rotation"])
    if not math.isfinite(angle):
        angle = _float((stream.get("tags") or {}).get("rotate"))
    if not math.isfinite(angle):
        return 0
    return round(angle / 90.0) % 4 * 90


def decode_size(
    info: MediaInfo, fps: float, max_seconds: float, budget_bytes: int
) -> tuple[int, int]:
    """``(width, height)`` to decode at: the displayed size, shrunk to fit ``budget_bytes``."""
    seconds = info.duration_s if math.isfinite(info.duration_s) else max_seconds
    frames = math.ceil(min(seconds, max_seconds) * fps) + 2
    width, height = info.width, info.height
    need = frames * width * height * 3
    if need > budget_bytes:
        factor = math.sqrt(budget_bytes / need)
        width, height = max(16, int(width * factor)), max(16, int(height * factor))
    return width, height


def decode_audio(path: Path, sample_rate: int, max_seconds: float, timeout_s: float) -> np.ndarray:
    """The first audio stream as mono int16 PCM at ``sample_rate``: shape ``(N,)``.

    ffmpeg resamples and downmixes (``-ac 1`` averages the channels); the samples
    start at the container's start (see the module notes on the timeline).
    """
    args = (
        ffmpeg.input(ffmpeg_url(path), threads=1, **_guard_kwargs())
        .output("pipe:", map="0:a:0", format="s16le", acodec="pcm_s16le", ac=1, ar=sample_rate,
                t=max_seconds, af=AUDIO_TIMELINE)
        .global_args("-nostdin", "-v", "error")
        .compile()
    )  # fmt: skip
    out = _run(args, timeout_s, ffmpeg_url(path))
    return np.frombuffer(out, dtype="<i2", count=len(out) // 2)


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


# "  Duration: 00:00:02.56, start: 0.000000, bitrate: 234 kb/s" (or "Duration: N/A, ...")
_DURATION = re.compile(r"^\s*Duration: (\d+):(\d\d):(\d\d(?:\.\d+)?)")
# "  Stream #0:0[0x1](und): Video: h264 (High) ..., 224x224, ..., 25 fps, 25 tbr, 12800 tbn"
_VIDEO_STREAM = re.compile(r"^\s*Stream #0:\d+\S*: Video: ")
_RATE = {unit: re.compile(rf", (\d+(?:\.\d+)?) {unit}\b") for unit in ("fps", "tbr")}
# "[h264 @ 0x55...] [error] msg" / "[error] msg": ffmpeg's "-v level+..." tags each line.
_LEVEL = re.compile(r"^((?:\[[^\]]* @ 0x[0-9a-f]+\]\s*)?)\[(\w+)\] ?")
_ERROR_LEVELS = frozenset({"error", "fatal", "panic"})
# The demuxer's own log lines: "[mov,mp4,m4a,3gp,3g2,mj2 @ 0x55...] ...".
_DEMUXER_CONTEXT = f"[{MP4_DEMUXER} @ "
# "[Parsed_showinfo_2 @ 0x55...] n:   0 pts:   2560 pts_time:0.2     pos: ..."
_FIRST_FRAME = re.compile(r"^\[Parsed_(a?)showinfo_\d+ @ 0x[0-9a-f]+\]\s*n:\s*0 .*pts_time:(\S+)")


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


@dataclass
class DecodedClip:
    """Frames and samples of one clip, as :func:`decode_clip` and :func:`decode_any` give them."""

    frames: np.ndarray  # (T, H, W, 3) uint8 RGB at the requested fps
    samples: np.ndarray  # (N,) int16 mono PCM at the requested sample rate
    stderr_line: str  # ffmpeg's last error line ('no error message' when there was none)
    returncode: int = 0
    error_lines: int = 0  # how many lines ffmpeg logged at error level or worse
    report: InputReport = field(default_factory=InputReport)
    stopped: str = ""  # why reading stopped before ffmpeg's end: '' (it did not), or a reason
    # First frame of each stream on the container's timeline, in seconds (nan: not seen).
    video_start_s: float = math.nan
    audio_start_s: float = math.nan
    demuxer_error: str = ""  # the demuxer's first error line ('' when it logged none)
    open_error: str = ""  # why the input could not be opened as an mp4 ('' when it was)


def decode_clip(
    path: Path,
    size: tuple[int, int],
    fps: float,
    sample_rate: int,
    max_seconds: float,
    timeout_s: float,
    expected_frames: int = 0,
    on_frame: Callable[[int, np.ndarray], None] | None = None,
) -> DecodedClip:
    """Decode video and audio of ``path`` at a known frame size in one ffmpeg process.

    Video: the first video stream as RGB at ``fps``, ``size=(W, H)``, shape ``(T, H, W, 3)``.
    ffmpeg's ``fps`` filter resamples any input rate, variable rates included;
    autorotation makes the frames upright; the explicit ``scale`` pins the frame size.
    ``on_frame(t, frame)`` is called as each frame arrives, so work such as face
    detection overlaps with decoding. Audio: the first audio stream as mono int16 at
    ``sample_rate`` (resampled and downmixed by ffmpeg). Raises :class:`ClipError`
    when ffmpeg fails or times out. ``expected_frames`` is accepted for callers of the
    earlier interface; frames go to a lazily committed buffer, so it is not needed.
    """
    del expected_frames
    width, height = size
    decoded = _decode(
        path, f"scale={width}:{height}", fps, sample_rate, max_seconds, timeout_s, on_frame
    )
    if decoded.returncode != 0:
        raise ClipError(f"cannot decode: {decoded.stderr_line}")
    return decoded


def decode_any(
    path: Path,
    fps: float,
    sample_rate: int,
    max_seconds: float,
    on_frame: Callable[[int, np.ndarray], None] | None = None,
    budget_bytes: int = DEFAULT_FRAME_BUDGET_BYTES,
    timeout_s: float | None = None,
) -> DecodedClip:
    """Decode ``path`` without knowing anything about it first: no ffprobe run.

    Like :func:`decode_clip`, but the frames keep their displayed size (upright, square
    pixels: the width is scaled by the sample aspect ratio as :func:`probe` does), which
    each frame's PPM header tells. The timeout is :func:`decode_timeout_s` of the
    banner's duration once ffmpeg has printed it (of ``max_seconds`` until then).

    Never raises for a bad file except on timeout: the caller inspects ``returncode``,
    ``error_lines``, ``stopped`` (``'frame budget'`` when the frames would exceed
    ``budget_bytes``, ``'frame size changed'`` mid-stream) and the counts, and
    diagnoses with :func:`probe` when something is off.
    """
    square = "scale=w='max(1,round(iw*sar))':h=ih"
    return _decode(
        path, square, fps, sample_rate, max_seconds,
        decode_timeout_s(max_seconds) if timeout_s is None else timeout_s, on_frame,
        budget_bytes=budget_bytes, shorten_timeout=timeout_s is None,
    )  # fmt: skip


def _decode(
    path: Path,
    scale: str,
    fps: float,
    sample_rate: int,
    max_seconds: float,
    timeout_s: float,
    on_frame: Callable[[int, np.ndarray], None] | None,
    *,
    budget_bytes: int | None = None,
    shorten_timeout: bool = False,
) -> DecodedClip:
    """One ffmpeg: video as a stream of PPM images on stdout, PCM on a second pipe.

    PPM makes the video stream self-describing (``P6\\nW H\\n255\\n`` before each
    frame's RGB bytes), so the frame size need not be known before decoding; the
    header costs 15 bytes of a 150 KB frame. ``-v level+info`` tags every stderr line
    with its level: error lines are told apart from the input banner, which is parsed
    for :class:`InputReport`. ``?`` on the maps makes a missing stream an empty output
    (ffmpeg then fails at once, and :func:`probe` names what is missing). Each
    stream's first frame is split off to a ``showinfo`` that logs its start time and
    ends in a null sink; the other frames pass the ``select`` without a copy.
    """
    audio_read, audio_write = os.pipe()
    video_graph = (
        f"split[m][p];[p]select='eq(n,0)',showinfo,nullsink;[m]fps=fps={fps}:start_time=0,{scale}"
    )
    audio_graph = f"asplit[m][p];[p]aselect='eq(n,0)',ashowinfo,anullsink;[m]{AUDIO_TIMELINE}"
    args = [
        "ffmpeg", "-hide_banner", "-nostdin", "-nostats", "-v", "level+info",
        "-filter_threads", "1", "-threads", "1", *INPUT_GUARD, "-i", ffmpeg_url(path),
        "-map", "0:v:0?", "-vf", video_graph, "-t", f"{max_seconds}",
        "-c:v", "ppm", "-pix_fmt", "rgb24", "-f", "image2pipe", "pipe:1",
        "-map", "0:a:0?", "-af", audio_graph, "-t", f"{max_seconds}", "-c:a", "pcm_s16le",
        "-ac", "1", "-ar", str(sample_rate), "-f", "s16le", f"pipe:{audio_write}",
    ]  # fmt: skip
    try:
        proc = subprocess.Popen(
            args,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            pass_fds=(audio_write,),
        )
    except BaseException:
        os.close(audio_read)
        raise
    finally:
        os.close(audio_write)  # the child holds its own copy; EOF arrives when it exits
    _widen_pipe(proc.stdout)
    watchdog = _Watchdog(proc, timeout_s)
    log = _StderrLog(watchdog.shorten if shorten_timeout else None, ffmpeg_url(path))
    audio_chunks: list[bytes] = []
    readers = [
        # ffmpeg can print a lot on a corrupt file: drain stderr so that it never blocks.
        threading.Thread(target=log.drain, args=(proc.stderr,), daemon=True),
        threading.Thread(
            target=_drain_bytes, args=(os.fdopen(audio_read, "rb"), audio_chunks), daemon=True
        ),
    ]
    for reader in readers:
        reader.start()
    max_frames = math.ceil(max_seconds * fps) + 2
    try:
        assert proc.stdout is not None
        frames, count, stopped = _read_ppm_frames(proc.stdout, max_frames, budget_bytes, on_frame)
        if stopped:
            proc.kill()  # the frames are of no use now; the caller decodes again
        proc.stdout.close()
        # No timeout here: Popen.wait polls with sleeps when given one, and the watchdog
        # already bounds the whole run.
        returncode = proc.wait()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        for reader in readers:
            reader.join(timeout=5)
        watchdog.stop()  # after the stderr reader, which may still shorten the deadline
    if watchdog.fired:
        raise ClipError(f"cannot decode: ffmpeg timed out after {watchdog.timeout_s:.0f} s")
    pcm = b"".join(audio_chunks)
    # A read error after some output is damage further in, not a refused container.
    opened = count > 0 or len(pcm) > 0
    return DecodedClip(
        frames=frames[:count],
        samples=np.frombuffer(pcm, dtype="<i2", count=len(pcm) // 2),
        stderr_line=last_stderr_line("\n".join(log.errors)),
        returncode=returncode,
        error_lines=log.error_count,
        report=parse_input_report(log.banner),
        stopped=stopped,
        video_start_s=log.starts.get("video", math.nan),
        audio_start_s=log.starts.get("audio", math.nan),
        demuxer_error=log.demuxer_error,
        open_error="" if opened else open_failure("\n".join(log.errors), log.url) or "",
    )


def _read_ppm_frames(
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


class _Watchdog:
    """Kills ``proc`` at its deadline; the deadline can be brought forward while it runs."""

    def __init__(self, proc: subprocess.Popen[bytes], timeout_s: float) -> None:
        self.timeout_s = timeout_s
        self.fired = False
        self._proc = proc
        self._start = time.monotonic()
        self._deadline = self._start + timeout_s
        self._done = False
        self._cond = threading.Condition()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def shorten(self, timeout_s: float) -> None:
        with self._cond:
            if timeout_s < self.timeout_s:
                self.timeout_s = timeout_s
                self._deadline = self._start + timeout_s
                self._cond.notify()

    def stop(self) -> None:
        with self._cond:
            self._done = True
            self._cond.notify()
        self._thread.join()

    def _run(self) -> None:
        with self._cond:
            while not self._done:
                left = self._deadline - time.monotonic()
                if left <= 0:
                    self.fired = True
                    self._proc.kill()
                    return
                self._cond.wait(left)


class _StderrLog:
    """Splits ffmpeg's ``-v level+info`` stderr into banner lines and error lines, and
    picks out the streams' start times and the demuxer's first error."""

    BANNER_LINES = 200  # the input banner comes first; a corrupt file may log thousands

    def __init__(self, on_duration: Callable[[float], None] | None, url: str = "") -> None:
        self.banner: list[str] = []
        self.errors: collections.deque[str] = collections.deque(maxlen=20)
        self.error_count = 0
        self.starts: dict[str, float] = {}  # 'video' / 'audio' -> first frame's time (s)
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
            if not self.demuxer_error and text.startswith(_DEMUXER_CONTEXT):
                self.demuxer_error = last_stderr_line(text)
        elif (first := _FIRST_FRAME.match(text)) is not None:
            self.starts["audio" if first.group(1) else "video"] = _float(first.group(2))
        elif len(self.banner) < self.BANNER_LINES:
            self.banner.append(text)
            if self._on_duration is not None and (found := _DURATION.match(text)):
                hours, minutes, seconds = found.groups()
                self._on_duration(
                    decode_timeout_s(int(hours) * 3600 + int(minutes) * 60 + float(seconds))
                )


def decode_video(
    path: Path, size: tuple[int, int], fps: float, max_seconds: float, timeout_s: float
) -> np.ndarray:
    """Only the video of ``path``: ``(T, H, W, 3)`` uint8 RGB at ``fps``, ``size=(W, H)``."""
    width, height = size
    args = (
        ffmpeg.input(ffmpeg_url(path), threads=1, **_guard_kwargs())
        .output("pipe:", map="0:v:0", format="rawvideo", pix_fmt="rgb24",
                vf=f"fps=fps={fps}:start_time=0,scale={width}:{height}", t=max_seconds)
        .global_args("-nostdin", "-v", "error", "-filter_threads", "1")
        .compile()
    )  # fmt: skip
    out = _run(args, timeout_s, ffmpeg_url(path))
    frame_bytes = width * height * 3
    count = len(out) // frame_bytes
    return np.frombuffer(out, np.uint8, count=count * frame_bytes).reshape(count, height, width, 3)


def _guard_kwargs() -> dict[str, str]:
    """:data:`INPUT_GUARD` as ffmpeg-python input keywords."""
    names, values = INPUT_GUARD[::2], INPUT_GUARD[1::2]
    return {name.lstrip("-"): value for name, value in zip(names, values, strict=True)}


def _run(args: list[str], timeout_s: float, url: str) -> bytes:
    """Run ffmpeg or ffprobe (``args[0]``) on ``url``; a failure becomes a ClipError.

    The error says why the input could not be opened (:func:`open_failure`), else
    ffmpeg's last line.
    """
    try:
        proc = subprocess.run(
            args, capture_output=True, timeout=timeout_s, stdin=subprocess.DEVNULL
        )
    except subprocess.TimeoutExpired as exc:
        raise ClipError(f"cannot decode: {args[0]} timed out after {timeout_s:.0f} s") from exc
    if proc.returncode != 0:
        why = open_failure(proc.stderr, url) or last_stderr_line(proc.stderr)
        raise ClipError(f"cannot decode: {why}")
    return proc.stdout


def _widen_pipe(stream: IO[bytes] | None) -> None:
    """Let ffmpeg run several frames ahead: a 224² RGB frame (150 KB) is more than the
    default 64 KiB pipe, so without this, decoding stalls on every frame Python handles."""
    if stream is None or not hasattr(fcntl, "F_SETPIPE_SZ"):
        return
    with contextlib.suppress(OSError):  # above /proc/sys/fs/pipe-max-size: keep the default
        fcntl.fcntl(stream.fileno(), fcntl.F_SETPIPE_SZ, PIPE_BYTES)


def _drain_bytes(stream: IO[bytes], chunks: list[bytes]) -> None:
    with stream:
        while chunk := stream.read(1 << 16):
            chunks.append(chunk)


def _read_exact(stream: IO[bytes], out: np.ndarray, nbytes: int) -> bool:
    """Fill ``out`` (a flat uint8 view) from ``stream``; False at end of stream."""
    view = memoryview(out)
    got = 0
    while got < nbytes:
        n = stream.readinto(view[got:])  # type: ignore[attr-defined]
        if not n:
            return False  # end of stream; a partial last frame is dropped
        got += n
    return True


def _grow(frames: np.ndarray, capacity: int) -> np.ndarray:
    grown = np.empty((capacity, *frames.shape[1:]), frames.dtype)
    grown[: len(frames)] = frames
    return grown
