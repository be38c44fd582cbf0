"""MSCT trained, evaluated and applied on the mouth stream (``model.visual_input=mouth``).

The store is ingested from the shared synthetic dataset by the real CLI with landmarks
and the mouth stream (real ffmpeg, dlib, Ray); a face-only store is built straight
through the store contract.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from cli_helpers import call_main, ingest_json, run_cli
from trainer_fixtures import build_store

import schemas
from trainer.cli import main as train_main
from trainer.config.settings import TrainerError, load_config
from trainer.data.dataset import WindowDataset, split_clips
from trainer.data.detector_store import check_detector_store
from trainer.data.inputs import video_for_model
from trainer.data.streams import MOUTH_CROP, crop_mouth
from trainer.evaluate.inference import evaluate_checkpoint, model_from_checkpoint
from trainer.train.run import train

FAST = ["epochs=1", "window=8", "windows_per_clip=1", "batch_size=4", "precise_bn=0"]
MOUTH = ["model.visual_input=mouth", "device=cpu", *FAST]


@pytest.fixture(scope="module")
def mouth_store(synth_root: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    store = tmp_path_factory.mktemp("mouth") / "store"
    ingest_json(synth_root, "--store", store, "--landmarks", "--streams", "face,mouth")
    run_cli("mscct-pipeline", "split", "--store", store, "--balance")
    return store


@pytest.fixture(scope="module")
def mouth_run(mouth_store: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("mouth_run") / "run"
    train(load_config("tiny", MOUTH), mouth_store, "default", out, log=lambda _: None)
    return out


def test_a_mouth_model_has_a_one_channel_stem_and_records_its_input(mouth_run: Path) -> None:
    model, _, cfg = model_from_checkpoint(mouth_run / "checkpoints" / "best.pt")
    assert cfg.model.visual_input == "mouth"
    assert model.visual_encoder.frames.stem[0].in_channels == 1
    assert "visual_input: mouth" in (mouth_run / "config.yaml").read_text()
    face = load_config("tiny")
    assert face.model.visual_input == "face" and face.model.visual_channels == 3


def test_mouth_windows_are_the_88_pixel_crops_of_the_stored_mouth(mouth_store: Path) -> None:
    clips = split_clips(mouth_store)["val"]
    evals = WindowDataset(mouth_store, clips, 8, train=False, visual_input="mouth")
    item = evals[0]
    assert item["mouth"].shape == (8, MOUTH_CROP, MOUTH_CROP) and "shift_flip" not in item
    clip_index, start = evals.item_window(0)
    stored = schemas.open_stream(mouth_store, clips[clip_index].clip_id, "mouth")
    assert stored is not None
    assert np.array_equal(item["mouth"].numpy(), stored[start : start + 8, 4:92, 4:92])

    trains = WindowDataset(mouth_store, clips, 8, train=True, visual_input="mouth")
    shifted = 0
    for i in range(len(trains)):
        item = trains[i]
        assert item["mouth"].shape == (8, MOUTH_CROP, MOUTH_CROP) and "video" not in item
        dy, dx, flip = item["shift_flip"].tolist()
        assert dy == dx == 0 and flip in (0, 1)  # the shift is the crop's offset
        clip_index, start = trains.item_window(i)
        stored = schemas.open_stream(mouth_store, clips[clip_index].clip_id, "mouth")
        assert stored is not None
        crops = [
            crop_mouth(stored[start : start + 8], y, x) for y in range(-4, 5) for x in range(-4, 5)
        ]
        matches = [np.array_equal(item["mouth"].numpy(), c) for c in crops]
        assert any(matches)
        shifted += not matches[len(crops) // 2]
    assert shifted > 0


def test_mouth_inputs_are_one_normalised_channel_and_flip() -> None:
    video = torch.arange(2 * 3 * 4 * 4, dtype=torch.uint8).view(2, 3, 4, 4)
    mask = torch.tensor([[True, True, False], [True, True, True]])
    params = torch.tensor([[0, 0, 0], [0, 0, 1]])
    out = video_for_model(video, mask, params)
    assert out.shape == (2, 1, 3, 4, 4)
    expected = (video[0, :2].float() / 255 - 0.421) / 0.165
    assert torch.allclose(out[0, 0, :2], expected) and not out[0, 0, 2].any()
    flipped = (video[1].flip(-1).float() / 255 - 0.421) / 0.165
    assert torch.allclose(out[1, 0], flipped)


def test_eval_and_predict_score_with_a_mouth_model(
    mouth_run: Path, mouth_store: Path, synth_root: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    best = mouth_run / "checkpoints" / "best.pt"
    metrics = evaluate_checkpoint(best, mouth_store, part="test", log=lambda _: None)
    assert metrics["n"] == len(split_clips(mouth_store)["test"]) and metrics["n"] > 0
    video = next(synth_root.rglob("*.mp4"))
    assert call_main(train_main, ["predict", str(best), str(video), "--json"]) == 0
    rows: list[dict[str, Any]] = json.loads(capsys.readouterr().out)
    assert rows[0]["error"] is None and 0.0 <= rows[0]["fake"] <= 1.0


def test_a_face_only_store_refuses_a_mouth_model_in_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    store = build_store(tmp_path / "faces", counts={"train": 1, "val": 1, "test": 1}, frames=8)
    with pytest.raises(TrainerError, match="--streams face,mouth") as caught:
        train(load_config("tiny", MOUTH), store, "default", tmp_path / "run", log=lambda _: None)
    assert "\n" not in str(caught.value)
    assert not (tmp_path / "run" / "checkpoints").exists()  # refused before anything is made

    args = ["run", "--store", str(store), "--out", str(tmp_path / "cli")]
    assert call_main(train_main, args + [f"--set={kv}" for kv in MOUTH]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "no mouth stream" in err


def test_visual_input_must_be_face_or_mouth() -> None:
    with pytest.raises(TrainerError, match="visual_input"):
        load_config("tiny", ["model.visual_input=lips"])


def test_a_face_checkpoint_reads_a_store_that_only_adds_landmarks_and_mouth() -> None:
    from trainer.evaluate.inference import check_recipe

    trained = schemas.Recipe()
    richer = schemas.Recipe(landmarks=True, streams=("face", "mouth"))
    check_recipe(trained, richer, Path("store"), log=lambda _: None)  # no error
    with pytest.raises(TrainerError, match="crop_size"):
        check_recipe(trained, schemas.Recipe(crop_size=64), Path("store"), log=lambda _: None)


def test_items_carry_face_and_mouth_from_the_same_window(mouth_store: Path) -> None:
    clips = split_clips(mouth_store)["val"]
    both = ["face", "mouth"]
    evals = WindowDataset(mouth_store, clips, 8, train=False, streams=both)
    faces = WindowDataset(mouth_store, clips, 8, train=False)
    for i in range(len(evals)):
        item, face = evals[i], faces[i]
        assert item["video"].shape[0] == item["mouth"].shape[0] == item["mask"].shape[0] == 8
        assert torch.equal(item["video"], face["video"]) and torch.equal(item["mask"], face["mask"])
        clip_index, start = evals.item_window(i)
        stored = schemas.open_stream(mouth_store, clips[clip_index].clip_id, "mouth")
        assert stored is not None
        n = int(item["mask"].sum())
        assert np.array_equal(item["mouth"][:n].numpy(), stored[start : start + n, 4:92, 4:92])
        assert not item["mouth"][n:].any()
    assert evals._reader is not None and evals._reader.visuals == ("video", "mouth")
    trains = WindowDataset(mouth_store, clips, 8, train=True, streams=both)
    batch = torch.utils.data.default_collate([trains[i] for i in range(2)])
    assert batch["video"].shape[:2] == batch["mouth"].shape[:2] == (2, 8)
    from trainer.data.inputs import model_inputs

    _, face_in, _ = model_inputs(batch, torch.device("cpu"), "face")
    _, mouth_in, _ = model_inputs(batch, torch.device("cpu"), "mouth")
    assert face_in.shape[1] == 3 and mouth_in.shape[1:] == (1, 8, MOUTH_CROP, MOUTH_CROP)
    with pytest.raises(ValueError, match="visual_input"):
        model_inputs(batch, torch.device("cpu"))


def test_a_face_model_trains_on_items_with_both_streams(mouth_store: Path, tmp_path: Path) -> None:
    cfg = load_config("tiny", ["data.streams=[face, mouth]", "device=cpu", *FAST])
    assert cfg.streams == ("face", "mouth") and cfg.model.visual_input == "face"
    train(cfg, mouth_store, "default", tmp_path / "run", log=lambda _: None)
    assert (tmp_path / "run" / "checkpoints" / "best.pt").is_file()
    assert "- mouth" in (tmp_path / "run" / "config.yaml").read_text()
    assert load_config("tiny", ["model.visual_input=mouth"]).streams == ("face", "mouth")
    only = load_config("tiny", ["model.visual_input=mouth", "data.streams=[mouth]"])
    assert only.streams == ("mouth",)


@pytest.mark.parametrize("streams", ["[]", "[face, face]", "[lips]", "face"])
def test_data_streams_are_checked_in_one_line(streams: str) -> None:
    with pytest.raises(TrainerError, match="data.streams|config key") as caught:
        load_config("tiny", [f"data.streams={streams}"])
    assert "\n" not in str(caught.value)


def test_a_face_only_store_refuses_mouth_in_data_streams(tmp_path: Path) -> None:
    store = build_store(tmp_path / "faces", counts={"train": 1, "val": 1, "test": 1}, frames=8)
    cfg = load_config("tiny", ["data.streams=[face, mouth]", "device=cpu", *FAST])
    with pytest.raises(TrainerError, match="no mouth stream, which data.streams reads") as caught:
        train(cfg, store, "default", tmp_path / "run", log=lambda _: None)
    assert "\n" not in str(caught.value)
    assert not (tmp_path / "run" / "checkpoints").exists()


def test_every_missing_stream_check_gives_the_same_fix(tmp_path: Path) -> None:
    # One check for the run, the dataset and a detector's reads: each names the setting
    # that reads the stream and the ingest that stores it.
    store = build_store(tmp_path / "faces", counts={"train": 1, "val": 1, "test": 1}, frames=8)
    clips = split_clips(store)["train"]
    fix = "--landmarks --streams face,mouth` (or train with "
    with pytest.raises(TrainerError, match="no mouth stream, which data.streams reads") as data:
        WindowDataset(store, clips, 8, train=True, streams=("face", "mouth"))
    with pytest.raises(TrainerError, match="which model.visual_input=mouth reads") as visual:
        WindowDataset(store, clips, 8, train=False, visual_input="mouth")
    assert fix + "data.streams=[face])" in str(data.value)
    assert fix + "model.visual_input=face)" in str(visual.value)
    cfg = load_config("tiny", ["model.name=mrdf_ce", "model.visual_input=mouth"])
    with pytest.raises(TrainerError, match="which model.name=mrdf_ce reads") as detector:
        check_detector_store(cfg.model, schemas.Recipe(features="fbank"), store)
    assert str(detector.value).endswith("--landmarks --streams face,mouth`")
