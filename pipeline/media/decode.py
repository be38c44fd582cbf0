"""Decoding one clip's video and audio in one ffmpeg process, through pipes.

Nothing is written to disk: video arrives as RGB frames, as PPM images whose headers
give the frame size (:mod:`pipeline.media.ppm`), on stdout, and audio as 16-bit PCM
on a second pipe. The process gets one decoder thread, the input guard
(:mod:`pipeline.media.ffmpeg_args`) and a watchdog (:mod:`pipeline.media.process`).

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

import math
import os
import subprocess
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from pipeline.errors import ClipError
from pipeline.media.ffmpeg_args import AUDIO_TIMELINE, ffmpeg_url, input_guard
from pipeline.media.ffmpeg_log import (
    InputReport,
    StderrLog,
    last_stderr_line,
    open_failure,
    parse_input_report,
)
from pipeline.media.ppm import PpmFrames, read_ppm_frames
from pipeline.media.process import Watchdog, drain_bytes, widen_pipe
from pipeline.media.timeouts import decode_timeout_s

#: The decode-size rule: a frame is decoded at its displayed size (upright, square
#: pixels) unless it holds more pixels than this (1080p's); then it is scaled, aspect
#: kept, to this many pixels: 4K by 1/2, 8K by 1/4, 1440p by 3/4. The rule looks at
#: the frame alone, never at the clip's duration, so every clip of one size is decoded
#: at one scale; and it bounds a decoded frame to 6.2 MB, which bounds the memory of
#: the frames a clip holds at once (:mod:`pipeline.clip.frame_window`).
MAX_DECODE_PIXELS = 1920 * 1080

# The rule as the ``scale`` filter of both decoders computes it: the square-pixel width
# (``round(iw*sar)``) and the height, times min(1, sqrt(MAX / pixels)), rounded.
_SQUARE_W = "round(iw*sar)"
_FACTOR = f"min(1,sqrt({MAX_DECODE_PIXELS}/({_SQUARE_W}*ih)))"
#: The ``scale`` filter's arguments of the rule (:func:`decode_size` in Python).
SCALE_ARGS = f"w='max(1,round({_SQUARE_W}*{_FACTOR}))':h='max(1,round(ih*{_FACTOR}))'"


def decode_scale(width: int, height: int) -> float:
    """The factor a displayed ``width × height`` frame is decoded at (1.0 up to
    :data:`MAX_DECODE_PIXELS`), as the ``scale`` filter of :data:`SCALE_ARGS` gives it."""
    return min(1.0, math.sqrt(MAX_DECODE_PIXELS / (width * height)))


def decode_size(width: int, height: int) -> tuple[int, int]:
    """``(width, height)`` a displayed ``width × height`` frame is decoded at: the
    rule of :data:`MAX_DECODE_PIXELS`, rounded half up as ffmpeg's ``round``."""
    factor = decode_scale(width, height)
    return max(1, math.floor(width * factor + 0.5)), max(1, math.floor(height * factor + 0.5))


@dataclass
class DecodedClip:
    """Frames and samples of one clip, as :func:`decode_clip` and :func:`decode_any` give them."""

    # (T, H, W, 3) uint8 RGB at the requested fps; (0, H, W, 3) when the decode only
    # streamed them to its ``on_frame`` (``keep_frames=False``): ``num_frames`` counts them.
    frames: np.ndarray
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
    open_error: str = ""  # why the input could not be opened as its container ('' when it was)
    # CPU seconds spent on the audio (decoder and filters) by an in-process decode (nan:
    # not known, as when an ffmpeg process decoded both streams).
    audio_cpu_s: float = math.nan
    # Which decoder gave these frames and samples: 'ffmpeg' (a process) or 'pyav' (in
    # this process, :mod:`pipeline.media.inprocess`).
    decoder: str = "ffmpeg"
    frame_count: int = -1  # frames decoded; -1: len(frames) (they were kept)
    last_frame: np.ndarray | None = None  # (H, W, 3): the last frame (a held frame repeats it)
    # The source's displayed size (W, H: upright, square pixels) before the rule of
    # MAX_DECODE_PIXELS; None when the decode did not say (the frames' size then).
    source_size: tuple[int, int] | None = None

    @property
    def num_frames(self) -> int:
        """``T``: the frames decoded, whether kept in ``frames`` or only streamed."""
        return len(self.frames) if self.frame_count < 0 else self.frame_count

    @property
    def frame_size(self) -> tuple[int, int]:
        """``(W, H)`` of the decoded frames (``(0, 0)`` when none came)."""
        if self.last_frame is not None:
            return self.last_frame.shape[1], self.last_frame.shape[0]
        return (self.frames.shape[2], self.frames.shape[1]) if self.frames.ndim == 4 else (0, 0)


