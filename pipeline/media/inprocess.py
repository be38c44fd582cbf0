"""Decoding a clean clip inside the worker with PyAV (FFmpeg's libraries): no process at all.

Why: starting an ffmpeg process costs more CPU than decoding a 224² clip of a few
seconds (Debian's ffmpeg links about 100 shared libraries: ~65 ms of CPU per start,
against ~30 ms to decode such a clip in-process). :func:`decode_in_process` gives
what :func:`pipeline.media.decode.decode_any` gives for the same file, built from the
same filters on the same timeline: ``fps=…:start_time=0`` and the square-pixel
``scale`` then ``rgb24`` for the video, ``aresample=async=1:…:first_pts=0`` then s16
mono at the requested rate for the audio, both cut at ``max_seconds`` as ``-t`` cuts
them, timestamps shifted by the container's start as the ffmpeg command does, and
the first frames' times (what ``showinfo`` logs) to the same 6 significant digits.

It only takes what it can decode exactly as the process would, and returns None
("use the process") for everything else, so that every bad input still meets the
supervised process path and gets the same failure row: no video or no audio
stream, cover art as the first video stream, another container than the mp4 family
(the input guard's whitelists are passed to the demuxer as well), a display matrix
(rotation), an audio time base other than one over the sample rate, audio of at
most 16 bits to resample (the two builds resample it differently), a video track
that ends elsewhere than its decoded frames (a last frame held past one step:
see :func:`_track_end_s`), a variable
frame rate (a step between frame times that changes), a frame size change, an incomplete banner (duration or rate unknown), any message FFmpeg logs at
error level or worse, any exception.

Limits. A call into FFmpeg's libraries cannot be interrupted like a process can be
killed, so the in-process path only takes inputs whose cost is bounded before the
first frame is decoded: files of at most :data:`MAX_FILE_BYTES` and frames of at most
:data:`MAX_PIXELS` (those the decode-size rule keeps at full size, so the two
decoders never scale a frame differently), and a stream no longer than the
container's duration says (one that outgrows it is dropped). Within those, each
packet decodes in bounded time, a deadline (half the process path's
:func:`~pipeline.media.timeouts.decode_timeout_s`) is checked between packets, and
demuxing stops a second past ``max_seconds``. A
larger, stranger or slower file is decoded by the process, under its watchdog.
"""

from __future__ import annotations

import itertools
import math
import time
from collections.abc import Callable, Iterator
from fractions import Fraction
from pathlib import Path
from typing import Any

import numpy as np

from pipeline.media.decode import MAX_DECODE_PIXELS, SCALE_ARGS, DecodedClip
from pipeline.media.ffmpeg_args import AUDIO_TIMELINE, MP4_DEMUXER, ffmpeg_url, open_options
from pipeline.media.ffmpeg_log import InputReport
from pipeline.media.held_frame import frames_until
from pipeline.media.timeouts import decode_timeout_s

try:  # the pipeline extra installs PyAV; without it every clip takes the process path
    import av
    import av.logging
except ImportError:  # pragma: no cover - exercised only where PyAV is missing
    av = None  # type: ignore[assignment]

#: Larger files are decoded by a supervised process (their cost is not bounded here).
MAX_FILE_BYTES = 256 * 2**20
#: Larger frames (above 1080p: those the decode-size rule scales) are decoded by a
#: supervised process, whose ``scale`` filter applies the rule.
MAX_PIXELS = MAX_DECODE_PIXELS


def pyav_available() -> bool:
    """Whether PyAV imports here (the ``pyav`` decoder needs it)."""
    return av is not None


class _UseProcess(Exception):
    """The file is not one the in-process path decodes exactly; the process will."""


