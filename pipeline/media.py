"""Probe and decode one media file with ffprobe / ffmpeg, entirely through pipes.

Nothing is written to disk: video arrives as raw RGB frames and audio as 16-bit
PCM on stdout. Every subprocess gets an argument list (never a shell string), a
``file:`` URL of the absolute path (so that a name such as ``-i.mp4`` or
``a:b.mp4`` can never be read as an option or a protocol), one decoder thread,
and a timeout, so that a pathological file cannot hang a worker.
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
from collections.abc import Callable
from dataclasses import dataclass
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
        ffmpeg_url(path),
    ]  # fmt: skip
    try:
        proc = subprocess.run(
            args, capture_output=True, timeout=timeout_s, stdin=subprocess.DEVNULL
        )
    except subprocess.TimeoutExpired as exc:
        raise ClipError(f"cannot decode: ffprobe timed out after {timeout_s:.0f} s") from exc
    if proc.returncode != 0:
        raise ClipError(f"cannot decode: {last_stderr_line(proc.stderr)}")
    try:
        data = json.loads(proc.stdout.decode("utf-8", "replace"))
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

    ffmpeg resamples and downmixes (``-ac 1`` averages the channels).
    """
    args = (
        ffmpeg.input(ffmpeg_url(path), threads=1)
        .output("pipe:", map="0:a:0", format="s16le", acodec="pcm_s16le", ac=1, ar=sample_rate,
                t=max_seconds)
        .global_args("-nostdin", "-v", "error")
        .compile()
    )  # fmt: skip
    out = _run(args, timeout_s)
    return np.frombuffer(out, dtype="<i2", count=len(out) // 2)


@dataclass
class DecodedClip:
    """Frames and samples of one clip, as :func:`decode_clip` returns them."""

    frames: np.ndarray  # (T, H, W, 3) uint8 RGB at the requested fps
    samples: np.ndarray  # (N,) int16 mono PCM at the requested sample rate
    stderr_line: str  # ffmpeg's last stderr line ('no error message' when silent)


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
    """Decode video and audio of ``path`` in one ffmpeg process: one demux, one start-up.

    Video: the first video stream as RGB at ``fps``, ``size=(W, H)``, shape ``(T, H, W, 3)``.
    ffmpeg's ``fps`` filter resamples any input rate, variable rates included;
    autorotation makes the frames upright; the explicit ``scale`` pins the byte layout
    of a frame. Frames are read from stdout straight into one preallocated array, and
    ``on_frame(t, frame)`` is called as each arrives, so work such as face detection
    overlaps with decoding.

    Audio: the first audio stream as mono int16 at ``sample_rate`` (resampled and
    downmixed by ffmpeg), written to a second pipe that a thread drains.
    """
    width, height = size
    source = ffmpeg.input(ffmpeg_url(path), threads=1)
    video = (
        source["v:0"]
        .filter("fps", fps=fps)
        .filter("scale", width, height)
        .output("pipe:1", format="rawvideo", pix_fmt="rgb24", t=max_seconds)
    )
    audio_read, audio_write = os.pipe()
    try:
        audio = source["a:0"].output(
            f"pipe:{audio_write}", format="s16le", acodec="pcm_s16le", ac=1, ar=sample_rate,
            t=max_seconds,
        )  # fmt: skip
        args = (
            ffmpeg.merge_outputs(video, audio)
            .global_args("-nostdin", "-v", "error", "-filter_complex_threads", "1")
            .compile()
        )
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
    stderr_tail: collections.deque[bytes] = collections.deque(maxlen=20)
    audio_chunks: list[bytes] = []
    readers = [
        # ffmpeg can print a lot on a corrupt file: drain stderr so that it never blocks.
        threading.Thread(target=_drain_lines, args=(proc.stderr, stderr_tail), daemon=True),
        threading.Thread(
            target=_drain_bytes, args=(os.fdopen(audio_read, "rb"), audio_chunks), daemon=True
        ),
    ]
    for reader in readers:
        reader.start()
    timed_out = threading.Event()

    def kill() -> None:
        timed_out.set()
        proc.kill()

    watchdog = threading.Timer(timeout_s, kill)
    watchdog.start()
    max_frames = math.ceil(max_seconds * fps) + 2
    frames = np.empty((min(max(expected_frames + 4, 16), max_frames), height, width, 3), np.uint8)
    count = 0
    try:
        assert proc.stdout is not None
        while count < max_frames:
            if count == len(frames):
                frames = _grow(frames, min(max_frames, len(frames) * 3 // 2 + 1))
            if not _read_exact(proc.stdout, frames[count].reshape(-1), width * height * 3):
                break
            if on_frame is not None:
                on_frame(count, frames[count])
            count += 1
        proc.stdout.close()
        # No timeout here: Popen.wait polls with sleeps when given one, and the watchdog
        # already bounds the whole run.
        returncode = proc.wait()
    finally:
        watchdog.cancel()
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        for reader in readers:
            reader.join(timeout=5)
    if timed_out.is_set():
        raise ClipError(f"cannot decode: ffmpeg timed out after {timeout_s:.0f} s")
    stderr_line = last_stderr_line(b"".join(stderr_tail))
    if returncode != 0:
        raise ClipError(f"cannot decode: {stderr_line}")
    pcm = b"".join(audio_chunks)
    samples = np.frombuffer(pcm, dtype="<i2", count=len(pcm) // 2)
    return DecodedClip(frames=frames[:count], samples=samples, stderr_line=stderr_line)


def decode_video(
    path: Path, size: tuple[int, int], fps: float, max_seconds: float, timeout_s: float
) -> np.ndarray:
    """Only the video of ``path``: ``(T, H, W, 3)`` uint8 RGB at ``fps``, ``size=(W, H)``."""
    width, height = size
    args = (
        ffmpeg.input(ffmpeg_url(path), threads=1)
        .output("pipe:", map="0:v:0", format="rawvideo", pix_fmt="rgb24",
                vf=f"fps={fps},scale={width}:{height}", t=max_seconds)
        .global_args("-nostdin", "-v", "error", "-filter_threads", "1")
        .compile()
    )  # fmt: skip
    out = _run(args, timeout_s)
    frame_bytes = width * height * 3
    count = len(out) // frame_bytes
    return np.frombuffer(out, np.uint8, count=count * frame_bytes).reshape(count, height, width, 3)


def _run(args: list[str], timeout_s: float) -> bytes:
    try:
        proc = subprocess.run(
            args, capture_output=True, timeout=timeout_s, stdin=subprocess.DEVNULL
        )
    except subprocess.TimeoutExpired as exc:
        raise ClipError(f"cannot decode: ffmpeg timed out after {timeout_s:.0f} s") from exc
    if proc.returncode != 0:
        raise ClipError(f"cannot decode: {last_stderr_line(proc.stderr)}")
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


def _drain_lines(stream: IO[bytes] | None, tail: collections.deque[bytes]) -> None:
    if stream is None:
        return
    for line in stream:
        tail.append(line)
    stream.close()


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
