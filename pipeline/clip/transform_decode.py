"""The decode step of one clip: frames and audio, with face detection riding on them.

:func:`decode_with_faces` picks the decoder (PyAV in this process for a clean clip,
else an ffmpeg process), runs the face detector on the stride frames while the
rest still decodes, and says what the source is: from ffmpeg's banner when the
decode looks clean, from ffprobe otherwise (then it also decodes again at a
pinned size when the frame budget stopped the first decode).
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
from pathlib import Path
from typing import TypeVar

from pipeline import media
from pipeline.clip.faces import StrideDetector, detection_factor
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
    frame_budget_bytes: int,
    timings: dict[str, float],
    cpu: StageCpu,
    in_process: bool = False,
) -> tuple[media.DecodedClip, StrideDetector, SourceFacts | media.MediaInfo]:
    """Decode ``path`` with face detection riding on the frames as they arrive.

    With ``in_process``, a clean clip is decoded in this process
    (:func:`pipeline.media.decode_in_process`); anything it does not take, and
    everything without it, goes to an ffmpeg process. The source's facts come from
    ffmpeg's banner when the decode looks clean; otherwise ffprobe says what is off,
    and a decode the frame budget stopped (too large, or a size change) is run again
    at a size pinned from the probe. Adds to ``timings`` and ``cpu``.
    """
    if in_process:
        detector = StrideDetector(stride=recipe.face_stride)
        decoded = _timed_decode(
            lambda: media.decode_in_process(
                path, fps, recipe.sample_rate, max_seconds, detector, frame_budget_bytes
            ),
            detector, timings, cpu,
        )  # fmt: skip
        if decoded is not None and (
            facts := _happy_facts(decoded, fps, max_seconds, recipe.min_frames)
        ):
            return decoded, detector, facts
    detector = StrideDetector(stride=recipe.face_stride)  # scale chosen on the first frame
    cpu.add("processes", 1)
    decoded = _timed_decode(
        lambda: media.decode_any(
            path, fps, recipe.sample_rate, max_seconds, on_frame=detector,
            budget_bytes=frame_budget_bytes,
        ),
        detector, timings, cpu,
    )  # fmt: skip
    if decoded.open_error:  # not an mp4: no probe could say more
        raise ClipError(f"cannot decode: {decoded.open_error}")
    decoded = _with_held_frames(path, decoded, fps, max_seconds, detector, timings, cpu)
    facts = _happy_facts(decoded, fps, max_seconds, recipe.min_frames)
    if facts is not None:
        return decoded, detector, facts
    clock = time.perf_counter()
    cpu.add("processes", 1)
    with cpu.stage("probe"):
        info = _probe_checked(path)  # something is off: ffprobe says what, as precisely as it can
    timings["probe"] = timings.get("probe", 0.0) + time.perf_counter() - clock
    if decoded.stopped:  # too large for the budget, or a size change: pin the size
        width, height = media.decode_size(info, fps, max_seconds, frame_budget_bytes)
        seconds = info.duration_s if math.isfinite(info.duration_s) else max_seconds
        detector = StrideDetector(recipe.face_stride, detection_factor(height, width))
        cpu.add("processes", 1)
        decoded = _timed_decode(
            lambda: media.decode_clip(
                path, (width, height), fps, recipe.sample_rate, max_seconds,
                media.decode_timeout_s(min(seconds, max_seconds)), on_frame=detector,
                budget_bytes=frame_budget_bytes,
            ),
            detector, timings, cpu,
        )  # fmt: skip
        decoded = _with_held_frames(path, decoded, fps, max_seconds, detector, timings, cpu)
    elif decoded.returncode != 0:
        raise ClipError(f"cannot decode: {decoded.stderr_line}")
    return decoded, detector, info


def _with_held_frames(
    path: Path,
    decoded: media.DecodedClip,
    fps: float,
    max_seconds: float,
    detector: StrideDetector,
    timings: dict[str, float],
    cpu: StageCpu,
) -> media.DecodedClip:
    """The process's decode ending where the video track ends: a last frame held past
    one step is repeated as the in-process decode repeats it
    (:mod:`pipeline.media.held_frame`). The probe it may take counts as a process."""
    if not media.may_hold(decoded, fps, max_seconds):
        return decoded
    clock = time.perf_counter()
    cpu.add("processes", 1)
    with cpu.stage("probe"):
        end_s = media.video_end_s(path)
    timings["probe"] = timings.get("probe", 0.0) + time.perf_counter() - clock
    if end_s is None:
        return decoded
    return _timed_decode(
        lambda: media.with_held_frames(decoded, end_s, fps, max_seconds, detector),
        detector, timings, cpu,
    )  # fmt: skip


_Decoded = TypeVar("_Decoded")


def _timed_decode(
    decode: Callable[[], _Decoded],
    detector: StrideDetector,
    timings: dict[str, float],
    cpu: StageCpu,
) -> _Decoded:
    """Run ``decode``; its time goes to 'decode', the detector's (fed by it) to 'detect'.

    Time spent on a decode whose frames are then dropped (an in-process attempt that
    hands the file to the process) counts too: it was spent on the clip.
    """
    clock = time.perf_counter()
    detect_wall, detect_cpu = detector.seconds, detector.cpu_seconds
    try:
        with cpu.stage("decode"):
            decoded = decode()
    finally:
        detect_wall = detector.seconds - detect_wall
        timings["decode"] = timings.get("decode", 0.0) + time.perf_counter() - clock - detect_wall
        timings["detect"] = timings.get("detect", 0.0) + detect_wall
        detect_cpu = detector.cpu_seconds - detect_cpu
        cpu.add("decode", -detect_cpu)  # the detector ran inside the decode's frame callback
        cpu.add("detect", detect_cpu)
    return decoded


def check_decoded(
    decoded: media.DecodedClip, duration_s: float, fps: float, max_seconds: float, min_frames: int
) -> None:
    """Raise :class:`ClipError` for a damaged, truncated or too short decode, or no audio."""
    if decoded.demuxer_error:
        raise ClipError(f"cannot decode: truncated or damaged file ({decoded.demuxer_error})")
    num_frames = len(decoded.frames)
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
    num_frames = len(decoded.frames)
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
    height, width = decoded.frames.shape[1:3]
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