def decode_in_process(
    path: Path,
    fps: float,
    sample_rate: int,
    max_seconds: float,
    on_frame: Callable[[int, np.ndarray], None] | None = None,
    timeout_s: float | None = None,
    keep_frames: bool = True,
) -> DecodedClip | None:
    """Video ``(T, H, W, 3)`` uint8 RGB and audio ``(N,)`` int16 of a clean clip, or None.

    The arguments and the result are those of :func:`~pipeline.media.decode.decode_any`
    (frames at their displayed size, square pixels). ``on_frame(t, frame)`` sees each
    frame as it is decoded, and ``keep_frames=False`` keeps none, as there. None means
    the file must go to the process path; frames already passed to ``on_frame`` are then to be forgotten. So does a
    decode still running after ``timeout_s`` (default: half the process path's
    timeout), so that the process, under its watchdog, gives the verdict. Never raises.
    """
    if av is None:
        return None
    try:
        if Path(path).stat().st_size > MAX_FILE_BYTES:
            return None
    except OSError:
        return None
    level = av.logging.get_level()
    if level is None or level > av.logging.ERROR:
        av.logging.set_level(av.logging.ERROR)  # errors must reach the capture below
    with av.logging.Capture(local=True) as logs:
        try:
            decoded = _decode(
                Path(path), fps, sample_rate, max_seconds, on_frame, timeout_s, keep_frames
            )
        except Exception:  # whatever went wrong here, the process gives the verdict
            return None
    if any(logged <= av.logging.ERROR for logged, _, _ in logs):
        return None
    return decoded


def _decode(
    path: Path,
    fps: float,
    sample_rate: int,
    max_seconds: float,
    on_frame: Callable[[int, np.ndarray], None] | None,
    timeout_s: float | None,
    keep_frames: bool,
) -> DecodedClip:
    # The input guard's two whitelists (the demuxer the suffix promises, local files).
    with av.open(ffmpeg_url(path), options=open_options(path)) as container:
        video, audio = _streams(container, sample_rate)
        report = _input_report(container, video)
        end_s = _track_end_s(container, video)
        if timeout_s is None:
            timeout_s = decode_timeout_s(report.duration_s) / 2
        deadline = time.monotonic() + timeout_s
        width, height = _displayed_size(video)
        if width * height > MAX_PIXELS:  # square pixels the rule would scale
            raise _UseProcess("frame size")
        capacity = math.ceil(min(report.duration_s, max_seconds) * fps) + 2
        kept: list[np.ndarray] = []
        last: np.ndarray | None = None
        graphs = _VideoGraph(video, fps, max_seconds), _AudioGraph(audio, sample_rate, max_seconds)
        count, chunks = 0, []
        starts: dict[str, Fraction | None] = {}
        spent = {video.index: 0.0, audio.index: 0.0}  # decoder CPU per stream
        audio_index = audio.index  # the stream objects are void once the file is closed
        # Demuxing stops a second past the cut, as ``-t`` stops ffmpeg reading.
        frames_in = _decoded_frames(container, video, audio, deadline, max_seconds + 1.0, spent)
        for stream_index, frame in frames_in:
            kind = "video" if stream_index == video.index else "audio"
            if kind not in starts:  # the first frame's time, as showinfo logs it
                starts[kind] = None if frame is None else frame.pts * frame.time_base
            if kind == "audio":
                clock = time.thread_time()
                chunks.extend(graphs[1].feed(frame))
                spent[audio.index] += time.thread_time() - clock
                continue
            outputs = graphs[0].feed(frame)
            for image in outputs:
                if image.shape != (height, width, 3) or count == capacity:
                    raise _UseProcess("frame size changed or the duration lied")
                if on_frame is not None:
                    on_frame(count, image)
                if keep_frames:
                    kept.append(image)
                count, last = count + 1, image
    if end_s is None or (end_s < max_seconds and frames_until(end_s, fps) != count):
        raise _UseProcess("the track does not end one step after its last frame")
    pcm = np.concatenate(chunks) if chunks else np.empty(0, np.int16)
    frames = np.stack(kept) if kept else np.empty((0, height, width, 3), np.uint8)
    return DecodedClip(
        frames=frames,
        samples=pcm,
        stderr_line="no error message",
        report=report,
        video_start_s=_as_logged(starts.get("video")),
        audio_start_s=_as_logged(starts.get("audio")),
        audio_cpu_s=spent[audio_index],
        decoder="pyav",
        frame_count=count,
        last_frame=last,
        source_size=(width, height),
    )


