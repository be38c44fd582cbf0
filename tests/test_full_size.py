"""Frames at full size whatever the clip's duration, boxes in the source's pixels, and a
memory that does not grow with the clip's length (docs/pipeline.md, "Decoding")."""

from __future__ import annotations

import tracemalloc
from pathlib import Path

import numpy as np
import pytest
from installed import needs_landmarks
from media_fixtures import SIZE, face_centre, face_frames, make_clip

from benchmarks.bench_clip_memory import framed
from pipeline import media
from pipeline.clip import clip_stream
from pipeline.clip.clip_stream import LOOK_AHEAD, MIN_CORE, core_frames
from pipeline.clip.transform import ClipTensors, preprocess_clip
from schemas.recipe import Recipe

RECIPE = Recipe()


@pytest.fixture(scope="module")
def clips(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("full_size")
    face = make_clip(folder / "face.mp4")
    return {
        "hd_2s": framed(face, folder / "hd_2s.mp4", 1920, 1080, 2.0),
        "hd_8s": framed(face, folder / "hd_8s.mp4", 1920, 1080, 8.0),
        "uhd_2s": framed(face, folder / "uhd_2s.mp4", 3840, 2160, 2.0),
    }


def _traced(path: Path) -> tuple[ClipTensors, int]:
    """The clip's tensors and the most bytes held at once while making them, decoded by
    the ffmpeg process: its frames are numpy's, which tracemalloc sees (PyAV's frames
    live in FFmpeg's buffers, which it does not; benchmarks/bench_clip_memory.py
    measures the whole worker)."""
    tracemalloc.start()
    try:
        out = preprocess_clip(path, RECIPE, in_process=False)
        return out, tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


@pytest.fixture(scope="module")
def hd(clips: dict[str, Path]) -> dict[str, tuple[ClipTensors, int]]:
    return {name: _traced(clips[name]) for name in ("hd_2s", "hd_8s")}


def test_the_rule_scales_only_frames_over_1080p_pixels() -> None:
    assert media.decode_size(1920, 1080) == (1920, 1080)
    assert media.decode_size(1080, 1920) == (1080, 1920)  # a portrait keeps its size
    assert media.decode_size(224, 224) == (224, 224)
    assert media.decode_size(3840, 2160) == (1920, 1080)
    assert media.decode_size(7680, 4320) == (1920, 1080)
    assert media.decode_size(2560, 1440) == (1920, 1080)
    assert media.decode_scale(7680, 4320) == 0.25


def test_a_clip_decodes_at_one_scale_whatever_its_duration(
    hd: dict[str, tuple[ClipTensors, int]],
) -> None:
    for out, _ in hd.values():
        assert (out.source_width, out.source_height) == (1920, 1080)
        assert (out.decoded_width, out.decoded_height) == (1920, 1080)
        assert out.decode_scale == 1.0
    assert len(hd["hd_8s"][0].face) == 200 and len(hd["hd_2s"][0].face) == 50


def test_memory_does_not_grow_with_the_clip_length(
    hd: dict[str, tuple[ClipTensors, int]],
) -> None:
    """Four times the frames, at full size: the frames held at once are bounded by the
    look-ahead (core + LOOK_AHEAD + 1 frames), not by the clip; only the crops grow
    (their rows are reserved once, for the longest clip the recipe keeps)."""
    frame = 1920 * 1080 * 3
    short, long = hd["hd_2s"][1], hd["hd_8s"][1]
    crops = 150 * RECIPE.crop_size**2 * 3  # the 150 frames more the long clip keeps
    # Slack: a frame or two more in flight where the short clip ends (a read, the
    # detector's grey copy). Before, 52 frames were reserved for 2 s, 384 MiB for 8 s.
    assert long < short + crops + 4 * frame, f"{short:,} -> {long:,} bytes"
    reserved = (RECIPE.max_seconds * RECIPE.fps + 2) * RECIPE.crop_size**2 * 3  # crop rows
    assert core_frames(frame) == MIN_CORE
    bound = (MIN_CORE + LOOK_AHEAD + 8) * frame + reserved
    assert long < bound, f"{long:,} bytes held at once"


def test_a_4k_clip_is_decoded_at_half_size_and_boxed_in_its_own_pixels(
    clips: dict[str, Path],
) -> None:
    out = preprocess_clip(clips["uhd_2s"], RECIPE)
    assert (out.source_width, out.source_height) == (3840, 2160)
    assert (out.decoded_width, out.decoded_height) == (1920, 1080)
    assert out.decode_scale == 0.5 and out.decoded_by == "ffmpeg"  # PyAV takes up to 1080p
    assert out.face_boxes is not None and out.face_valid is not None
    scale = 2160 / SIZE  # face clip pixels -> source pixels
    centres = (out.face_boxes[:, :2] + out.face_boxes[:, 2:]) / 2
    expected = np.array([face_centre(t % 50) for t in range(len(centres))]) * scale
    expected[:, 0] += (3840 - 2160) / 2
    valid = out.face_valid.astype(bool)
    assert valid.mean() > 0.9
    error = np.abs(centres[valid] - expected[valid]).max(axis=1)
    assert np.median(error) < 0.1 * (113 * scale), np.median(error)


def test_both_decoders_give_a_1080p_clip_alike(clips: dict[str, Path]) -> None:
    kwargs = {"fps": 25, "sample_rate": 16000, "max_seconds": 60, "keep_frames": False}
    inside = media.decode_in_process(clips["hd_2s"], **kwargs)  # type: ignore[arg-type]
    process = media.decode_any(clips["hd_2s"], **kwargs)  # type: ignore[arg-type]
    assert inside is not None and inside.decoder == "pyav"
    for decoded in (inside, process):
        assert decoded.num_frames == 50 and len(decoded.frames) == 0  # none kept
        assert decoded.frame_size == (1920, 1080) and decoded.source_size == (1920, 1080)
    assert inside.last_frame is not None and process.last_frame is not None
    np.testing.assert_array_equal(inside.last_frame, process.last_frame)
    assert media.decode_in_process(clips["uhd_2s"], **kwargs) is None  # type: ignore[arg-type]


@needs_landmarks
def test_runs_of_16_frames_give_what_the_whole_clip_gives(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A 224² clip fits whole in the frames a stream may hold; made to stream in runs of
    MIN_CORE frames (as 1080p does) through a cut, it gives the same outputs, within a
    pixel where a landmark fit saw its box before the box was final."""
    frames = face_frames(80)
    frames[40:] = frames[40:, :, ::-1]  # the face mirrored: a cut at frame 40
    clip = make_clip(tmp_path / "cut.mp4", frames)
    recipe = Recipe(landmarks=True, streams=("face", "mouth"))
    whole = preprocess_clip(clip, recipe)
    monkeypatch.setattr(clip_stream, "HELD_BYTES", 0)  # runs of MIN_CORE frames
    runs = preprocess_clip(clip, recipe)
    assert whole.shot_cuts == runs.shot_cuts == 1
    for name in ("face_valid", "face_boxes", "face"):
        np.testing.assert_array_equal(getattr(whole, name), getattr(runs, name), err_msg=name)
    assert whole.landmarks is not None and runs.landmarks is not None
    assert whole.mouth is not None and runs.mouth is not None
    valid = whole.face_valid.astype(bool)  # type: ignore[union-attr]
    moved = np.abs(whole.landmarks[valid].astype(float) - runs.landmarks[valid]).max()
    assert moved < 1.0, moved
    assert np.abs(whole.mouth.astype(int) - runs.mouth).mean() < 2.0
    assert whole.landmark_rate == runs.landmark_rate
