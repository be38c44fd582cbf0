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
  fails or logs an error, when the frame size changes mid-stream, when the
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
  the result says where a clip's CPU went (:mod:`pipeline.clip.stage_cpu`).
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
  ``cut`` in the result records it.
- Frames are decoded at their displayed size unless they hold more pixels than
  1080p (:data:`pipeline.media.MAX_DECODE_PIXELS`: then scaled to that many, aspect
  kept), whatever the clip's duration; ``decoded_width``, ``decoded_height`` and
  ``decode_scale`` record it, and ``face_boxes`` are in the source's pixels. No
  decode keeps its frames: they stream through a
  :class:`~pipeline.clip.clip_stream.ClipStream`, which holds at most 45 of 1080p
  and keeps the crops, so a worker's memory does not grow with the clip's length.
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
  were cut from), ``face_valid`` (which frames have a face), ``shot_cuts`` and
  ``faceless_frames``; with ``recipe.landmarks`` the landmarks of every frame and
  their flags (:mod:`pipeline.clip.landmarks`), and with the ``mouth`` stream the aligned
  mouth crops (:mod:`pipeline.clip.mouth`), all from the frames already decoded. None of
  the landmark arrays changes a byte of ``video`` or ``audio``.
- The face is tracked shot by shot: the cuts are found in the decoded frames
  (:mod:`pipeline.clip.shots`), the detector also runs on both sides of each cut, and no
  box is interpolated or smoothed across one (:mod:`pipeline.clip.faces`). Frames without
  a face keep the crop the track holds there; ``face_valid`` marks them and their
  landmarks are NaN.
"""

from __future__ import annotations

import functools
import math
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from pipeline import media
from pipeline.clip.audio_features import frame_features
from pipeline.clip.clip_stream import ClipStream, Replay, StreamResult, charge
from pipeline.clip.faces import crop_boxes
from pipeline.clip.head_pose import head_pose
from pipeline.clip.landmarks import landmark_jitter, to_crop
from pipeline.clip.silence import leading_silence_frames
from pipeline.clip.speaker import SpeakerChoice
from pipeline.clip.speaking_face import source_boxes, speaking_face
from pipeline.clip.speech import speech_fraction
from pipeline.clip.stage_cpu import StageCpu
from pipeline.clip.transform_decode import (
    SourceFacts,
    check_decoded,
    check_file,
    decode_with_faces,
)
from pipeline.errors import ClipError
from schemas.clips import EXTRA_ARRAYS
from schemas.recipe import Recipe
from schemas.streams import CLIP_ARRAY_TABLE

#: Defaults of the recipe's ``min_frames`` and ``max_seconds`` (the recipe is their one
#: source): a clip with fewer frames fails, a longer one is cut.
MIN_FRAMES = Recipe.min_frames
DEFAULT_MAX_SECONDS = Recipe.max_seconds
#: Default of the recipe's ``min_audio_coverage``: the least fraction of the video
#: frames the audio must cover (and of the audio the video must cover) for a clip to
#: be stored.
MIN_AUDIO_COVERAGE = Recipe.min_audio_coverage
#: A stream may overhang the other by this much whatever its length: AAC ends on
#: whole 1024-sample frames (64 ms at 16 kHz) after its priming, so a 0.4 s clip's
#: audio lasts 0.45 s without anything missing.
COVERAGE_SLACK_S = 0.1


@dataclass
class ClipTensors:
    """The tensors and facts of one processed clip."""

    face: np.ndarray  # (T, S, S, 3) uint8 face crops, S = recipe.crop_size (on disk: video)
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
    # (T, 4) float32: the square each crop was cut from, in the source's displayed pixels
    # (the decoded frame's divided by the decode scale, per axis).
    face_boxes: np.ndarray | None = None
    landmarks: np.ndarray | None = None  # (T, 68, 2) float16 in crop px (recipe.landmarks)
    mouth: np.ndarray | None = None  # (T, 96, 96) uint8 (the recipe's "mouth" stream)
    landmark_rate: float | None = None  # confident landmark fits / fits (None: no landmarks)
    landmark_jitter: float | None = None  # mean per-frame landmark motion, crop px
    shot_cuts: int = 0  # cuts found in the stored frames (pipeline.clip.shots)
    face_valid: np.ndarray | None = None  # (T,) uint8: 1 = the frame has a face
    speech_fraction: float = 0.0  # stored frames that sound like speech (pipeline.clip.speech)
    decoded_by: str = "ffmpeg"  # the decoder that gave the frames: pyav | ffmpeg (a process)
    speaker: SpeakerChoice | None = None  # the speaking face's choice (pipeline.clip.speaker)
    # The decoded frames' size, and decoded width / source width: the rule of
    # pipeline.media.MAX_DECODE_PIXELS (1.0 up to 1080p's pixels), never the duration.
    decoded_width: int = 0
    decoded_height: int = 0
    decode_scale: float = 1.0

    def extra_arrays(self) -> dict[str, np.ndarray]:
        """``schemas.write_clip``'s ``extra``: each array beside ``face`` (on disk ``video``)
        and ``audio``, by path, is the attribute of its name in
        :data:`schemas.streams.CLIP_ARRAY_TABLE`."""
        named = {a.path: getattr(self, a.name) for a in CLIP_ARRAY_TABLE if a.path in EXTRA_ARRAYS}
        return {path: data for path, data in named.items() if data is not None}

    @functools.cached_property
    def pose(self) -> np.ndarray | None:
        """``(T, 4)`` float32 yaw, pitch, roll, residual per frame (:mod:`pipeline.clip.head_pose`),
        fitted once: the manifest's flags and the stored array both read it."""
        return None if self.landmarks is None else head_pose(self.landmarks)

    @property
    def faceless_frames(self) -> int:
        """Stored frames without a face (0 when ``face_valid`` is not known)."""
        return 0 if self.face_valid is None else int(np.count_nonzero(self.face_valid == 0))


