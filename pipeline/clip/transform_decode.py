"""The decode step of one clip: frames and audio, with face detection riding on them.

:func:`decode_with_faces` picks the decoder (PyAV in this process for a clean clip,
else an ffmpeg process), runs the face detector on the stride frames while the
rest still decodes, and says what the source is: from ffmpeg's banner when the
decode looks clean, from ffprobe otherwise (then it also decodes again at a
pinned size when the frame size changed mid-stream). No frame is kept: each goes to
a :class:`~pipeline.clip.clip_stream.ClipStream`, which makes the crops as they come.
:func:`check_file` and :func:`check_decoded` turn a missing, empty, damaged,
truncated or too short input into the :class:`~pipeline.errors.ClipError` the
manifest records. This is the first step of
:func:`pipeline.clip.transform.preprocess_clip` (the tracks, crops, features and trim
come after it); :mod:`pipeline.clip.transform` describes the choices behind it.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import TypeVar

from pipeline import media
from pipeline.clip.clip_stream import ClipStream, OnFrame, Replay, charge
from pipeline.clip.faces import detection_factor
from pipeline.clip.stage_cpu import StageCpu
from pipeline.errors import ClipError
from schemas.recipe import Recipe

#: A decode that gives fewer than this fraction of the frames its duration promises
#: (less two) is a truncated file.
MIN_DECODED_FRACTION = 0.9


@dataclass(frozen=True)
class SourceFacts:
    """Frame rate, duration and displayed frame size of a source, from ffmpeg's banner."""

    fps: float
    duration_s: float
    width: int
    height: int


def _expected_frames(duration_s: float, fps: float, max_seconds: float) -> int:
    """Frames a complete decode of a clip lasting ``duration_s`` (nan: unknown) gives."""
    seconds = duration_s if math.isfinite(duration_s) else max_seconds
    return math.floor(min(seconds, max_seconds) * fps)


def decode_with_faces(
    path: Path,
    recipe: Recipe,
    fps: float,
    max_seconds: float,
    timings: dict[str, float],
    cpu: StageCpu,
    in_process: bool = False,
) -> tuple[media.DecodedClip, ClipStream, SourceFacts | media.MediaInfo, Replay]:
    """Decode ``path`` frame by frame into a :class:`ClipStream` (faces detected, cuts,
    crops and landmarks made as the frames arrive; no frame kept by the decode).

    With ``in_process``, a clean clip is decoded in this process
    (:func:`pipeline.media.decode_in_process`); anything it does not take, and
    everything without it, goes to an ffmpeg process. The source's facts come from
    ffmpeg's banner when the decode looks clean; otherwise ffprobe says what is off,
    and a decode whose frame size changed mid-stream is run again at a size pinned
    from the probe (the decode-size rule of its displayed size). Also returns how to
    run the same decode again. Adds to ``timings`` and ``cpu``.
    """
    how = _Decodes(path, fps, recipe.sample_rate, max_seconds)
    frames = math.ceil(max_seconds * fps) + 2  # the most a decode gives: rows reserved
    if in_process:
        stream = ClipStream(recipe, capacity=frames)
        decoded = _timed_decode(lambda: how.inside(stream), stream, timings, cpu)
        if decoded is not None and (
            facts := _happy_facts(decoded, fps, max_seconds, recipe.min_frames)
        ):
            return decoded, stream, facts, _replay(how.inside)
    stream = ClipStream(recipe, capacity=frames)  # scale chosen on the first frame
    cpu.add("processes", 1)
    decoded = _timed_decode(lambda: how.process(stream), stream, timings, cpu)
    if decoded.open_error:  # not an mp4: no probe could say more
        raise ClipError(f"cannot decode: {decoded.open_error}")
    decoded, end_s = _with_held_frames(path, decoded, fps, max_seconds, stream, timings, cpu)
    facts = _happy_facts(decoded, fps, max_seconds, recipe.min_frames)
    if facts is not None:
        return decoded, stream, facts, _replay(how.process, end_s, fps, max_seconds)
    clock = time.perf_counter()
    cpu.add("processes", 1)
    with cpu.stage("probe"):
        info = _probe_checked(path)  # something is off: ffprobe says what, as precisely as it can
    timings["probe"] = timings.get("probe", 0.0) + time.perf_counter() - clock
    if decoded.stopped:  # the frame size changed mid-stream: pin the size
        pinned = how.pinned(info)
        stream = ClipStream(recipe, detection_factor(*pinned.size[::-1]), capacity=frames)
        cpu.add("processes", 1)
        decoded = _timed_decode(lambda: pinned(stream), stream, timings, cpu)
        decoded, end_s = _with_held_frames(path, decoded, fps, max_seconds, stream, timings, cpu)
        return decoded, stream, info, _replay(pinned, end_s, fps, max_seconds)
    if decoded.returncode != 0:
        raise ClipError(f"cannot decode: {decoded.stderr_line}")
    return decoded, stream, info, _replay(how.process, end_s, fps, max_seconds)


