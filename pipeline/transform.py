"""One clip in, its tensors out: decode → faces → audio features → silence trim.

This is the per-clip function that ingest runs in one Ray task per clip. It holds
no state between clips, writes no file, and turns every bad input into a
:class:`~pipeline.errors.ClipError` whose message is the manifest's reason.

Choices worth knowing:

- No ffprobe on the happy path. Its process start-up alone (ffmpeg's ~100 shared
  libraries) costs about as much CPU as decoding a short 224² clip. The decode needs
  no facts in advance: frames come as PPM images, whose headers give their size, and
  the source's rate and duration come from ffmpeg's own input banner
  (:class:`pipeline.media.InputReport`). ffprobe runs only to diagnose: when ffmpeg
  fails or logs an error, when the frames would exceed the memory budget, when the
  banner lacks a fact, or when too few frames, no audio or fewer frames than the
  banner's duration promises came out. Then the reasons and checks are exactly those
  of a probe-first design (``'no audio stream'``, ``'cannot decode: truncated, ...'``).
  ``source_duration_s`` is the container's duration on the happy path (the longest
  stream, to 10 ms) and the video stream's when probed; ``timings['probe']`` is 0.0
  when no probe ran.
- One ffmpeg process decodes the video at ``recipe.fps`` (its ``fps`` filter, any
  input rate) and the audio at ``recipe.sample_rate`` mono, to two pipes; faces are
  detected on the stride frames while the rest of the video is still decoding.
  (Two processes, one per stream, cost one more ffmpeg start-up per clip, which is
  a good part of the decode time of a 224² clip of a few seconds.)
- The recipe's ``decoder`` ``pyav`` (the default) decodes a clean clip inside the
  worker with PyAV (:mod:`pipeline.media.inprocess`): no process start-up, which is
  about 40 % of a 224² clip's CPU. The frames are the process path's, pixel for pixel; the audio comes
  from PyAV's own build of FFmpeg, whose AAC decoder rounds differently in the last
  float bits, so a 16-bit sample may differ by one step (about 0.02 % of them). Every
  file it does not take decodes as below, with the same verdicts. ``cpu_seconds`` in
  the result says where a clip's CPU went (:mod:`pipeline.stage_cpu`).
- Every setting that shapes the tensors or the verdict comes from the recipe
  (:class:`schemas.recipe.Recipe`): the frame rate, sample rate, face stride, crop
  size, face margin and smoothing windows, silence thresholds, the cut, the minimum
  frames and the audio coverage. The module constants below are the recipe's
  defaults, for the documentation and for callers of the helpers alone.
- A clip needs at least ``recipe.min_frames`` (:data:`MIN_FRAMES`, 2) frames: one
  40 ms frame carries no speech and no motion, so ``'too short: 1 frame'`` is a
  failure, as is a clip whose video decodes to fewer than
  :data:`MIN_DECODED_FRACTION` of the frames its duration promises (a truncated file).
- Clips longer than ``recipe.max_seconds`` (60 s) are cut there (ffmpeg ``-t``),
  not failed: FakeAVCeleb clips last seconds, so only a stray file is that long.
  ``cut`` in the result records it. When the frames outgrow a memory budget, the
  decode stops there and runs again, probed, with ffmpeg scaling the frames down to
  fit; face crops are what is kept anyway.
- Silence trimming, when on, cuts whole frames from the front of both tensors and
  never leaves fewer than ``recipe.min_frames``.
- Audio and video lie on the container's presentation timeline (see
  :mod:`pipeline.media.decode`): row ``t`` of the audio features is the audio a player
  plays under video frame ``t``, whatever each stream's start. ``audio_offset_s``
  records the audio stream's start minus the video stream's, as found. A clip whose
  audio covers less than ``recipe.min_audio_coverage`` (:data:`MIN_AUDIO_COVERAGE`,
  0.9) of its video frames fails (the audio features would be padding), and so does
  one whose video covers less than that fraction of its audio (video that ends long
  before the audio); ``audio_coverage`` records the first fraction.
- An error logged by the demuxer (a truncated or damaged file: ``partial file``)
  fails the clip however many frames came out; decoder errors alone do not (a
  damaged picture is concealed, the timeline stays whole).
- A file that is not an mp4 (another container, a playlist or script renamed
  ``.mp4``) fails with ``'cannot decode: the container is not an mp4 (...)'``.
- Besides the crops, every clip keeps its ``face_boxes`` (the squares the crops
  were cut from) and ``shot_cuts``; with ``recipe.landmarks`` the landmarks of every
  frame and their flags (:mod:`pipeline.landmarks`), and with the ``mouth`` stream
  the aligned mouth crops (:mod:`pipeline.mouth`), all from the frames already
  decoded. None of them changes a byte of ``video`` or ``audio``.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeVar

import numpy as np

from pipeline import media
from pipeline.audio_features import frame_features
from pipeline.errors import ClipError
from pipeline.faces import StrideDetector, crop_boxes, crop_faces, detection_factor
from pipeline.landmarks import count_shot_cuts, landmark_jitter, to_crop, track_landmarks
from pipeline.mouth import crop_mouths
from pipeline.silence import leading_silence_frames
from pipeline.stage_cpu import StageCpu
from schemas.recipe import Recipe

#: Defaults of the recipe's ``min_frames`` and ``max_seconds`` (the recipe is their one
#: source): a clip with fewer frames fails, a longer one is cut.
MIN_FRAMES = Recipe.min_frames
DEFAULT_MAX_SECONDS = Recipe.max_seconds
#: Default of the recipe's ``min_audio_coverage``: the least fraction of the video
#: frames the audio must cover (and of the audio the video must cover) for a clip to
#: be stored.
MIN_AUDIO_COVERAGE = Recipe.min_audio_coverage
MIN_DECODED_FRACTION = 0.9
#: A stream may overhang the other by this much whatever its length: AAC ends on
#: whole 1024-sample frames (64 ms at 16 kHz) after its priming, so a 0.4 s clip's
#: audio lasts 0.45 s without anything missing.
COVERAGE_SLACK_S = 0.1


@dataclass
class ClipTensors:
    """The tensors and facts of one processed clip."""

    video: np.ndarray  # (T, S, S, 3) uint8 face crops, S = recipe.crop_size
    audio: np.ndarray  # (T, 104) float32, row t = the 40 ms of audio under video frame t
    source_fps: float
    source_duration_s: float
    source_width: int
    source_height: int
    face_detection_rate: float  # detector calls that found a face / detector calls
    trimmed_frames: int  # leading frames removed by trim_silence (0 if off)
    cut: bool = False  # True when the clip was longer than max_seconds and cut there
    audio_offset_s: float = 0.0  # audio stream start minus video stream start, as found
    audio_coverage: float = 1.0  # fraction of the video frames that the audio covers
    timings: dict[str, float] = field(default_factory=dict)  # seconds per stage
    # CPU seconds per stage (see StageCpu): this process's, and its ffmpeg processes'.
    cpu_seconds: dict[str, float] = field(default_factory=dict)
    face_boxes: np.ndarray | None = None  # (T, 4) float32: square cut per crop, frame px
    landmarks: np.ndarray | None = None  # (T, 68, 2) float16 in crop px (recipe.landmarks)
    mouth: np.ndarray | None = None  # (T, 96, 96) uint8 (the recipe's "mouth" stream)
    landmark_rate: float | None = None  # confident landmark fits / fits (None: no landmarks)
    landmark_jitter: float | None = None  # mean per-frame landmark motion, crop px
    shot_cuts: int = 0  # jumps of the detected face box

    def extra_arrays(self) -> dict[str, np.ndarray]:
        """The arrays stored beside ``video`` and ``audio`` (see ``schemas.write_clip``)."""
        named = {"face_boxes": self.face_boxes, "landmarks": self.landmarks, "mouth": self.mouth}
        return {name: data for name, data in named.items() if data is not None}


@dataclass(frozen=True)
class SourceFacts:
    """Frame rate, duration and displayed frame size of a source, from ffmpeg's banner."""

    fps: float
    duration_s: float
    width: int
    height: int