def _streams(container: Any, sample_rate: int) -> tuple[Any, Any]:
    """The first video and first audio stream (what ``-map 0:v:0 -map 0:a:0`` takes)."""
    if container.format.name != MP4_DEMUXER:
        raise _UseProcess("not the mp4 demuxer")
    if not container.streams.video or not container.streams.audio:
        raise _UseProcess("a stream is missing")
    video, audio = container.streams.video[0], container.streams.audio[0]
    if video.disposition & av.stream.Disposition.attached_pic:
        raise _UseProcess("cover art")
    context = video.codec_context
    if not 0 < context.width * context.height <= MAX_PIXELS:
        raise _UseProcess("frame size")
    if audio.time_base != Fraction(1, audio.sample_rate or 1):
        raise _UseProcess("audio time base")  # the ffmpeg command would rescale it first
    if _resampled_in_integers(audio, sample_rate):
        raise _UseProcess("16-bit audio to resample")
    context.thread_count = 1  # as ``-threads 1``: one decoder thread, one core per clip
    audio.codec_context.thread_count = 1
    return video, audio


def _resampled_in_integers(audio: Any, sample_rate: int) -> bool:
    """Whether the process's FFmpeg would resample this stream in 16-bit integers.

    libswresample picks its working format from the input's: samples of at most 16
    bits (u8, s16: FLAC, ALAC or PCM sources, never AAC) are resampled as integers by
    the FFmpeg 5.1 the process runs, and as floats by PyAV's FFmpeg 8, which puts up to
    3 steps between the two on 10-20 % of the samples (measured on s16 FLAC at 44.1 and
    48 kHz) and moves the MFCCs of nearly every row. Without a rate change both keep
    the samples as they are (measured equal), so only a rate change goes to the process.
    An unknown sample format goes there too.
    """
    sample_format = audio.codec_context.format
    return sample_format is None or (sample_format.bytes <= 2 and audio.sample_rate != sample_rate)


def _track_end_s(container: Any, video: Any) -> Fraction | None:
    """Where the video track ends on the decode's timeline (its start + duration, less
    the container's start), exactly as ffprobe's ``start_pts + duration_ts`` gives it.

    Frames decoded here end one step after the last frame, or where this build's
    demuxer says the last frame ends; the process ends them at this track end
    (:mod:`pipeline.media.held_frame`). A clip on which the two counts differ (a last
    frame held past one step, as the B-frame clips whose average rate is a little
    under the nominal one) goes to the process; None (no duration) too.
    """
    if video.duration is None or video.start_time is None:
        return None
    start_us = container.start_time or 0
    return (video.start_time + video.duration) * video.time_base - Fraction(start_us, 10**6)


def _input_report(container: Any, video: Any) -> InputReport:
    """What ffmpeg's banner would print: the duration to 10 ms, the rate to 0.01."""
    if container.duration is None or container.duration < 0:
        raise _UseProcess("no duration")
    centis = (container.duration + 5000) // 10000  # the banner's rounding (av_dump_format)
    rate = video.average_rate if video.average_rate else video.base_rate
    if not rate or rate <= 0:
        raise _UseProcess("no rate")
    hundredths = round(float(rate) * 100)
    shown = f"{float(rate):.2f}" if hundredths % 100 else f"{float(rate):.0f}"
    return InputReport(duration_s=centis / 100, fps=float(shown))


def _displayed_size(video: Any) -> tuple[int, int]:
    """``(W, H)`` after the square-pixel scale: the width times the sample aspect ratio."""
    context = video.codec_context
    sar = video.sample_aspect_ratio
    width = context.width
    if sar is not None and sar > 0:
        width = max(1, round(context.width * float(sar)))
    return width, context.height


def _decoded_frames(
    container: Any,
    video: Any,
    audio: Any,
    deadline: float,
    stop_s: float,
    spent: dict[int, float],
) -> Iterator[tuple[int, Any]]:
    """``(stream index, frame)`` in demux order on the container's timeline, up to
    ``stop_s`` seconds, then ``(index, None)`` once per stream at its end. Adds each
    stream's decoder CPU seconds to ``spent``. Past the deadline the process decodes."""
    start = container.start_time or 0  # microseconds; the ffmpeg command subtracts it
    offsets = {s.index: _rescale_us(-start, s.time_base) for s in (video, audio)}
    ended: set[int] = set()
    pts_seen: list[int] = []  # the video's last frame time and its step, in stream ticks
    for packet in container.demux(video, audio):
        if time.monotonic() > deadline:
            raise _UseProcess("too slow for in-process decoding")
        if packet.stream.index in ended:
            if len(ended) == 2:
                break
            continue
        offset = offsets[packet.stream.index]
        if offset and packet.pts is not None:
            packet.pts += offset
        if offset and packet.dts is not None:
            packet.dts += offset
        clock = time.thread_time()
        decoded = packet.decode()
        spent[packet.stream.index] += time.thread_time() - clock
        for frame in decoded:
            if frame.pts is None:
                raise _UseProcess("a frame without a time")
            if packet.stream.index == video.index and not pts_seen and _rotated(frame):
                raise _UseProcess("rotation")  # the command rotates upright; do not guess
            if frame.time > stop_s:
                ended.add(packet.stream.index)
                break
            if packet.stream.index == video.index:
                _check_constant_rate(pts_seen, frame.pts)
            yield packet.stream.index, frame
    yield video.index, None
    yield audio.index, None


