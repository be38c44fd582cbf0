"""Shot cuts found in the frames, the face tracked shot by shot, frames without a face.

Real media: two synthetic clips of different identities cut together by ffmpeg, the
second shot's face moved 96 px to the right (each shot padded to 320 × 224 on the
other side), with or without five black frames between the shots.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import numpy as np
import pytest
from installed import needs_landmarks
from media_fixtures import face_frames, flash_beep_clip

import schemas
from pipeline import media
from pipeline.clip.shots import find_cuts
from pipeline.clip.transform import ClipTensors, preprocess_clip
from pipeline.report.frame_strips import shot_edges
from pipeline.synth import SynthSummary
from schemas.recipe import Recipe
from trainer.data.dataset import ClipInfo, WindowDataset

SHOT = 30  # frames of each shot: the cut is at frame 30
SHIFT = 96  # px the second shot's face lies right of the first's
BLACK = 5  # black frames between the shots of the second clip


def _ffmpeg(*args: str) -> None:
    subprocess.run(["ffmpeg", "-nostdin", "-v", "error", "-y", *args], check=True, timeout=60)


def _cut_clip(first: Path, second: Path, out: Path, black: int) -> Path:
    """``first``'s first SHOT frames, ``black`` black frames, then ``second``'s, 320 × 224."""
    pad = "setpts=PTS-STARTPTS,pad=320:224:{}:0,setsar=1"
    graph = [
        f"[0:v]trim=end_frame={SHOT},{pad.format(0)}[v0]",
        f"[1:v]trim=end_frame={SHOT},{pad.format(SHIFT)}[v1]",
        f"[0:a]atrim=end={SHOT / 25},asetpts=PTS-STARTPTS[a0]",
        f"[1:a]atrim=end={SHOT / 25},asetpts=PTS-STARTPTS[a1]",
    ]
    inputs = ["-i", str(first), "-i", str(second)]
    parts = "[v0][a0]"
    if black:
        inputs += ["-f", "lavfi", "-i", f"color=black:s=320x224:r=25:d={black / 25}"]
        inputs += ["-f", "lavfi", "-i", "anullsrc=r=16000:cl=mono"]
        graph += ["[2:v]setsar=1[vb]", f"[3:a]atrim=end={black / 25}[ab]"]
        parts += "[vb][ab]"
    graph.append(f"{parts}[v1][a1]concat=n={3 if black else 2}:v=1:a=1[v][a]")
    _ffmpeg(*inputs, "-filter_complex", ";".join(graph), "-map", "[v]", "-map", "[a]",
            "-c:v", "libx264", "-preset", "ultrafast", "-pix_fmt", "yuv420p", "-c:a", "aac",
            str(out))  # fmt: skip
    return out


@pytest.fixture(scope="module")
def shot_clips(synth_dataset: SynthSummary, tmp_path_factory: pytest.TempPathFactory) -> dict:
    """The two source clips (real, different identities) and the cut clips made of them."""
    real = sorted((synth_dataset.root / "RealVideo-RealAudio").rglob("*.mp4"))
    first, second = real[0], real[1]
    assert first.parent.name != second.parent.name  # two identities
    folder = tmp_path_factory.mktemp("shots")
    return {
        "first": first,
        "second": second,
        "cut": _cut_clip(first, second, folder / "cut.mp4", 0),
        "black": _cut_clip(first, second, folder / "black.mp4", BLACK),
    }


def _centres(out: ClipTensors) -> np.ndarray:
    """``(T, 2)`` centres of the stored face squares."""
    assert out.face_boxes is not None
    return (out.face_boxes[:, :2] + out.face_boxes[:, 2:]) / 2


def test_a_cut_is_found_at_its_frame_and_no_box_slides_across_it(shot_clips: dict) -> None:
    recipe = Recipe()
    out = preprocess_clip(shot_clips["cut"], recipe)
    assert out.shot_cuts == 1 and out.faceless_frames == 0
    frames = media.decode_any(shot_clips["cut"], 25.0, 16000, 60.0).frames
    (cut,) = find_cuts(frames)
    assert abs(int(cut) - SHOT) <= 1
    # Each shot's boxes follow that shot's own face, as tracked in its source clip alone
    # (same frames; the second shot's moved right by SHIFT): none lies in between.
    alone = [_centres(preprocess_clip(shot_clips[k], recipe))[:SHOT] for k in ("first", "second")]
    expected = np.concatenate([alone[0], alone[1] + (SHIFT, 0)])
    boxes = out.face_boxes
    assert boxes is not None
    side = float(np.median(boxes[:, 2] - boxes[:, 0]))
    error = np.linalg.norm(_centres(out) - expected, axis=1)
    assert error.max() < 0.1 * side, (error.round(1), side)
    assert out.face_valid is not None and out.face_valid.all()
    # show's shot strip finds the cut from the stored boxes alone.
    assert [abs(int(e) - SHOT) <= 1 for e in shot_edges(out.face_valid, boxes)] == [True]


@needs_landmarks
def test_black_frames_between_shots_have_no_face_and_no_landmarks(
    shot_clips: dict, tmp_path: Path
) -> None:
    recipe = Recipe(landmarks=True, streams=("face", "mouth"))
    out = preprocess_clip(shot_clips["black"], recipe)
    gap = np.arange(SHOT, SHOT + BLACK)
    assert out.shot_cuts == 2 and out.faceless_frames == BLACK
    assert out.face_valid is not None and out.face_valid.dtype == np.uint8
    assert np.array_equal(np.flatnonzero(out.face_valid == 0), gap)
    assert out.landmarks is not None and out.mouth is not None
    faceless = np.isnan(out.landmarks.astype(np.float32)).all(axis=(1, 2))
    assert np.array_equal(np.flatnonzero(faceless), gap)
    assert np.isfinite(out.landmarks[out.face_valid == 1]).all()
    assert not out.mouth[gap].any() and out.mouth[out.face_valid == 1].mean() > 20
    assert shot_edges(out.face_valid, out.face_boxes).tolist() == [SHOT, SHOT + BLACK]
    assert out.landmark_jitter is not None and np.isfinite(out.landmark_jitter)
    # The store keeps the flags beside the crops; the trainer masks those frames.
    store = _store_with(tmp_path / "store", out, recipe, "black")
    assert np.array_equal(schemas.read_face_valid(store, "black"), out.face_valid == 1)
    stored = schemas.open_stream(store, "black", "landmarks")
    assert stored is not None and np.isnan(stored[gap]).all()
    info = ClipInfo("black", "RARV", "id0", 0, 0, 0, len(out.face))
    items = WindowDataset(store, [info], 16, train=False, eval_stride=16)
    mask = np.concatenate([items[i]["mask"].numpy() for i in range(len(items))])
    assert np.array_equal(np.flatnonzero(~mask[: len(out.face)]), gap)


def _store_with(folder: Path, out: ClipTensors, recipe: Recipe, clip_id: str) -> Path:
    """A new store at ``folder`` holding ``out`` as clip ``clip_id``."""
    schemas.create_store(folder, recipe)
    record = {"clip_id": clip_id, "faceless_frames": out.faceless_frames}
    schemas.write_clip(folder, clip_id, out.face, out.audio, record, recipe,
                       extra=out.extra_arrays())  # fmt: skip
    return folder


def test_a_clip_stored_without_face_valid_reads_as_a_face_in_every_frame(tmp_path: Path) -> None:
    recipe = Recipe()
    store = tmp_path / "store"
    schemas.create_store(store, recipe)
    video = np.zeros((6, recipe.crop_size, recipe.crop_size, 3), np.uint8)
    audio = np.zeros((6, schemas.AUDIO_CHANNELS), np.float32)
    schemas.write_clip(store, "old", video, audio, {"clip_id": "old"}, recipe)
    assert schemas.open_stream(store, "old", "face_valid") is None
    assert schemas.read_face_valid(store, "old").all()
    items = WindowDataset(store, [ClipInfo("old", "RARV", "id0", 0, 0, 0, 6)], 8, train=False)
    assert items[0]["mask"].tolist() == [True] * 6 + [False] * 2


def test_single_shot_clips_have_no_cut_and_a_face_in_every_frame(ingested_store: Path) -> None:
    rows = schemas.read_manifest(ingested_store).to_pylist()
    ok = [r for r in rows if r["status"] == schemas.STATUS_OK]
    assert ok and all(r["shot_cuts"] == 0 for r in ok)
    assert all(r["faceless_frames"] == 0 for r in ok)


def test_a_flash_or_a_fast_pan_is_no_cut(tmp_path: Path) -> None:
    flash = flash_beep_clip(tmp_path / "flash.mp4")  # one white frame at 1.2 s
    assert find_cuts(media.decode_any(flash, 25.0, 16000, 60.0).frames).size == 0
    # The camera pans 1.5 px a frame, whips 20 px a frame for eight frames, and pans on.
    frames = face_frames(170)
    pan = frames[np.r_[0:30, 30 + 13 * np.arange(1, 9), 135:165]]
    assert find_cuts(pan).size == 0


def test_predict_masks_the_frames_of_a_raw_video_without_a_face(shot_clips: dict) -> None:
    import torch

    from trainer.config.settings import load_config
    from trainer.evaluate.inference import window_scores, windows_from_arrays
    from trainer.model import MSCT

    out = preprocess_clip(shot_clips["black"], Recipe())
    assert out.face_valid is not None
    gap = np.arange(SHOT, SHOT + BLACK)
    batch = windows_from_arrays(out.face, out.audio, 16, 16, out.face_valid)
    mask = batch["mask"].numpy().reshape(-1)[: len(out.face)]
    assert np.array_equal(np.flatnonzero(~mask), gap)
    # Whatever the faceless frames show, the scores stay: the model does not see them.
    cfg = load_config("tiny", ["window=16", "eval_stride=16"])
    torch.manual_seed(0)
    model = MSCT(cfg.model).eval()
    video = out.face.copy()
    video[gap] = 255
    masked = window_scores(model, cfg, out.face, out.audio, out.face_valid).prob
    changed = window_scores(model, cfg, video, out.audio, out.face_valid).prob
    assert np.allclose(masked, changed, atol=1e-5)
    assert not np.allclose(masked, window_scores(model, cfg, video, out.audio).prob, atol=1e-5)
