"""The per-frame fake head: off by default (the paper's model), its labels, and that it learns."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from cli_helpers import call_main
from frame_fixtures import build_segment_store
from trainer_fixtures import build_store

import schemas
from trainer.cli import main
from trainer.config.settings import TrainerError, load_config
from trainer.data.dataset import WindowDataset, split_clips
from trainer.model import MSCT, ModelConfig
from trainer.train.step import LOSS_PARTS, loss_parts, train_step

SMALL = {"train": 1, "val": 1, "test": 1}


def test_the_frame_head_is_off_by_default_and_adds_only_its_layer() -> None:
    cfg = load_config("tiny")
    assert cfg.model.frame_head is False and ModelConfig.preset("paper").frame_head is False
    torch.manual_seed(0)
    off = MSCT(cfg.model)
    torch.manual_seed(0)
    on = MSCT(load_config("tiny", ["model.frame_head=true"]).model)
    names_off = [n for n, _ in off.named_parameters()]
    assert not any(n.startswith("frame_head") for n in names_off)
    assert [n for n, _ in on.named_parameters()] == [
        *names_off,
        "frame_head.weight",
        "frame_head.bias",
    ]
    count = sum(p.numel() for p in off.parameters())
    assert sum(p.numel() for p in on.parameters()) == count + 2 * cfg.model.dim + 1
    # The head is made last: every other weight starts as the paper model's does.
    on_state = on.state_dict()
    for name, tensor in off.state_dict().items():
        assert torch.equal(tensor, on_state[name]), name
    assert loss_parts(cfg) == LOSS_PARTS


def test_without_the_head_there_are_no_frame_logits() -> None:
    model = MSCT(ModelConfig.preset("tiny")).eval()
    out = model(torch.randn(2, 8, 104), torch.randn(2, 3, 8, 24, 24))
    assert out.frame_logits is None
    model = MSCT(load_config("tiny", ["model.frame_head=true"]).model).eval()
    out = model(torch.randn(2, 8, 104), torch.randn(2, 3, 8, 24, 24))
    assert out.frame_logits is not None and out.frame_logits.shape == (2, 8)


def test_windows_carry_the_stored_frame_labels(tmp_path: Path) -> None:
    store = build_segment_store(tmp_path / "s", frames=20, counts=SMALL)
    clips = split_clips(store)["train"]
    dataset = WindowDataset(store, clips, 16, train=False, frame_labels=True)
    assert len(dataset) == 4  # two clips of 20 frames: windows at 0 and 4
    for i in range(len(dataset)):
        clip_index, start = dataset.windows[i]
        stored = schemas.read_frame_labels(store, clips[clip_index].clip_id)
        assert stored is not None
        item = dataset[i]
        np.testing.assert_array_equal(item["frame_label"], stored["fake"][start : start + 16])
    short = WindowDataset(store, clips, 32, train=False, frame_labels=True)
    item = short[1]
    assert item["frame_label"].shape == (32,) and not item["frame_label"][20:].any()
    assert item["frame_label"][:20].sum() > 0  # the fake clip's segment
    assert "frame_label" not in WindowDataset(store, clips, 16, train=False)[0]


def test_a_split_without_frame_labels_is_refused(tmp_path: Path) -> None:
    store = build_store(tmp_path / "s", crop_size=24, frames=16, counts=SMALL)
    with pytest.raises(TrainerError, match="needs frame labels, but 4 of the 4 clips"):
        WindowDataset(store, split_clips(store)["train"], 8, train=True, frame_labels=True)


def test_run_with_the_frame_head_on_a_clip_level_store_is_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    store = build_store(tmp_path / "s", crop_size=24, frames=16, counts=SMALL)
    args = ["run", "--store", str(store), "--out", str(tmp_path / "r")]
    assert call_main(main, [*args, "--set", "model.frame_head=true"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "model.frame_head=true needs frame labels" in err, err
    assert not (tmp_path / "r" / "checkpoints").exists()


def test_the_frame_head_learns_where_a_clip_is_fake(tmp_path: Path) -> None:
    store = build_segment_store(tmp_path / "s", frames=24, counts={"train": 4, "val": 1, "test": 1})
    sets = ["model.frame_head=true", "window=12", "batch_size=8", "device=cpu", "amp=off"]
    cfg = load_config(
        "tiny", [*sets, "loss.audio=0", "loss.video=0", "loss.fused=0", "loss.align=0"]
    )
    assert loss_parts(cfg) == (*LOSS_PARTS, "frame")
    torch.manual_seed(0)
    model = MSCT(cfg.model)
    clips = split_clips(store)["train"] * 4
    dataset = WindowDataset(store, clips, cfg.window, train=True, frame_labels=True)
    loader = torch.utils.data.DataLoader(dataset, batch_size=8, shuffle=True, drop_last=True)
    optimizer = torch.optim.Adam(model.parameters(), lr=3e-3)
    losses = []
    for epoch in range(3):
        dataset.set_epoch(epoch)
        for batch in loader:
            parts = train_step(model, batch, optimizer, cfg, torch.device("cpu"), None)
            losses.append(parts["frame"])
    first, last = np.mean(losses[:3]), np.mean(losses[-3:])
    assert last < 0.6 * first, (first, last)
