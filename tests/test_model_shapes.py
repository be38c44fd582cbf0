"""MSCT output shapes across presets, ablations, batch sizes and clip lengths; config rules."""

from __future__ import annotations

import pytest
import torch

from trainer.model import MSCT, ModelConfig

CROP = 32  # the trunk pools globally, so small crops keep these tests fast


def tiny(**overrides: object) -> ModelConfig:
    data = ModelConfig.preset("tiny").to_dict() | {"dropout": 0.0} | overrides
    return ModelConfig.from_dict(data)


def run(model: MSCT, b: int, t: int, mask: torch.Tensor | None = None):
    audio = torch.randn(b, t, 104)
    video = torch.randn(b, 3, t, CROP, CROP)
    return model(audio, video, mask)


# Table 2's four attention pairs, each MSSA with both kernel shapes, both head readings,
# DCA in both forms.
ABLATIONS = [
    ("dca", "mssa", "2d", "mean", "paper"),
    ("dca", "mssa", "time", "cls", "diff_transformer"),
    ("dca", "sa", "2d", "cls", "paper"),
    ("dca", "sa", "2d", "mean", "diff_transformer"),
    ("ca", "mssa", "2d", "cls", "paper"),
    ("ca", "mssa", "time", "mean", "paper"),
    ("ca", "sa", "2d", "mean", "paper"),
]


@pytest.mark.parametrize(("cross", "self_attn", "kernel", "head", "form"), ABLATIONS)
@pytest.mark.parametrize(("b", "t"), [(1, 1), (3, 7)])
def test_shapes_for_every_ablation(
    cross: str, self_attn: str, kernel: str, head: str, form: str, b: int, t: int
) -> None:
    torch.manual_seed(0)
    cfg = tiny(
        attn_cross=cross, attn_self=self_attn, mssa_kernel=kernel, unimodal_head=head, dca_form=form
    )
    model = MSCT(cfg)
    mask = torch.ones(b, t, dtype=torch.bool)
    mask[0, t // 2 + 1 :] = False
    out = run(model, b, t, mask)
    assert out.audio_logits.shape == out.video_logits.shape == out.fused_logits.shape == (b, 2)
    assert out.embedding.shape == (b, 2 * cfg.dim)
    assert out.audio_tokens.shape == out.video_tokens.shape == (b, t, cfg.dim)
    for tensor in (out.fused_logits, out.embedding, out.audio_tokens, out.video_tokens):
        assert torch.isfinite(tensor).all()


def test_paper_preset_shapes() -> None:
    torch.manual_seed(0)
    cfg = ModelConfig.preset("paper")
    assert (cfg.depth, cfg.dim, cfg.attn_cross, cfg.attn_self) == (6, 256, "dca", "mssa")
    assert (cfg.mssa_kernel, cfg.unimodal_head) == ("2d", "mean")  # the paper's choices
    model = MSCT(cfg).eval()
    with torch.no_grad():
        out = run(model, 2, 3)
    assert out.fused_logits.shape == (2, 2)
    assert out.embedding.shape == (2, 512)
    assert out.video_tokens.shape == (2, 3, 256)
    # The embedding is exactly the fused head's input.
    torch.testing.assert_close(model.fused_head(out.embedding), out.fused_logits)


def test_tiny_preset_is_small() -> None:
    n = sum(p.numel() for p in MSCT(ModelConfig.preset("tiny")).parameters())
    assert 100_000 <= n <= 500_000


def test_unknown_preset_names_the_presets() -> None:
    with pytest.raises(ValueError, match="tiny, paper"):
        ModelConfig.preset("huge")


def test_config_from_plain_dict_with_lists() -> None:
    data = ModelConfig.preset("paper").to_dict()
    assert isinstance(data["mssa_kernels"], list)
    cfg = ModelConfig(**data)
    assert cfg == ModelConfig.preset("paper")
    assert cfg.mssa_kernels == (1, 3, 5, 7)
    with pytest.raises(ValueError, match="unknown model config keys: colour"):
        ModelConfig.from_dict(data | {"colour": "red"})


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("attn_cross", "xattn", "attn_cross"),
        ("attn_self", "conv", "attn_self"),
        ("heads", 6, "multiple of 4"),
        ("dim", 66, "divisible"),
        ("mssa_kernels", [1, 3, 4, 7], "odd"),
        ("visual_widths", [16, 36, 64], "multiples of 8"),
        ("mssa_kernel", "3d", "mssa_kernel"),
        ("unimodal_head", "max", "unimodal_head"),
    ],
)
def test_invalid_config_is_rejected(field: str, value: object, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        tiny(**{field: value})


def test_bad_inputs_fail_with_a_clear_message() -> None:
    model = MSCT(tiny(max_frames=8))
    with pytest.raises(ValueError, match="audio must be"):
        model(torch.randn(1, 4, 26), torch.randn(1, 3, 4, CROP, CROP))
    with pytest.raises(ValueError, match="video must be"):
        model(torch.randn(1, 4, 104), torch.randn(1, 3, 5, CROP, CROP))
    with pytest.raises(ValueError, match="at most 8"):
        run(model, 1, 9)
