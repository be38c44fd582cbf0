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
from pipeline.media.ffprobe import MediaInfo
from pipeline.media.ppm import read_ppm_frames
from pipeline.media.process import Watchdog, drain_bytes, widen_pipe
from pipeline.media.timeouts import decode_timeout_s

# Decoded RGB frames held per clip. 224² at 25 fps for 60 s is 226 MB; larger frames
# are scaled down by ffmpeg so that a clip never holds more than this.
DEFAULT_FRAME_BUDGET_BYTES = 384 * 2**20


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
    open_error: str = ""  # why the input could not be opened as its container ('' when it was)
    # CPU seconds spent on the audio (decoder and filters) by an in-process decode (nan:
    # not known, as when an ffmpeg process decoded both streams).
    audio_cpu_s: float = math.nan
    # Which decoder gave these frames and samples: 'ffmpeg' (a process) or 'pyav' (in
    # this process, :mod:`pipeline.media.inprocess`).
    decoder: str = "ffmpeg"


def decode_clip(
    path: Path,
    size: tuple[int, int],
    fps: float,
    sample_rate: int,
    max_seconds: float,
    timeout_s: float,
    on_frame: Callable[[int, np.ndarray], None] | None = None,
    budget_bytes: int | None = None,
) -> DecodedClip:
    """Decode video and audio of ``path`` at a known frame size in one ffmpeg process.

    Video: the first video stream as RGB at ``fps``, ``size=(W, H)``, shape ``(T, H, W, 3)``.
    ffmpeg's ``fps`` filter resamples any input rate, variable rates included;
    autorotation makes the frames upright; the explicit ``scale`` pins the frame size.
    ``on_frame(t, frame)`` is called as each frame arrives, so work such as face
    detection overlaps with decoding. Audio: the first audio stream as mono int16 at
    ``sample_rate`` (resampled and downmixed by ffmpeg). Raises :class:`ClipError`
    when ffmpeg fails or times out.

    ``budget_bytes`` bounds the frame array reserved up front: :func:`decode_size` chose
    ``size`` so that the probed duration's frames fit it, so the reservation follows the
    clip's duration, not ``max_seconds × fps`` frames of that size (10.8 GiB for a 2-s 8K
    clip shrunk to the default budget). A file holding more frames than that is an error.
    """
    width, height = size
    decoded = _decode(
        path, f"scale={width}:{height}", fps, sample_rate, max_seconds, timeout_s, on_frame,
        budget_bytes=budget_bytes,
    )  # fmt: skip
    if decoded.stopped:
        raise ClipError(
            f"cannot decode: more frames than its probed duration holds ({decoded.stopped})"
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
    pixels: the width is scaled by the sample aspect ratio as
    :func:`~pipeline.media.ffprobe.probe` does), which each frame's PPM header tells. The timeout is :func:`decode_timeout_s` of the
    banner's duration once ffmpeg has printed it (of ``max_seconds`` until then).

    Never raises for a bad file except on timeout: the caller inspects ``returncode``,
    ``error_lines``, ``stopped`` (``'frame budget'`` when the frames would exceed
    ``budget_bytes``, ``'frame size changed'`` mid-stream) and the counts, and
    diagnoses with :func:`~pipeline.media.ffprobe.probe` when something is off.
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
        frames, count, stopped = read_ppm_frames(proc.stdout, max_frames, budget_bytes, on_frame)
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
    return _decoded(frames[:count], b"".join(audio_chunks), returncode, stopped, log)


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


def _decoded(
    frames: np.ndarray, pcm: bytes, returncode: int, stopped: str, log: StderrLog
) -> DecodedClip:
    """What a finished decode produced and what its stderr said, as one :class:`DecodedClip`."""
    count = len(frames)
    # A read error after some output is damage further in, not a refused container.
    opened = count > 0 or len(pcm) > 0
    return DecodedClip(
        frames=frames,
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