def preprocess_clip(
    path: Path,
    recipe: Recipe,
    *,
    max_seconds: float | None = None,
    min_audio_coverage: float | None = None,
    in_process: bool | None = None,
) -> ClipTensors:
    """Face crops ``(T, S, S, 3)`` uint8 and audio features ``(T, 104)`` float32 of one clip.

    ``S`` is ``recipe.crop_size``. ``max_seconds`` and ``min_audio_coverage`` default
    to the recipe's; pass them only to try another value without another recipe
    (what a store holds is made with its recipe's). ``in_process`` (default: the
    recipe's ``decoder`` is ``pyav``) decodes a clean clip inside this process
    (:func:`pipeline.media.decode_in_process`: the same frames, audio within one
    16-bit step, no process start-up), anything else with an ffmpeg process; either
    streams the frames (:mod:`pipeline.clip.clip_stream`). Raises :class:`ClipError`
    for every bad input; never leaves files behind.
    """
    max_seconds = recipe.max_seconds if max_seconds is None else max_seconds
    in_process = recipe.decoder == "pyav" if in_process is None else in_process
    coverage = recipe.min_audio_coverage if min_audio_coverage is None else min_audio_coverage
    path = Path(path)
    timings: dict[str, float] = {"probe": 0.0}
    cpu = StageCpu()
    check_file(path)
    decoded, stream, info, span, replay = _decode_checked(
        path, recipe, max_seconds, coverage, in_process, timings, cpu
    )
    signal, decoded_by, num_frames = decoded.samples, decoded.decoder, decoded.num_frames
    faces, speaker = speaking_face(stream, replay, signal, decoded_by, recipe, timings, cpu)
    streams, rate = _landmark_streams(faces, recipe)
    audio = _features(signal, recipe, num_frames, timings, cpu)
    height, width = stream.shape
    boxes = source_boxes(crop_boxes(faces.track, recipe.face_margin), (width, height), info)
    per_frame = {"face": faces.crops, "audio": audio, "face_boxes": boxes, **streams}
    trimmed, arrays = _trim_silence(signal, recipe, num_frames, per_frame)
    landmarks = arrays.get("landmarks")
    cuts = faces.cuts[faces.cuts > trimmed] - trimmed  # cuts between two stored frames
    return ClipTensors(
        face=np.ascontiguousarray(arrays["face"]),
        audio=np.ascontiguousarray(arrays["audio"], dtype=np.float32),
        source_fps=info.fps,
        source_duration_s=info.duration_s,
        source_width=info.width,
        source_height=info.height,
        face_detection_rate=stream.detector.detection_rate,
        trimmed_frames=trimmed,
        cut=math.isfinite(info.duration_s) and info.duration_s > max_seconds + 1.0 / recipe.fps,
        audio_offset_s=span.offset_s,
        audio_coverage=span.audio_coverage,
        timings=timings,
        cpu_seconds=cpu.seconds,
        face_boxes=np.ascontiguousarray(arrays["face_boxes"]),
        landmarks=landmarks,
        mouth=arrays.get("mouth"),
        landmark_rate=rate,
        landmark_jitter=None if landmarks is None else landmark_jitter(landmarks, cuts),
        shot_cuts=len(cuts),
        face_valid=np.ascontiguousarray(arrays["face_valid"]),
        speech_fraction=_speech(signal, recipe, num_frames, trimmed, cpu),
        decoded_by=decoded_by,
        speaker=speaker,
        decoded_width=width,
        decoded_height=height,
        decode_scale=width / info.width if info.width else 1.0,
    )