def _rotated(frame: Any) -> bool:
    """Whether ``frame`` carries a display matrix. Asked of a stream's first frame only
    (the matrix is the stream's, repeated on each frame): PyAV's side-data view ties a
    frame into a reference cycle, so asking every frame held each decoded frame until
    the garbage collector ran, hundreds of MB on a 1080p clip."""
    return frame.side_data.get("DISPLAYMATRIX") is not None


def _check_constant_rate(seen: list[int], pts: int) -> None:
    """Send a variable-rate video to the process: the two FFmpeg builds' ``fps`` filters
    end such a stream differently (one frame count apart, measured on the synthetic vfr
    defect), so only a constant step between frame times is decoded here."""
    if len(seen) == 2 and pts - seen[0] != seen[1]:
        raise _UseProcess("variable frame rate")
    if seen:
        seen[1:] = [pts - seen[0]]
    seen[:1] = [pts]


def _rescale_us(microseconds: int, time_base: Fraction) -> int:
    """``av_rescale_q(us, 1/1e6, time_base)``: rounded to nearest, halves away from 0."""
    exact = Fraction(microseconds, 1_000_000) / time_base
    magnitude = math.floor(abs(exact) + Fraction(1, 2))
    return magnitude if exact >= 0 else -magnitude


def _as_logged(seconds: Fraction | None) -> float:
    """A start time as ``showinfo`` logs it (``%.6g``), so both paths agree; nan: none."""
    return math.nan if seconds is None else float(f"{float(seconds):.6g}")


class _VideoGraph:
    """``fps → scale (square pixels, the decode-size rule) → rgb24 → trim``: frames
    ``(H, W, 3)`` uint8 out."""

    def __init__(self, video: Any, fps: float, max_seconds: float) -> None:
        self.graph = av.filter.Graph()
        chain = [
            self.graph.add_buffer(template=video),
            self.graph.add("fps", f"fps={fps}:start_time=0"),
            self.graph.add("scale", SCALE_ARGS),  # the process's rule (a no-op up to MAX_PIXELS)
            self.graph.add("format", "pix_fmts=rgb24"),
            self.graph.add("trim", f"duration={max_seconds}"),
            self.graph.add("buffersink"),
        ]
        _link(self.graph, chain)

    def feed(self, frame: Any) -> list[np.ndarray]:
        """Push ``frame`` (None: the end) and return what came out."""
        self.graph.push(frame)
        return [out.to_ndarray() for out in _pull_all(self.graph)]


class _AudioGraph:
    """``aresample`` onto the timeline → s16 mono at ``sample_rate`` → trim: int16 out."""

    def __init__(self, audio: Any, sample_rate: int, max_seconds: float) -> None:
        self.graph = av.filter.Graph()
        chain = [
            self.graph.add_abuffer(template=audio),
            self.graph.add("aresample", AUDIO_TIMELINE.partition("=")[2]),
            self.graph.add(
                "aformat", f"sample_fmts=s16:sample_rates={sample_rate}:channel_layouts=mono"
            ),
            self.graph.add("atrim", f"duration={max_seconds}"),
            self.graph.add("abuffersink"),
        ]
        _link(self.graph, chain)

    def feed(self, frame: Any) -> list[np.ndarray]:
        self.graph.push(frame)
        return [out.to_ndarray().reshape(-1) for out in _pull_all(self.graph)]


def _link(graph: Any, chain: list[Any]) -> None:
    """Link the filters of ``chain`` in order and configure ``graph``."""
    for left, right in itertools.pairwise(chain):
        left.link_to(right)
    graph.configure()


def _pull_all(graph: Any) -> Iterator[Any]:
    """Every frame the graph's sink holds now (all of them once the end was pushed)."""
    while True:
        try:
            yield graph.pull()
        except (av.BlockingIOError, av.EOFError):
            return