@dataclass(frozen=True)
class _Decodes:
    """The decodes of one clip, each streaming its frames into an ``on_frame``, keeping none."""

    path: Path
    fps: float
    sample_rate: int
    max_seconds: float

    def inside(self, on_frame: OnFrame) -> media.DecodedClip | None:
        """In this process (:func:`pipeline.media.decode_in_process`); None: not taken."""
        return media.decode_in_process(
            self.path, self.fps, self.sample_rate, self.max_seconds, on_frame, keep_frames=False
        )

    def process(self, on_frame: OnFrame) -> media.DecodedClip:
        """In an ffmpeg process (:func:`pipeline.media.decode_any`)."""
        return media.decode_any(
            self.path, self.fps, self.sample_rate, self.max_seconds, on_frame=on_frame,
            keep_frames=False,
        )  # fmt: skip

    def pinned(self, info: media.MediaInfo) -> _Pinned:
        """In an ffmpeg process at the size the rule gives the probed displayed size."""
        return _Pinned(self, media.decode_size(info.width, info.height), info.duration_s)


@dataclass(frozen=True)
class _Pinned:
    """A decode at a pinned size (:func:`pipeline.media.decode_clip`)."""

    how: _Decodes
    size: tuple[int, int]  # (W, H)
    duration_s: float  # the probed duration (nan: unknown)

    def __call__(self, on_frame: OnFrame) -> media.DecodedClip:
        how = self.how
        seconds = self.duration_s if math.isfinite(self.duration_s) else how.max_seconds
        return media.decode_clip(
            how.path, self.size, how.fps, how.sample_rate, how.max_seconds,
            media.decode_timeout_s(min(seconds, how.max_seconds)), on_frame=on_frame,
            keep_frames=False,
        )  # fmt: skip


def _replay(
    decode: Callable[[OnFrame], media.DecodedClip | None],
    end_s: Fraction | None = None,
    fps: float = 0.0,
    max_seconds: float = 0.0,
) -> Replay:
    """The decode that gave a clip's frames, as a :data:`Replay` (held frames included)."""

    def replay(on_frame: OnFrame) -> None:
        again = decode(on_frame)
        if again is None:
            raise ClipError("cannot decode: the second decode of the clip failed")
        if end_s is not None:
            media.with_held_frames(again, end_s, fps, max_seconds, on_frame)

    return replay


def _with_held_frames(
    path: Path,
    decoded: media.DecodedClip,
    fps: float,
    max_seconds: float,
    stream: ClipStream,
    timings: dict[str, float],
    cpu: StageCpu,
) -> tuple[media.DecodedClip, Fraction | None]:
    """The process's decode ending where the video track ends: a last frame held past
    one step is repeated as the in-process decode repeats it
    (:mod:`pipeline.media.held_frame`); and that end (None: not probed or not known).
    The probe it may take counts as a process."""
    if not media.may_hold(decoded, fps, max_seconds):
        return decoded, None
    clock = time.perf_counter()
    cpu.add("processes", 1)
    with cpu.stage("probe"):
        end_s = media.video_end_s(path)
    timings["probe"] = timings.get("probe", 0.0) + time.perf_counter() - clock
    if end_s is None:
        return decoded, None
    held = _timed_decode(
        lambda: media.with_held_frames(decoded, end_s, fps, max_seconds, stream),
        stream, timings, cpu,
    )  # fmt: skip
    return held, end_s