def preprocess_clip(
    path: Path,
    recipe: Recipe,
    *,
    max_seconds: float | None = None,
    frame_budget_bytes: int = media.DEFAULT_FRAME_BUDGET_BYTES,
    min_audio_coverage: float | None = None,
    in_process: bool | None = None,
) -> ClipTensors:
    """Face crops ``(T, S, S, 3)`` uint8 and audio features ``(T, 104)`` float32 of one clip.

    ``S`` is ``recipe.crop_size``. ``max_seconds`` and ``min_audio_coverage`` default
    to the recipe's; pass them only to try another value without another recipe
    (what a store holds is made with its recipe's). ``in_process`` (default: the
    recipe's ``decoder`` is ``pyav``) decodes a clean clip inside this process
    (:func:`pipeline.media.decode_in_process`: the same frames, audio within one
    16-bit step, no process start-up), anything else with an ffmpeg process. Raises
    :class:`ClipError` for every bad input; never leaves files behind.
    """
    if max_seconds is None:
        max_seconds = recipe.max_seconds
    if in_process is None:
        in_process = recipe.decoder == "pyav"
    if min_audio_coverage is None:
        min_audio_coverage = recipe.min_audio_coverage
    min_frames = recipe.min_frames
    path = Path(path)
    timings: dict[str, float] = {"probe": 0.0}
    cpu = StageCpu()
    _check_file(path)
    fps = float(recipe.fps)
    decoded, detector, info = _decode_with_faces(
        path, recipe, fps, max_seconds, frame_budget_bytes, timings, cpu, in_process
    )
    if math.isfinite(decoded.audio_cpu_s):
        cpu.add("audio_decode", decoded.audio_cpu_s)  # part of 'decode', told apart
    frames, signal = decoded.frames, decoded.samples
    num_frames = len(frames)
    _check_decoded(decoded, info.duration_s, fps, max_seconds, min_frames)
    span = TimelineSpan.of(decoded, num_frames, fps, recipe.sample_rate)
    span.check(min_audio_coverage)
    detect_cpu = detector.cpu_seconds
    detector.finish(num_frames - 1, frames[-1])
    if detector.hits == 0:
        raise ClipError("no face detected in any frame")

    cpu.add("detect", detector.cpu_seconds - detect_cpu)
    clock = time.perf_counter()
    with cpu.stage("track"):
        track = detector.track(num_frames, recipe.face_smooth, recipe.face_size_smooth)
    with cpu.stage("crop"):
        crops = crop_faces(frames, track, recipe.crop_size, recipe.face_margin)
        boxes = crop_boxes(track, recipe.face_margin)
    timings["crop"] = time.perf_counter() - clock
    streams, landmark_rate = _landmark_streams(frames, track, boxes, detector, recipe, timings)
    del frames, decoded  # the full frames are the clip's largest buffer; crops are all we keep

    clock = time.perf_counter()
    with cpu.stage("features"):
        audio = frame_features(signal, recipe.sample_rate, num_frames, recipe.features)
    timings["features"] = time.perf_counter() - clock

    trimmed = 0
    if recipe.trim_silence:
        trimmed = leading_silence_frames(
            signal, recipe.sample_rate, fps, num_frames,
            threshold_db=recipe.silence_threshold_db, min_keep=min_frames,
            silent_clip_db=recipe.silent_clip_db,
        )  # fmt: skip
        crops, audio = crops[trimmed:], audio[trimmed:]
        boxes = boxes[trimmed:]
        streams = {name: data[trimmed:] for name, data in streams.items()}
    landmarks = streams.get("landmarks")

    return ClipTensors(
        video=np.ascontiguousarray(crops),
        audio=np.ascontiguousarray(audio, dtype=np.float32),
        source_fps=info.fps,
        source_duration_s=info.duration_s,
        source_width=info.width,
        source_height=info.height,
        face_detection_rate=detector.detection_rate,
        trimmed_frames=trimmed,
        cut=math.isfinite(info.duration_s) and info.duration_s > max_seconds + 1.0 / fps,
        audio_offset_s=span.offset_s,
        audio_coverage=span.audio_coverage,
        timings=timings,
        cpu_seconds=cpu.seconds,
        face_boxes=np.ascontiguousarray(boxes),
        landmarks=landmarks,
        mouth=streams.get("mouth"),
        landmark_rate=landmark_rate,
        landmark_jitter=None if landmarks is None else landmark_jitter(landmarks),
        shot_cuts=count_shot_cuts(np.array(detector.boxes)),
    )


