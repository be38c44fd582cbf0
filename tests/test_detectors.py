"""The detector registry: every detector builds from its presets, runs a forward of the right
shapes and a loss; ``model.name`` picks the model and loss sections; a store that does not
give what a detector reads is refused in one line."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch
from trainer_fixtures import build_store

from trainer.config.settings import TrainConfig, TrainerError, load_config
from trainer.data.detector_store import check_detector_store
from trainer.model import (
    MSCT,
    ModelConfig,
    build_model,
    detector_loss,
    detector_names,
    get_detector,
)
from trainer.model.mrdf import margin_loss
from trainer.model.registry import SIZES
from trainer.presets import preset_names
from trainer.train.run import train

BASELINES = ("audio_only", "video_only", "late_fusion", "mrdf_ce", "mrdf_margin", "mds")
B, T, CROP = 2, 8, 32


def _batch(channels: int) -> tuple[torch.Tensor, ...]:
    audio = torch.randn(B, T, 104)
    video = torch.randn(B, channels, T, CROP, CROP)
    mask = torch.ones(B, T, dtype=torch.bool)
    mask[1, 5:] = False  # the second clip is padded after 5 frames
    return audio, video, mask


def test_the_registry_holds_msct_first_and_the_baselines() -> None:
    assert detector_names() == ("msct", *sorted(BASELINES))
    for name in detector_names():
        for size in SIZES:
            assert get_detector(name).presets[size] in preset_names(), (name, size)


@pytest.mark.parametrize("size", SIZES)
@pytest.mark.parametrize("name", ["msct", *BASELINES])
def test_every_detector_builds_from_its_preset_and_runs_a_forward(name: str, size: str) -> None:
    cfg = load_config(size, [f"model.name={name}"])
    preset = load_config(get_detector(name).presets[size])
    assert cfg.model == preset.model and cfg.loss == preset.loss
    assert type(cfg.model) is get_detector(name).config and cfg.model.name == name
    torch.manual_seed(0)
    model = build_model(cfg.model)
    audio, video, mask = _batch(cfg.model.visual_channels)
    out = model(audio, video, mask)
    for head in ("audio_logits", "video_logits", "fused_logits"):
        assert getattr(out, head).shape == (B, 2), (name, head)
    for head in ("audio", "video"):  # the registry's ``modality_heads``: the real heads
        constant = bool((getattr(out, f"{head}_logits") == 0).all())
        assert constant == (head not in get_detector(name).modality_heads), (name, head)
    assert out.embedding.ndim == 2 and out.embedding.shape[0] == B
    assert torch.isfinite(out.fused_logits).all()
    labels = (torch.tensor([0, 1]), torch.tensor([1, 0]), torch.tensor([1, 1]))
    parts = detector_loss(cfg.model)(cfg.model, out, *labels, mask, cfg.loss, None)
    assert parts.total.shape == () and math.isfinite(float(parts.total.detach()))
    if size == "tiny":  # every parameter the loss uses gets a gradient
        parts.total.backward()
        assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in model.parameters())


def test_the_paper_size_presets_are_their_sources_sizes() -> None:
    mrdf = load_config("mrdf_ce").model
    assert (mrdf.dim, mrdf.depth, mrdf.heads, mrdf.ffn_dim) == (768, 12, 12, 3072)
    assert mrdf.video_widths == (64, 128, 256, 512) and load_config("mrdf_ce").lr == 1e-3
    audio = load_config("paper", ["model.name=audio_only"])
    assert (audio.model.dim, audio.model.depth) == (256, 6) and audio.lr == 1e-4
    # The detector's own preset carries its source's training settings; the switch does not.
    assert load_config("paper", ["model.name=mrdf_ce"]).lr == load_config("paper").lr


def test_a_missing_head_scores_one_half_and_late_fusion_is_the_product_rule() -> None:
    torch.manual_seed(0)
    audio, video, mask = _batch(3)
    out = build_model(load_config("tiny", ["model.name=audio_only"]).model).eval()(
        audio, video, mask
    )
    assert torch.equal(out.video_logits.softmax(-1)[:, 1], torch.full((B,), 0.5))
    assert torch.equal(out.fused_logits, out.audio_logits)
    out = build_model(load_config("tiny", ["model.name=late_fusion"]).model).eval()(
        audio, video, mask
    )
    pa, pv = (x.softmax(-1)[:, 1] for x in (out.audio_logits, out.video_logits))
    fused = out.fused_logits.softmax(-1)[:, 1]
    torch.testing.assert_close(fused, 1 - (1 - pa) * (1 - pv))


def test_margin_loss_by_hand() -> None:
    e = torch.tensor([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]])
    labels = torch.tensor([0, 1, 0])
    c = 1 / math.sqrt(2)  # cos(e0, e2) = cos(e1, e2)
    # same-label pairs: (0,0) (1,1) (2,2) → 0, (0,2) (2,0) → 1 - c; different: (0,1) (1,0)
    # → max(0, 0 - m) = 0, (1,2) (2,1) → max(0, c - m).
    for m in (0.0, 0.5):
        expected = (2 * (1 - c) + 2 * max(0.0, c - m)) / 9
        assert float(margin_loss(e, labels, m)) == pytest.approx(expected, abs=1e-6)


def test_model_name_and_its_keys_are_checked_in_one_line() -> None:
    with pytest.raises(TrainerError, match="model.name must be one of msct, audio_only") as e:
        load_config("tiny", ["model.name=xception"])
    assert "\n" not in str(e.value)
    with pytest.raises(TrainerError, match="model.attn_cross.*model.name=audio_only"):
        load_config("tiny", ["model.name=audio_only", "model.attn_cross=ca"])
    with pytest.raises(TrainerError, match="model.dim"):
        load_config("tiny", ["model.name=mrdf_ce", "model.dim=abc"])
    with pytest.raises(TrainerError, match="frame head"):
        load_config("tiny", ["model.name=video_only", "model.frame_head=true"])
    # A file naming another detector's keys without naming it keeps msct: refused.
    with pytest.raises(TrainerError, match="model.ffn_dim"):
        TrainConfig.from_dict({"model": {"ffn_dim": 32}})


def test_a_config_without_model_name_is_msct() -> None:
    stored = load_config("tiny").to_dict()
    del stored["model"]["name"]
    cfg = TrainConfig.from_stored(stored)
    assert isinstance(cfg.model, ModelConfig) and cfg.model.name == "msct"
    assert isinstance(build_model(cfg.model), MSCT)
    # A baseline's stored config takes none of MSCT's legacy keys.
    stored = load_config("tiny", ["model.name=mrdf_margin"]).to_dict()
    assert TrainConfig.from_stored(stored).model.name == "mrdf_margin"


def test_a_store_without_filter_banks_is_refused_for_mrdf_in_one_line(tmp_path: Path) -> None:
    store = build_store(tmp_path / "mfcc", counts={"train": 1, "val": 1, "test": 1}, frames=8)
    cfg = load_config("tiny", ["model.name=mrdf_ce", "device=cpu", "window=8", "epochs=1"])
    with pytest.raises(TrainerError, match="--audio-features fbank") as caught:
        train(cfg, store, "default", tmp_path / "run", log=lambda _: None)
    assert "\n" not in str(caught.value) and "mfcc audio features" in str(caught.value)
    assert not (tmp_path / "run" / "checkpoints").exists()  # refused before anything is made
    import schemas

    recipe = schemas.Recipe(features="fbank")
    check_detector_store(cfg.model, recipe, "s", 8)  # what it reads: no error
    with pytest.raises(TrainerError, match="window 600 is outside the 1-512 frames"):
        check_detector_store(cfg.model, recipe, "s", 600)
    with pytest.raises(TrainerError, match="no mouth stream"):
        mouth = load_config("tiny", ["model.name=mrdf_ce", "model.visual_input=mouth"])
        check_detector_store(mouth.model, recipe, "s")