def decode_clip(
    path: Path,
    size: tuple[int, int],
    fps: float,
    sample_rate: int,
    max_seconds: float,
    timeout_s: float,
    on_frame: Callable[[int, np.ndarray], None] | None = None,
    keep_frames: bool = True,
) -> DecodedClip:
    """Decode video and audio of ``path`` at a known frame size in one ffmpeg process.

    Video: the first video stream as RGB at ``fps``, ``size=(W, H)``, shape ``(T, H, W, 3)``.
    ffmpeg's ``fps`` filter resamples any input rate, variable rates included;
    autorotation makes the frames upright; the explicit ``scale`` pins the frame size.
    ``on_frame(t, frame)`` is called as each frame arrives, so work such as face
    detection overlaps with decoding. Audio: the first audio stream as mono int16 at
    ``sample_rate`` (resampled and downmixed by ffmpeg). Raises :class:`ClipError`
    when ffmpeg fails or times out.

    ``keep_frames=False`` keeps no frame (``frames`` is empty, ``num_frames`` counts
    them): each frame lives as long as ``on_frame`` keeps it, so memory does not grow
    with the clip's length.
    """
    width, height = size
    decoded = _decode(
        path, f"scale={width}:{height}", fps, sample_rate, max_seconds, timeout_s, on_frame,
        keep_frames=keep_frames,
    )  # fmt: skip
    if decoded.stopped:
        raise ClipError(f"cannot decode: {decoded.stopped}")
    if decoded.returncode != 0:
        raise ClipError(f"cannot decode: {decoded.stderr_line}")
    return decoded