def _landmark_streams(
    frames: np.ndarray,
    track: np.ndarray,
    boxes: np.ndarray,
    detector: StrideDetector,
    recipe: Recipe,
    timings: dict[str, float],
) -> tuple[dict[str, np.ndarray], float | None]:
    """The recipe's landmark arrays of a clip and its confident-fit rate.

    The arrays: ``landmarks`` (T, 68, 2) float16 in crop pixels and, with the mouth
    stream, ``mouth`` (T, 96, 96) uint8; none (and no rate) without
    ``recipe.landmarks``. ``boxes`` (T, 4) are the squares the crops were cut from.
    """
    if not recipe.landmarks:
        return {}, None
    clock = time.perf_counter()
    fitted = track_landmarks(
        frames, track, boxes, recipe.face_stride, np.array(detector.keyframes, np.int64)
    )
    points = to_crop(fitted.points, boxes, recipe.crop_size).astype(np.float16)
    out = {"landmarks": points}
    timings["landmarks"] = time.perf_counter() - clock
    if "mouth" in recipe.streams:
        clock = time.perf_counter()
        out["mouth"] = crop_mouths(frames, fitted.points)
        timings["mouth"] = time.perf_counter() - clock
    return out, fitted.rate


@dataclass(frozen=True)
class TimelineSpan:
    """Where the decoded audio and video lie on the container's timeline, in seconds.

    The video occupies ``[0, video_s)`` (its frames, the padding before a late start
    included); the audio ``[audio_from_s, audio_to_s)`` (leading padding excluded).
    """

    video_s: float
    audio_from_s: float
    audio_to_s: float
    offset_s: float  # audio stream start minus video stream start (nan: not known)

    @classmethod
    def of(
        cls, decoded: media.DecodedClip, num_frames: int, fps: float, sample_rate: int
    ) -> TimelineSpan:
        audio_from = decoded.audio_start_s if math.isfinite(decoded.audio_start_s) else 0.0
        return cls(
            video_s=num_frames / fps,
            audio_from_s=max(0.0, audio_from),
            audio_to_s=decoded.samples.size / sample_rate,
            offset_s=decoded.audio_start_s - decoded.video_start_s,
        )

    @property
    def overlap_s(self) -> float:
        return max(0.0, min(self.audio_to_s, self.video_s) - self.audio_from_s)

    @property
    def audio_s(self) -> float:
        return max(0.0, self.audio_to_s - self.audio_from_s)

    @property
    def audio_coverage(self) -> float:
        """Fraction of the video frames with audio under them, in [0, 1]."""
        return min(1.0, self.overlap_s / self.video_s) if self.video_s > 0 else 0.0

    @property
    def video_coverage(self) -> float:
        """Fraction of the audio with video frames over it, in [0, 1]."""
        return min(1.0, self.overlap_s / self.audio_s) if self.audio_s > 0 else 1.0

    def check(self, minimum: float) -> None:
        """Raise :class:`ClipError` when either stream leaves the other mostly uncovered.

        A gap of up to :data:`COVERAGE_SLACK_S` is never a failure.
        """
        durations = f"audio {self.audio_s:.2f} s, video {self.video_s:.2f} s"
        if self.audio_coverage < minimum and self.video_s - self.overlap_s > COVERAGE_SLACK_S:
            raise ClipError(
                f"audio covers {self.audio_coverage:.0%} of the video ({durations}; "
                f"minimum {minimum:.0%})"
            )
        if self.video_coverage < minimum and self.audio_s - self.overlap_s > COVERAGE_SLACK_S:
            raise ClipError(
                f"video ends long before the audio: it covers {self.video_coverage:.0%} of "
                f"the audio ({durations}; minimum {minimum:.0%})"
            )


def _expected_frames(duration_s: float, fps: float, max_seconds: float) -> int:
    """Frames a complete decode of a clip lasting ``duration_s`` (nan: unknown) gives."""
    seconds = duration_s if math.isfinite(duration_s) else max_seconds
    return math.floor(min(seconds, max_seconds) * fps)


def _decode_with_faces(
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
    facts = _happy_facts(decoded, fps, max_seconds, recipe.min_frames)
    if facts is not None:
        return decoded, detector, facts
    clock = time.perf_counter()
    cpu.add("processes", 1)
    with cpu.stage("probe"):
        info = _probe_checked(path)  # something is off: ffprobe says what, as precisely as it can
    timings["probe"] = time.perf_counter() - clock
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
    elif decoded.returncode != 0:
        raise ClipError(f"cannot decode: {decoded.stderr_line}")
    return decoded, detector, info


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


def _check_decoded(
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


def _check_file(path: Path) -> None:
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
