"""Gradients, padding invariance, determinism, bf16, and the loss against hand values."""

from __future__ import annotations

import math

import pytest
import torch

from trainer.model import MSCT, LossWeights, ModelConfig, MSCTOutput, msct_loss

CROP = 32


def tiny(**overrides: object) -> ModelConfig:
    return ModelConfig.from_dict(ModelConfig.preset("tiny").to_dict() | overrides)


def batch(b: int, t: int, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return torch.randn(b, t, 104, generator=g), torch.randn(b, 3, t, CROP, CROP, generator=g)


@pytest.mark.parametrize(
    ("cross", "self_attn", "kernel", "head"),
    [
        ("dca", "mssa", "2d", "mean"),
        ("ca", "mssa", "time", "cls"),
        ("ca", "sa", "2d", "mean"),
        ("dca", "sa", "2d", "cls"),
    ],
)
def test_every_parameter_receives_a_gradient(
    cross: str, self_attn: str, kernel: str, head: str
) -> None:
    torch.manual_seed(0)
    cfg = tiny(attn_cross=cross, attn_self=self_attn, mssa_kernel=kernel, unimodal_head=head)
    model = MSCT(cfg)
    audio, video = batch(4, 6)
    mask = torch.ones(4, 6, dtype=torch.bool)
    mask[1, 4:] = False
    labels = torch.tensor([0, 1, 0, 1]), torch.tensor([0, 0, 1, 1])
    out = model(audio, video, mask)
    parts = msct_loss(out, *labels, labels[0] | labels[1], mask, LossWeights())
    parts.total.backward()
    for name, p in model.named_parameters():
        assert p.grad is not None, name
        assert torch.isfinite(p.grad).all(), name
        assert p.grad.abs().sum() > 0, name


@pytest.mark.parametrize("train", [False, True])
def test_padded_frames_do_not_change_the_outputs(train: bool) -> None:
    torch.manual_seed(0)
    model = MSCT(tiny(dropout=0.0)).train(train)
    t_real, t_pad = 5, 8
    audio, video = batch(2, t_pad)
    mask = torch.ones(2, t_pad, dtype=torch.bool)
    mask[0, t_real:] = False
    other_audio, other_video = audio.clone(), video.clone()
    other_audio[0, t_real:] = 1e3 * torch.randn(t_pad - t_real, 104)
    other_video[0, :, t_real:] = -50.0

    first = model(audio, video, mask)
    second = model(other_audio, other_video, mask)
    for name in ("audio_logits", "video_logits", "fused_logits", "embedding"):
        torch.testing.assert_close(getattr(first, name), getattr(second, name), msg=name)
    real = slice(0, t_real)
    torch.testing.assert_close(first.audio_tokens[0, real], second.audio_tokens[0, real])
    torch.testing.assert_close(first.video_tokens[0, real], second.video_tokens[0, real])

    if not train:  # batch statistics aside, a padded clip equals the same clip unpadded
        alone = model(audio[:1, :t_real], video[:1, :, :t_real])
        torch.testing.assert_close(alone.fused_logits, first.fused_logits[:1], atol=1e-5, rtol=1e-4)


@pytest.mark.parametrize("head", ["mean", "cls"])
def test_unimodal_heads_read_what_the_config_says(head: str) -> None:
    torch.manual_seed(0)
    model = MSCT(tiny(dropout=0.0, unimodal_head=head)).eval()
    audio, video = batch(2, 6)
    mask = torch.ones(2, 6, dtype=torch.bool)
    mask[1, 3:] = False
    out = model(audio, video, mask)
    c = model.cfg.dim
    if head == "mean":  # mean over the real frames only
        keep = mask[..., None].float()
        read_a = (out.audio_tokens * keep).sum(1) / keep.sum(1)
        read_v = (out.video_tokens * keep).sum(1) / keep.sum(1)
    else:  # the CLS tokens, which are also the fused head's input
        read_a, read_v = out.embedding[:, :c], out.embedding[:, c:]
    torch.testing.assert_close(out.audio_logits, model.audio_head(read_a))
    torch.testing.assert_close(out.video_logits, model.video_head(read_v))
    torch.testing.assert_close(out.fused_logits, model.fused_head(out.embedding))


def test_a_seeded_model_is_deterministic() -> None:
    audio, video = batch(2, 5)

    def build() -> tuple[MSCT, MSCTOutput]:
        torch.manual_seed(123)
        model = MSCT(tiny()).eval()
        return model, model(audio, video)

    (m1, o1), (m2, o2) = build(), build()
    for (n1, p1), (_, p2) in zip(m1.state_dict().items(), m2.state_dict().items(), strict=True):
        assert torch.equal(p1, p2), n1
    assert torch.equal(o1.fused_logits, o2.fused_logits)
    assert torch.equal(o1.audio_tokens, o2.audio_tokens)


def test_training_step_under_bf16_autocast() -> None:
    torch.manual_seed(0)
    model = MSCT(tiny())
    audio, video = batch(2, 4)
    mask = torch.tensor([[True] * 4, [True, True, False, False]])
    y = torch.tensor([0, 1])
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = model(audio, video, mask)
        parts = msct_loss(out, y, y, y, mask, LossWeights())
    assert parts.total.dtype == torch.float32 and torch.isfinite(parts.total)
    parts.total.backward()
    assert all(torch.isfinite(p.grad).all() for p in model.parameters() if p.grad is not None)


def hand_output() -> MSCTOutput:
    ln3 = math.log(3.0)
    return MSCTOutput(
        audio_logits=torch.tensor([[ln3, 0.0], [ln3, 0.0]]),  # p(fake) = 1/4
        video_logits=torch.tensor([[0.0, ln3], [0.0, ln3]]),  # p(fake) = 3/4
        fused_logits=torch.zeros(2, 2),
        embedding=torch.zeros(2, 4),
        audio_tokens=torch.tensor([[[1.0, 0.0], [0.0, 1.0]], [[1.0, 1.0], [5.0, 5.0]]]),
        video_tokens=torch.tensor([[[1.0, 0.0], [1.0, 0.0]], [[1.0, 0.0], [-7.0, 3.0]]]),
    )


def test_loss_equals_a_hand_computed_value() -> None:
    # Clip 0 is RARV (pair target 1), clip 1 is FARV (fake audio, real video; target 0).
    audio_label, video_label, label = (
        torch.tensor([0, 1]),
        torch.tensor([0, 0]),
        torch.tensor([0, 1]),
    )
    mask = torch.tensor([[True, True], [True, False]])
    weights = LossWeights(audio=1.0, video=2.0, fused=0.5, align=3.0)
    parts = msct_loss(hand_output(), audio_label, video_label, label, mask, weights)

    ce_audio = (math.log(4 / 3) + math.log(4)) / 2  # right on clip 0 (p=3/4), wrong on clip 1
    ce_video = math.log(4)  # both real, both given p(real) = 1/4
    ce_fused = math.log(2)
    # Clip 0: d = 1 / (√2·√2) = 0.5 → 1 − d. Clip 1, padding dropped: d = 1/√2 → max(0, d).
    align = ((1 - 0.5) + 1 / math.sqrt(2)) / 2
    assert parts.audio.item() == pytest.approx(ce_audio, abs=1e-6)
    assert parts.video.item() == pytest.approx(ce_video, abs=1e-6)
    assert parts.fused.item() == pytest.approx(ce_fused, abs=1e-6)
    assert parts.align.item() == pytest.approx(align, abs=1e-6)
    total = ce_audio + 2 * ce_video + 0.5 * ce_fused + 3 * align
    assert parts.total.item() == pytest.approx(total, abs=1e-5)


def test_alignment_ignores_negative_similarity_of_fake_pairs() -> None:
    out = hand_output()
    out.video_tokens = -out.audio_tokens  # d = −1 for both clips
    fake = torch.tensor([1, 1])
    parts = msct_loss(out, fake, fake, fake, None, LossWeights())
    assert parts.align.item() == pytest.approx(0.0)
    real = torch.tensor([0, 0])
    parts = msct_loss(out, real, real, real, None, LossWeights())
    assert parts.align.item() == pytest.approx(2.0)  # 1 − (−1) for real pairs


def test_mean_alignment_compares_time_averaged_embeddings() -> None:
    audio_label, video_label, label = (
        torch.tensor([0, 1]),
        torch.tensor([0, 0]),
        torch.tensor([0, 1]),
    )
    mask = torch.tensor([[True, True], [True, False]])
    weights = LossWeights(alignment="mean")
    parts = msct_loss(hand_output(), audio_label, video_label, label, mask, weights)
    # Clip 0: means (½, ½) and (1, 0), d = 1/√2 → 1 − d. Clip 1 (padding dropped): (1, 1)
    # and (1, 0), d = 1/√2 → max(0, d).
    expected = ((1 - 1 / math.sqrt(2)) + 1 / math.sqrt(2)) / 2
    assert parts.align.item() == pytest.approx(expected, abs=1e-6)


def test_only_sequence_alignment_sees_a_time_shift() -> None:
    torch.manual_seed(0)
    out = hand_output()
    out.audio_tokens = torch.randn(2, 8, 4)
    out.video_tokens = out.audio_tokens.roll(3, dims=1)  # the same frames, 3 frames late
    real = torch.tensor([0, 0])
    sequence = msct_loss(out, real, real, real, None, LossWeights(alignment="sequence"))
    mean = msct_loss(out, real, real, real, None, LossWeights(alignment="mean"))
    assert mean.align.item() == pytest.approx(0.0, abs=1e-6)  # 1 − d with d = 1
    assert sequence.align.item() > 0.3


def test_unknown_alignment_is_rejected() -> None:
    with pytest.raises(ValueError, match="alignment must be one of"):
        LossWeights(alignment="frames")
