"""Each recipe setting that shapes the stored tensors reaches the stage that uses it.

One short real clip (40 face frames, speech after 0.4 s of silence) goes through
``preprocess_clip`` with the default recipe and with one setting changed at a time;
the change must show in the tensors or the verdict. A stage that read its own
constant instead of the recipe would give the default's result and fail here.
"""

from __future__ import annotations

import subprocess
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from media_fixtures import face_frames, make_clip
from PIL import Image

from pipeline.clip.transform import ClipTensors, preprocess_clip
from pipeline.errors import ClipError
from schemas.recipe import Recipe

NUM_FRAMES = 40
TRIM = Recipe(trim_silence=True)


@pytest.fixture(scope="module")
def clip(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("wiring") / "late speech.mp4"
    return make_clip(path, face_frames(NUM_FRAMES), leading_silence_s=0.4)


@pytest.fixture(scope="module")
def default(clip: Path) -> ClipTensors:
    """The clip with the default recipe, silence trimming on: ``(T, 112, 112, 3)``."""
    return preprocess_clip(clip, TRIM)


def _with(clip: Path, **settings: object) -> ClipTensors:
    return preprocess_clip(clip, replace(TRIM, **settings))


def _centre_zoom(crops: np.ndarray, fraction: float) -> np.ndarray:
    """The centre ``fraction`` of each crop of ``crops`` (T, S, S, 3), resized back to S."""
    size = crops.shape[1]
    lo, hi = size * (1 - fraction) / 2, size * (1 + fraction) / 2
    return np.stack([
        np.asarray(Image.fromarray(crop).resize((size, size), Image.Resampling.BILINEAR,
                                                box=(lo, lo, hi, hi)))
        for crop in crops
    ])  # fmt: skip


def test_face_margin_sets_the_crop_side(clip: Path, default: ClipTensors) -> None:
    wide = _with(clip, face_margin=0.6)
    assert wide.face.shape == default.face.shape
    # The crop side is (1 + margin) x the same box: the default crop is the centre
    # 1.3 / 1.6 of the wider one.
    error = np.abs(_centre_zoom(wide.face, 1.3 / 1.6).astype(float) - default.face).mean()
    assert error < 8 < np.abs(wide.face.astype(float) - default.face).mean()


def test_face_smooth_sets_the_centre_window(clip: Path, default: ClipTensors) -> None:
    assert not np.array_equal(_with(clip, face_smooth=21).face, default.face)
    # Below 2 x stride + 1 (11 frames) the window is raised to that: the same crops.
    np.testing.assert_array_equal(_with(clip, face_smooth=3).face, default.face)


def test_face_size_smooth_sets_the_size_window(clip: Path, default: ClipTensors) -> None:
    assert not np.array_equal(_with(clip, face_size_smooth=1).face, default.face)


def test_silence_threshold_sets_where_speech_starts(clip: Path, default: ClipTensors) -> None:
    # Speech starts at the first frame within the threshold of the speech level: a
    # tighter threshold finds it later, a looser one earlier.
    strict, loose = _with(clip, silence_threshold_db=10.0), _with(clip, silence_threshold_db=60.0)
    assert strict.trimmed_frames > default.trimmed_frames > loose.trimmed_frames
    for out in (strict, loose):
        assert out.face.shape[0] == out.audio.shape[0] == NUM_FRAMES - out.trimmed_frames


def test_silent_clip_level_turns_trimming_off(clip: Path, default: ClipTensors) -> None:
    assert default.trimmed_frames >= 10  # the 0.4 s of silence are trimmed by default
    quiet = _with(clip, silent_clip_db=120.0)  # the speech is below this level: "silent"
    assert quiet.trimmed_frames == 0 and quiet.face.shape[0] == NUM_FRAMES


def test_min_frames_fails_a_shorter_clip(clip: Path) -> None:
    assert preprocess_clip(clip, Recipe(min_frames=NUM_FRAMES)).face.shape[0] == NUM_FRAMES
    with pytest.raises(ClipError, match=f"^too short: {NUM_FRAMES} frames$"):
        preprocess_clip(clip, Recipe(min_frames=NUM_FRAMES + 1))


def test_min_frames_bounds_the_trim(clip: Path, default: ClipTensors) -> None:
    keep = NUM_FRAMES - 5
    assert NUM_FRAMES - default.trimmed_frames < keep  # the default trims past it
    out = _with(clip, min_frames=keep)
    assert out.trimmed_frames == 5 and out.face.shape[0] == out.audio.shape[0] == keep


def test_max_seconds_cuts_the_clip(clip: Path) -> None:
    out = preprocess_clip(clip, Recipe(max_seconds=1.0))
    assert out.cut and out.face.shape[0] == out.audio.shape[0] == 25
    # The keyword still overrides the recipe for a caller that asks for another cut.
    assert not preprocess_clip(clip, Recipe(max_seconds=1.0), max_seconds=60.0).cut


def test_min_audio_coverage_sets_the_failure_line(clip: Path, tmp_path: Path) -> None:
    short = tmp_path / "short audio.mp4"  # 1.0 s of the audio under 1.6 s of video
    subprocess.run(
        ["ffmpeg", "-nostdin", "-v", "error", "-y", "-i", f"file:{clip}", "-c:v", "copy",
         "-af", "atrim=end=1.0", "-c:a", "aac", f"file:{short}"],
        check=True, timeout=60,
    )  # fmt: skip
    with pytest.raises(ClipError, match=r"^audio covers 6\d% of the video .*minimum 90%\)$"):
        preprocess_clip(short, Recipe())
    with pytest.raises(ClipError, match=r"minimum 70%\)$"):
        preprocess_clip(short, Recipe(min_audio_coverage=0.7))
    out = preprocess_clip(short, Recipe(min_audio_coverage=0.5))
    assert out.audio_coverage == pytest.approx(1.0 / 1.6, abs=0.05)
