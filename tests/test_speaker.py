"""The speaking face: of two faces side by side, the one whose lips follow the voice is kept.

Real media: two synthetic clips of different identities (each with its own speech and
lips synced to it) stacked side by side by ffmpeg (448 × 224), with the audio of the
left one, of the right one, or of a third identity (a voice-over); 2 s each.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import numpy as np
import pytest
from installed import needs_landmarks
from PIL import Image, ImageDraw

import schemas
from pipeline.clip.faces import face_detector
from pipeline.clip.landmarks import fit_shape
from pipeline.clip.mouth import REFERENCE_FACE
from pipeline.clip.speaker import MAX_SHAPE_DISTANCE, NO_SPEAKER_CORRELATION, shape_distance
from pipeline.clip.transform import ClipTensors, preprocess_clip
from pipeline.synth import SynthSummary
from schemas.recipe import Recipe

pytestmark = needs_landmarks
HALF = 224  # px: the width of each stacked clip


def _stack(left: Path, right: Path, voice: Path, out: Path) -> Path:
    """``left`` and ``right`` side by side with ``voice``'s audio, 2 s."""
    subprocess.run(
        ["ffmpeg", "-nostdin", "-v", "error", "-y", "-i", str(left), "-i", str(right),
         "-i", str(voice), "-filter_complex", "[0:v][1:v]hstack=inputs=2[v]",
         "-map", "[v]", "-map", "2:a", "-t", "2", "-c:v", "libx264", "-preset", "ultrafast",
         "-pix_fmt", "yuv420p", "-c:a", "aac", str(out)],
        check=True, timeout=60,
    )  # fmt: skip
    return out


@pytest.fixture(scope="module")
def stacked_clips(synth_dataset: SynthSummary, tmp_path_factory: pytest.TempPathFactory) -> dict:
    """The stacked clips: 'left' and 'right' speak, 'voiceover' is a third voice."""
    real = sorted((synth_dataset.root / "RealVideo-RealAudio").rglob("*.mp4"))
    left, right, other = real[0], real[1], real[2]
    assert len({left.parent.name, right.parent.name, other.parent.name}) == 3
    folder = tmp_path_factory.mktemp("speaker")
    voices = {"left": left, "right": right, "voiceover": other}
    return {
        name: _stack(left, right, voice, folder / f"{name}.mp4") for name, voice in voices.items()
    }


@pytest.fixture(scope="module")
def stacked(stacked_clips: dict) -> dict:
    """The processed stacked clips."""
    return {name: preprocess_clip(path, Recipe()) for name, path in stacked_clips.items()}


def test_a_streamed_clip_decodes_again_for_the_choice_and_chooses_alike(
    stacked_clips: dict, stacked: dict, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Frames too large to hold a clip whole (here: the stream made to hold 45 frames of
    nothing) are gone when the choice is made: the clip is decoded again for the fits
    (and once more for the crops where the choice moved the track), in-process or by
    the process, with the same choice and crops."""
    from pipeline.clip import clip_stream

    monkeypatch.setattr(clip_stream, "HELD_BYTES", 0)
    for in_process in (True, False):
        out = preprocess_clip(stacked_clips["left"], Recipe(), in_process=in_process)
        assert out.speaker is not None and stacked["left"].speaker is not None
        assert out.speaker.face_tracks == stacked["left"].speaker.face_tracks == 2
        assert out.speaker.correlation == pytest.approx(stacked["left"].speaker.correlation)
        np.testing.assert_array_equal(out.face_boxes, stacked["left"].face_boxes)
        np.testing.assert_array_equal(out.face, stacked["left"].face)
        # the decode, the fits' decode, and the crops' (the choice moved the track here)
        assert out.cpu_seconds.get("processes", 0) == (0 if in_process else 3)


def _centres_x(out: ClipTensors) -> np.ndarray:
    assert out.face_boxes is not None
    return np.asarray((out.face_boxes[:, 0] + out.face_boxes[:, 2]) / 2)


@pytest.mark.parametrize("side", ["left", "right"])
def test_the_face_kept_is_the_one_whose_lips_follow_the_voice(stacked: dict, side: str) -> None:
    out = stacked[side]
    centres = _centres_x(out)
    on_left = centres < HALF
    assert on_left.all() if side == "left" else not on_left.any(), centres
    assert out.face_valid is not None and out.face_valid.all()
    assert out.speaker is not None and out.speaker.face_tracks == 2
    assert out.speaker.correlation is not None
    assert out.speaker.correlation > NO_SPEAKER_CORRELATION
    assert out.speaker.no_speaker is False


def test_a_voice_over_follows_no_face_and_is_flagged(stacked: dict) -> None:
    speaker = stacked["voiceover"].speaker
    assert speaker is not None and speaker.face_tracks == 2
    assert speaker.correlation is not None
    assert speaker.correlation < NO_SPEAKER_CORRELATION
    assert speaker.correlation < min(stacked[s].speaker.correlation for s in ("left", "right"))
    assert speaker.no_speaker is True


def test_a_caption_fit_is_no_face_shape(synth_dataset: SynthSummary) -> None:
    """dlib fits 68 points to anything; on a caption they are far from a face's shape."""
    assert shape_distance(REFERENCE_FACE) < 1e-6
    frame = _first_frame(next((synth_dataset.root / "RealVideo-RealAudio").rglob("*.mp4")))
    (rect,) = face_detector()(frame, 0)
    box = np.array([rect.left(), rect.top(), rect.right() + 1, rect.bottom() + 1], np.float64)
    assert shape_distance(fit_shape(frame, box)) < MAX_SHAPE_DISTANCE / 2
    caption = Image.new("RGB", (300, 200), (20, 20, 120))
    ImageDraw.Draw(caption).text((10, 60), "BREAKING", fill=(255, 255, 255), font_size=40)
    text = np.asarray(caption)
    for x0 in (10, 100, 150):
        box = np.array([x0, 40, x0 + 130, 170], np.float64)
        assert shape_distance(fit_shape(text, box)) > MAX_SHAPE_DISTANCE


def _first_frame(path: Path) -> np.ndarray:
    raw = subprocess.run(
        ["ffmpeg", "-nostdin", "-v", "error", "-i", str(path), "-frames:v", "1",
         "-f", "rawvideo", "-pix_fmt", "rgb24", "-"],
        check=True, capture_output=True, timeout=60,
    ).stdout  # fmt: skip
    return np.frombuffer(raw, np.uint8).reshape(224, 224, 3)


def test_single_face_clips_record_one_track_and_no_correlation(ingested_store: Path) -> None:
    rows = [r for r in schemas.read_manifest(ingested_store).to_pylist() if r["status"] == "ok"]
    assert rows and all(r["face_tracks"] == 1 for r in rows)
    assert all(r["speaker_correlation"] is None and r["no_speaker"] is None for r in rows)
