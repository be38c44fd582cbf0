"""One clip in, its tensors out: probe → decode → faces → audio features → silence trim.

This is the per-clip function that ingest runs in one Ray task per clip. It holds
no state between clips, writes no file, and turns every bad input into a
:class:`~pipeline.errors.ClipError` whose message is the manifest's reason.

Choices worth knowing:

- One ffmpeg process decodes the video at ``recipe.fps`` (its ``fps`` filter, any
  input rate) and the audio at ``recipe.sample_rate`` mono, to two pipes; faces are
  detected on the stride frames while the rest of the video is still decoding.
  (Two processes, one per stream, cost one more ffmpeg start-up per clip, which is
  a good part of the decode time of a 224² clip of a few seconds.)
- A clip needs at least :data:`MIN_FRAMES` (2) frames: one 40 ms frame carries no
  speech and no motion, so ``'too short: 1 frame'`` is a failure, as is a clip whose
  video decodes to fewer than :data:`MIN_DECODED_FRACTION` of the frames its
  duration promises (a truncated file).
- Clips longer than ``max_seconds`` (default 60 s) are cut there (ffmpeg ``-t``),
  not failed: FakeAVCeleb clips last seconds, so only a stray file is that long.
  ``cut`` in the result records it. Frames larger than a memory budget are scaled
  down by ffmpeg before they reach Python; face crops are what is kept anyway.
- Silence trimming, when on, cuts whole frames from the front of both tensors and
  never leaves fewer than :data:`MIN_FRAMES`.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from pipeline import media
from pipeline.audio_features import frame_features
from pipeline.errors import ClipError
from pipeline.faces import StrideDetector, crop_faces, detection_factor
from pipeline.silence import leading_silence_frames
from schemas.store import Recipe

MIN_FRAMES = 2
MIN_DECODED_FRACTION = 0.9
DEFAULT_MAX_SECONDS = 60.0


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
    timings: dict[str, float] = field(default_factory=dict)  # seconds per stage


def preprocess_clip(
    path: Path,
    recipe: Recipe,
    *,
    max_seconds: float = DEFAULT_MAX_SECONDS,
    frame_budget_bytes: int = media.DEFAULT_FRAME_BUDGET_BYTES,
) -> ClipTensors:
    """Face crops ``(T, S, S, 3)`` uint8 and audio features ``(T, 104)`` float32 of one clip.

    Raises :class:`ClipError` for every bad input; never leaves files behind.
    """
    path = Path(path)
    timings: dict[str, float] = {}
    clock = time.perf_counter()
    _check_file(path)
    info = media.probe(path)
    if not info.has_video:
        raise ClipError("no video stream")
    if not info.has_audio:
        raise ClipError("no audio stream")
    if info.width < 1 or info.height < 1:
        raise ClipError("cannot decode: video stream has no frame size")
    timings["probe"] = time.perf_counter() - clock

    fps = float(recipe.fps)
    seconds = info.duration_s if math.isfinite(info.duration_s) else max_seconds
    expected = math.floor(min(seconds, max_seconds) * fps)
    timeout = media.decode_timeout_s(min(seconds, max_seconds))
    width, height = media.decode_size(info, fps, max_seconds, frame_budget_bytes)
    detector = StrideDetector(stride=recipe.face_stride, factor=detection_factor(height, width))

    clock = time.perf_counter()
    decoded = media.decode_clip(
        path, (width, height), fps, recipe.sample_rate, max_seconds, timeout, expected,
        on_frame=detector,
    )  # fmt: skip
    timings["detect"] = detector.seconds
    timings["decode"] = time.perf_counter() - clock - detector.seconds
    frames, signal = decoded.frames, decoded.samples

    num_frames = len(frames)
    if num_frames == 0 and expected == 0:
        raise ClipError("too short: 0 frames")
    if num_frames < MIN_DECODED_FRACTION * expected - 2:
        raise ClipError(
            f"cannot decode: truncated, {num_frames} of ~{expected} frames ({decoded.stderr_line})"
        )
    if num_frames < MIN_FRAMES:
        raise ClipError(f"too short: {num_frames} frame{'s' if num_frames != 1 else ''}")
    if signal.size == 0:
        raise ClipError("no audio samples decoded")
    detector.finish(num_frames - 1, frames[-1])
    if detector.hits == 0:
        raise ClipError("no face detected in any frame")

    clock = time.perf_counter()
    crops = crop_faces(frames, detector.track(num_frames), recipe.crop_size)
    del frames, decoded  # the full frames are the clip's largest buffer; crops are all we keep
    timings["crop"] = time.perf_counter() - clock

    clock = time.perf_counter()
    audio = frame_features(signal, recipe.sample_rate, num_frames, recipe.features)
    timings["features"] = time.perf_counter() - clock

    trimmed = 0
    if recipe.trim_silence:
        trimmed = leading_silence_frames(
            signal, recipe.sample_rate, fps, num_frames, min_keep=MIN_FRAMES
        )
        crops, audio = crops[trimmed:], audio[trimmed:]

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
        timings=timings,
    )


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