def decode_any(
    path: Path,
    fps: float,
    sample_rate: int,
    max_seconds: float,
    on_frame: Callable[[int, np.ndarray], None] | None = None,
    timeout_s: float | None = None,
    keep_frames: bool = True,
) -> DecodedClip:
    """Decode ``path`` without knowing anything about it first: no ffprobe run.

    Like :func:`decode_clip`, but the frames keep their displayed size (upright, square
    pixels: the width is scaled by the sample aspect ratio as
    :func:`~pipeline.media.ffprobe.probe` does) within the rule of
    :data:`MAX_DECODE_PIXELS`, which each frame's PPM header tells; ``source_size`` is
    the displayed size before the rule (from the first frame's ``showinfo`` line). The
    timeout is :func:`decode_timeout_s` of the banner's duration once ffmpeg has printed
    it (of ``max_seconds`` until then).

    Never raises for a bad file except on timeout: the caller inspects ``returncode``,
    ``error_lines``, ``stopped`` (``'frame size changed'`` mid-stream) and the counts,
    and diagnoses with :func:`~pipeline.media.ffprobe.probe` when something is off.
    """
    return _decode(
        path, f"scale={SCALE_ARGS}", fps, sample_rate, max_seconds,
        decode_timeout_s(max_seconds) if timeout_s is None else timeout_s, on_frame,
        keep_frames=keep_frames, shorten_timeout=timeout_s is None,
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
    keep_frames: bool = True,
    shorten_timeout: bool = False,
) -> DecodedClip:
    """One ffmpeg: video as a stream of PPM images on stdout, PCM on a second pipe.

    PPM makes the video stream self-describing (``P6\\nW H\\n255\\n`` before each
    frame's RGB bytes), so the frame size need not be known before decoding; the
    header costs 15 bytes of a 150 KB frame. ``-v level+info`` tags every stderr line
    with its level: error lines are told apart from the input banner, which is parsed
    for :class:`InputReport`. ``?`` on the maps makes a missing stream an empty output
    (ffmpeg then fails at once, and :func:`~pipeline.media.ffprobe.probe` names what is
    missing). Each
    stream's first frame is split off to a ``showinfo`` that logs its start time and
    ends in a null sink; the other frames pass the ``select`` without a copy.
    """
    audio_read, audio_write = os.pipe()
    args = _decode_args(path, scale, fps, sample_rate, max_seconds, audio_write)
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
    widen_pipe(proc.stdout)
    watchdog = Watchdog(proc, timeout_s)
    log = StderrLog(watchdog.shorten if shorten_timeout else None, ffmpeg_url(path))
    audio_chunks: list[bytes] = []
    readers = [
        # ffmpeg can print a lot on a corrupt file: drain stderr so that it never blocks.
        threading.Thread(target=log.drain, args=(proc.stderr,), daemon=True),
        threading.Thread(
            target=drain_bytes, args=(os.fdopen(audio_read, "rb"), audio_chunks), daemon=True
        ),
    ]
    for reader in readers:
        reader.start()
    max_frames = math.ceil(max_seconds * fps) + 2
    try:
        assert proc.stdout is not None
        read = read_ppm_frames(proc.stdout, max_frames, on_frame, keep_frames)
        if read.stopped:
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
    return _decoded(read, b"".join(audio_chunks), returncode, log)


def _decode_args(
    path: Path, scale: str, fps: float, sample_rate: int, max_seconds: float, audio_fd: int
) -> list[str]:
    """The argv of :func:`_decode`: PPM video on stdout, s16le PCM on ``audio_fd``."""
    video_graph = (
        f"split[m][p];[p]select='eq(n,0)',showinfo,nullsink;[m]fps=fps={fps}:start_time=0,{scale}"
    )
    audio_graph = f"asplit[m][p];[p]aselect='eq(n,0)',ashowinfo,anullsink;[m]{AUDIO_TIMELINE}"
    return [
        "ffmpeg", "-hide_banner", "-nostdin", "-nostats", "-v", "level+info",
        "-filter_threads", "1", "-threads", "1", *input_guard(path), "-i", ffmpeg_url(path),
        "-map", "0:v:0?", "-vf", video_graph, "-t", f"{max_seconds}",
        "-c:v", "ppm", "-pix_fmt", "rgb24", "-f", "image2pipe", "pipe:1",
        "-map", "0:a:0?", "-af", audio_graph, "-t", f"{max_seconds}", "-c:a", "pcm_s16le",
        "-ac", "1", "-ar", str(sample_rate), "-f", "s16le", f"pipe:{audio_fd}",
    ]  # fmt: skip


def _decoded(read: PpmFrames, pcm: bytes, returncode: int, log: StderrLog) -> DecodedClip:
    """What a finished decode produced and what its stderr said, as one :class:`DecodedClip`."""
    count = read.count
    # A read error after some output is damage further in, not a refused container.
    opened = count > 0 or len(pcm) > 0
    return DecodedClip(
        frames=read.frames,
        samples=np.frombuffer(pcm, dtype="<i2", count=len(pcm) // 2),
        stderr_line=last_stderr_line("\n".join(log.errors)),
        returncode=returncode,
        error_lines=log.error_count,
        report=parse_input_report(log.banner),
        stopped=read.stopped,
        video_start_s=log.starts.get("video", math.nan),
        audio_start_s=log.starts.get("audio", math.nan),
        demuxer_error=log.demuxer_error,
        open_error="" if opened else open_failure("\n".join(log.errors), log.url) or "",
        frame_count=count,
        last_frame=read.last,
        source_size=log.video_size,
    )