def _decode_checked(
    path: Path,
    recipe: Recipe,
    max_seconds: float,
    min_audio_coverage: float,
    in_process: bool,
    timings: dict[str, float],
    cpu: StageCpu,
) -> tuple[media.DecodedClip, ClipStream, SourceFacts | media.MediaInfo, TimelineSpan, Replay]:
    """The first step: decode into a clip stream (:mod:`pipeline.clip.transform_decode`), check
    it, and make the outputs of the frames it still holds.

    Raises :class:`ClipError` for a bad decode, a stream that leaves the other mostly
    uncovered, or a clip with no face in any frame. Adds to ``timings`` and ``cpu``.
    """
    fps = float(recipe.fps)
    decoded, stream, info, replay = decode_with_faces(
        path, recipe, fps, max_seconds, timings, cpu, in_process
    )
    if math.isfinite(decoded.audio_cpu_s):
        cpu.add("audio_decode", decoded.audio_cpu_s)  # part of 'decode', told apart
    num_frames = decoded.num_frames
    check_decoded(decoded, info.duration_s, fps, max_seconds, recipe.min_frames)
    span = TimelineSpan.of(decoded, num_frames, fps, recipe.sample_rate)
    span.check(min_audio_coverage)
    before, walls = stream.spent(), stream.walls()
    stream.end()
    if stream.detector.hits == 0:
        raise ClipError("no face detected in any frame")
    stream.finish()
    charge(stream, before, walls, timings, cpu, from_decode=False)
    return decoded, stream, info, span, replay


def _features(
    signal: np.ndarray, recipe: Recipe, num_frames: int, timings: dict[str, float], cpu: StageCpu
) -> np.ndarray:
    """The ``(T, 104)`` audio features of ``signal`` under ``num_frames`` frames; adds
    'features' to ``timings`` and ``cpu``."""
    clock = time.perf_counter()
    with cpu.stage("features"):
        audio = frame_features(signal, recipe.sample_rate, num_frames, recipe.features)
    timings["features"] = time.perf_counter() - clock
    return audio


def _speech(signal: np.ndarray, recipe: Recipe, frames: int, trimmed: int, cpu: StageCpu) -> float:
    """The stored frames' speech fraction (:mod:`pipeline.clip.speech`); adds 'speech' to ``cpu``."""
    with cpu.stage("speech"):
        return speech_fraction(signal, recipe.sample_rate, float(recipe.fps), frames, trimmed)


def _trim_silence(
    signal: np.ndarray, recipe: Recipe, num_frames: int, arrays: dict[str, np.ndarray]
) -> tuple[int, dict[str, np.ndarray]]:
    """The leading silent frames' count, and ``arrays`` (every per-frame array of the clip,
    by its name in :data:`schemas.streams.CLIP_ARRAY_TABLE`, each ``(T, ...)``) without them.

    One rule for every array, so an array added to the table is trimmed with the others.
    Only with ``recipe.trim_silence`` (else 0 and the arrays as they are); never leaves
    fewer than ``recipe.min_frames``.
    """
    if not recipe.trim_silence:
        return 0, arrays
    trimmed = leading_silence_frames(
        signal, recipe.sample_rate, float(recipe.fps), num_frames,
        threshold_db=recipe.silence_threshold_db, min_keep=recipe.min_frames,
        silent_clip_db=recipe.silent_clip_db,
    )  # fmt: skip
    return trimmed, {name: data[trimmed:] for name, data in arrays.items()}


def _landmark_streams(
    faces: StreamResult, recipe: Recipe
) -> tuple[dict[str, np.ndarray], float | None]:
    """The per-frame arrays of a clip besides crops and audio, and its confident-fit rate.

    The arrays: ``landmarks`` (T, 68, 2) float16 in crop pixels (NaN on frames without
    a face) and, with the mouth stream, ``mouth`` (T, 96, 96) uint8 (black there);
    none (and no rate) without ``recipe.landmarks``. Always ``face_valid`` (T,) uint8,
    1 = the frame has a face.
    """
    out: dict[str, np.ndarray] = {"face_valid": faces.valid.astype(np.uint8)}
    if not recipe.landmarks or faces.points is None:
        return out, None
    boxes = crop_boxes(faces.track, recipe.face_margin)
    out["landmarks"] = to_crop(faces.points, boxes, recipe.crop_size).astype(np.float16)
    if faces.mouth is not None:
        out["mouth"] = faces.mouth
    return out, faces.confident / faces.fits if faces.fits else 0.0


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