_Decoded = TypeVar("_Decoded")


def _timed_decode(
    decode: Callable[[], _Decoded],
    stream: ClipStream,
    timings: dict[str, float],
    cpu: StageCpu,
) -> _Decoded:
    """Run ``decode``; its time goes to 'decode', the stream's (fed by it) to its stages.

    Time spent on a decode whose frames are then dropped (an in-process attempt that
    hands the file to the process) counts too: it was spent on the clip.
    """
    clock = time.perf_counter()
    before, walls = stream.spent(), stream.walls()
    try:
        with cpu.stage("decode"):
            decoded = decode()
    finally:
        took = charge(stream, before, walls, timings, cpu)
        timings["decode"] = timings.get("decode", 0.0) + time.perf_counter() - clock - took
    return decoded


def check_decoded(
    decoded: media.DecodedClip, duration_s: float, fps: float, max_seconds: float, min_frames: int
) -> None:
    """Raise :class:`ClipError` for a damaged, truncated or too short decode, or no audio."""
    if decoded.demuxer_error:
        raise ClipError(f"cannot decode: truncated or damaged file ({decoded.demuxer_error})")
    num_frames = decoded.num_frames
    expected = _expected_frames(duration_s, fps, max_seconds)
    if num_frames == 0 and expected == 0:
        raise ClipError("too short: 0 frames")
    if num_frames < MIN_DECODED_FRACTION * expected - 2:
        raise ClipError(
            f"cannot decode: truncated, {num_frames} of ~{expected} frames ({decoded.stderr_line})"
        )
    if num_frames < min_frames:
        raise ClipError(f"too short: {num_frames} frame{'s' if num_frames != 1 else ''}")
    if decoded.samples.size == 0:
        raise ClipError("no audio samples decoded")


def _happy_facts(
    decoded: media.DecodedClip, fps: float, max_seconds: float, min_frames: int
) -> SourceFacts | None:
    """The source's facts when the decode looks complete and clean, else None (probe it).

    Clean means: ffmpeg exited 0 and logged no error, read to its end, gave at least
    ``min_frames`` frames, some audio, and no fewer frames than the banner's
    duration promises. Any doubt costs one ffprobe run, never a wrong verdict: the
    banner's duration is the container's (the longest stream), so a clip whose audio
    outlasts its video would look short against it, and is probed before it is failed.
    """
    report = decoded.report
    num_frames = decoded.num_frames
    if (
        decoded.returncode != 0
        or decoded.error_lines
        or decoded.stopped
        or not report.complete
        or num_frames < min_frames
        or decoded.samples.size == 0
        or num_frames
        < MIN_DECODED_FRACTION * _expected_frames(report.duration_s, fps, max_seconds) - 2
    ):
        return None
    width, height = decoded.source_size or decoded.frame_size
    return SourceFacts(fps=report.fps, duration_s=report.duration_s, width=width, height=height)


def _probe_checked(path: Path) -> media.MediaInfo:
    """ffprobe's facts about ``path``; raises :class:`ClipError` for a missing stream."""
    info = media.probe(path)
    if not info.has_video:
        raise ClipError("no video stream")
    if not info.has_audio:
        raise ClipError("no audio stream")
    if info.width < 1 or info.height < 1:
        raise ClipError("cannot decode: video stream has no frame size")
    return info


def check_file(path: Path) -> None:
    try:
        size = path.stat().st_size
    except FileNotFoundError:
        raise ClipError("file not found") from None
    except OSError as exc:
        raise ClipError(f"cannot read file: {exc.strerror or exc}") from None
    if not path.is_file():
        raise ClipError("not a regular file")
    if size == 0:
        raise ClipError("empty file (0 bytes)")
