"""Unimodal references and their late fusion: ``audio_only``, ``video_only``, ``late_fusion``.

They show how much each modality carries on its own, and are the floor a cross-modal
detector must beat (issue: "the MSCT pre-encoders with a head"). Source: the MSCT paper's
pre-encoders (:mod:`trainer.model.msct`); no paper describes these exact models, so every
choice below is this project's:

* **Pre-encoders**: MSCT's own, unchanged: a linear layer 104 → C for the audio, the
  per-frame WTConv/Res2Net/CBAM trunk (:class:`~trainer.model.visual.VisualPreEncoder`)
  for the video, so a gap to MSCT is the cross-modal part and not a weaker trunk.
* **Temporal model**: ``depth`` pre-norm transformer layers (``nn.TransformerEncoderLayer``:
  plain self attention, GELU feed-forward of ``mlp_ratio · C``, ``dropout``) over the
  frame tokens with MSCT's sinusoidal positions and key padding mask. A head straight on
  the pre-encoder tokens would see the audio only as the mean of a linear map of its
  per-clip normalised features (about zero for every clip), so at least one layer is
  required; the presets use MSCT's depth, width and heads.
* **Head**: one linear layer on the mean of the tokens over the real frames (MSCT's
  ``unimodal_head=mean``), trained with cross-entropy against that modality's label.
* **Clip score** (``fused_logits``): ``audio_only`` and ``video_only`` give their head's
  verdict (a clip is called fake when its one modality is); the head they lack gives
  0.5 (:func:`~trainer.model.outputs.no_head`). ``late_fusion`` trains both branches,
  each on its own label, and fuses at the decision level by the rule that matches the
  labels, "fake when either modality is": P(real) = P_a(real) · P_v(real), the product
  of two independent verdicts; its fused cross-entropy has the weight ``loss.fused``
  (0 in the presets: the fusion has no parameters of its own).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import cast

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .config import ConfigBasics, ModelConfig
from .encoder import sinusoidal_positions
from .loss import LossParts, LossWeights
from .outputs import DetectorOutput, masked_mean, no_head
from .registry import Reads, register_detector
from .visual import VisualPreEncoder


@dataclass
class AudioOnlyConfig(ConfigBasics):
    """Sizes of a unimodal branch (``audio_only``; the base of the video configs)."""

    dim: int  # C, token width
    depth: int  # transformer layers over the frame tokens (≥ 1)
    heads: int  # attention heads; divide dim
    mlp_ratio: float  # feed-forward width = mlp_ratio · C
    dropout: float
    name: str = "audio_only"
    audio_channels: int = 104
    max_frames: int = 512  # longest window the position table supports
    visual_input: str = "face"  # the stream a video branch reads ("face" | "mouth")
    frame_head: bool = False  # no detector here has one

    def __post_init__(self) -> None:
        if self.depth < 1 or self.max_frames < 1:
            raise ValueError("depth and max_frames must be ≥ 1")
        if self.heads < 1 or self.dim % self.heads:
            raise ValueError(f"dim ({self.dim}) must be divisible by heads ({self.heads})")
        self.check_visual_input()


@dataclass
class VideoOnlyConfig(AudioOnlyConfig):
    """A unimodal config with MSCT's visual trunk (``video_only``, ``late_fusion``); the
    visual fields mean what they mean in :class:`~trainer.model.config.ModelConfig`."""

    name: str = "video_only"
    visual_stem: int = 32
    visual_widths: tuple[int, ...] = (64, 128, 256, 256)
    visual_depths: tuple[int, ...] = (2, 2, 2, 2)
    wt_levels: int = 2
    wt_kernel: int = 5

    def __post_init__(self) -> None:
        self.visual_widths = tuple(int(w) for w in self.visual_widths)
        self.visual_depths = tuple(int(d) for d in self.visual_depths)
        super().__post_init__()
        if not self.visual_widths or len(self.visual_widths) != len(self.visual_depths):
            raise ValueError("visual_widths and visual_depths must be non-empty, of equal length")
        if any(w % 8 for w in self.visual_widths):
            raise ValueError(f"visual_widths must be multiples of 8, got {self.visual_widths}")


class TemporalEncoder(nn.Module):
    """Positions + ``depth`` pre-norm transformer layers + a final norm.
    (B, T, C), mask (B, T) bool | None (True = real frame) → (B, T, C)."""

    positions: Tensor  # (max_frames, C) sinusoidal table, a buffer

    def __init__(self, cfg: AudioOnlyConfig) -> None:
        super().__init__()
        self.register_buffer(
            "positions", sinusoidal_positions(cfg.max_frames, cfg.dim), persistent=False
        )
        layer = nn.TransformerEncoderLayer(
            cfg.dim, cfg.heads, int(cfg.dim * cfg.mlp_ratio), cfg.dropout,
            activation="gelu", batch_first=True, norm_first=True,
        )  # fmt: skip
        self.layers = nn.TransformerEncoder(layer, cfg.depth, enable_nested_tensor=False)
        self.norm = nn.LayerNorm(cfg.dim)

    def forward(self, x: Tensor, mask: Tensor | None) -> Tensor:
        x = x + self.positions[: x.shape[1]].to(x.dtype)
        padding = None if mask is None else ~mask
        return self.norm(self.layers(x, src_key_padding_mask=padding))


class AudioBranch(nn.Module):
    """Audio (B, T, 104) → (logits (B, 2), pooled token (B, C))."""

    def __init__(self, cfg: AudioOnlyConfig) -> None:
        super().__init__()
        self.encoder = nn.Linear(cfg.audio_channels, cfg.dim)
        self.temporal = TemporalEncoder(cfg)
        self.head = nn.Linear(cfg.dim, 2)

    def forward(self, audio: Tensor, mask: Tensor | None) -> tuple[Tensor, Tensor]:
        pooled = masked_mean(self.temporal(self.encoder(audio), mask), mask)
        return self.head(pooled), pooled


class VideoBranch(nn.Module):
    """Video (B, K, T, H, W) → (logits (B, 2), pooled token (B, C))."""

    def __init__(self, cfg: VideoOnlyConfig) -> None:
        super().__init__()
        # VisualPreEncoder reads only the sizes both configs share (dim, visual_*, wt_*).
        self.encoder = VisualPreEncoder(cast(ModelConfig, cfg))
        self.temporal = TemporalEncoder(cfg)
        self.head = nn.Linear(cfg.dim, 2)

    def forward(self, video: Tensor, mask: Tensor | None) -> tuple[Tensor, Tensor]:
        pooled = masked_mean(self.temporal(self.encoder(video, mask), mask), mask)
        return self.head(pooled), pooled


class AudioOnly(nn.Module):
    """forward(audio (B, T, 104), video (ignored), mask (B, T) | None) → DetectorOutput."""

    def __init__(self, cfg: AudioOnlyConfig) -> None:
        super().__init__()
        self.cfg = cfg
        self.audio = AudioBranch(cfg)

    def forward(self, audio: Tensor, video: Tensor, mask: Tensor | None = None) -> DetectorOutput:
        logits, pooled = self.audio(audio, mask)
        return DetectorOutput(logits, no_head(logits), logits, pooled)


class VideoOnly(nn.Module):
    """forward(audio (ignored), video (B, K, T, H, W), mask (B, T) | None) → DetectorOutput."""

    def __init__(self, cfg: VideoOnlyConfig) -> None:
        super().__init__()
        self.cfg = cfg
        self.video = VideoBranch(cfg)

    def forward(self, audio: Tensor, video: Tensor, mask: Tensor | None = None) -> DetectorOutput:
        logits, pooled = self.video(video, mask)
        return DetectorOutput(no_head(logits), logits, logits, pooled)


class LateFusion(nn.Module):
    """Both branches; the clip is fake unless both verdicts say real:
    fused logits = log [P_a(real)·P_v(real), 1 − P_a(real)·P_v(real)] (B, 2)."""

    def __init__(self, cfg: VideoOnlyConfig) -> None:
        super().__init__()
        self.cfg = cfg
        self.audio = AudioBranch(cfg)
        self.video = VideoBranch(cfg)

    def forward(self, audio: Tensor, video: Tensor, mask: Tensor | None = None) -> DetectorOutput:
        la, pa = self.audio(audio, mask)
        lv, pv = self.video(video, mask)
        log_real = F.log_softmax(la.float(), -1)[:, 0] + F.log_softmax(lv.float(), -1)[:, 0]
        # log(1 − e^x) for x = log P(real) < 0, kept finite when P(real) rounds to 1.
        log_fake = torch.log((-torch.expm1(log_real)).clamp_min(1e-12))
        fused = torch.stack([log_real, log_fake], dim=-1)
        return DetectorOutput(la, lv, fused, torch.cat([pa, pv], dim=-1))


def _ce_loss(
    out: DetectorOutput,
    labels: tuple[Tensor, Tensor, Tensor],
    weights: LossWeights,
    heads: tuple[str, ...],
) -> LossParts:
    """Cross-entropy of each head in ``heads`` (``audio``, ``video``, ``fused``) against its
    label, weighted by ``loss.<head>``; the other parts are 0 (nothing to train)."""
    targets = dict(zip(("audio", "video", "fused"), labels, strict=True))
    zero = out.fused_logits.new_zeros((), dtype=torch.float32)
    parts = {
        head: F.cross_entropy(getattr(out, f"{head}_logits").float(), targets[head])
        if head in heads
        else zero
        for head in targets
    }
    total = sum((getattr(weights, head) * parts[head] for head in heads), zero)
    return LossParts(total=total, align=zero, **parts)


def audio_only_loss(
    cfg: AudioOnlyConfig, out: DetectorOutput, audio_label: Tensor, video_label: Tensor,
    label: Tensor, mask: Tensor | None, weights: LossWeights, frame_label: Tensor | None,
) -> LossParts:  # fmt: skip
    """λa · CE(audio head, audio label)."""
    return _ce_loss(out, (audio_label, video_label, label), weights, ("audio",))


def video_only_loss(
    cfg: VideoOnlyConfig, out: DetectorOutput, audio_label: Tensor, video_label: Tensor,
    label: Tensor, mask: Tensor | None, weights: LossWeights, frame_label: Tensor | None,
) -> LossParts:  # fmt: skip
    """λv · CE(video head, video label)."""
    return _ce_loss(out, (audio_label, video_label, label), weights, ("video",))


def late_fusion_loss(
    cfg: VideoOnlyConfig, out: DetectorOutput, audio_label: Tensor, video_label: Tensor,
    label: Tensor, mask: Tensor | None, weights: LossWeights, frame_label: Tensor | None,
) -> LossParts:  # fmt: skip
    """λa · CE_a + λv · CE_v + λav · CE(fused, clip label)."""
    return _ce_loss(out, (audio_label, video_label, label), weights, ("audio", "video", "fused"))


def _audio_reads(cfg: AudioOnlyConfig) -> Reads:
    return Reads(streams=(), window=(1, cfg.max_frames))


def _video_reads(cfg: VideoOnlyConfig) -> Reads:
    return Reads(streams=(cfg.visual_input,), window=(1, cfg.max_frames))


@register_detector(
    "audio_only", config=AudioOnlyConfig, loss=audio_only_loss, reads=_audio_reads,
    presets={"tiny": "audio_only_tiny", "paper": "audio_only"}, modality_heads=("audio",),
)  # fmt: skip
def build_audio_only(cfg: AudioOnlyConfig) -> nn.Module:
    """MSCT's audio pre-encoder, a transformer over time and a head."""
    return AudioOnly(cfg)


@register_detector(
    "video_only", config=VideoOnlyConfig, loss=video_only_loss, reads=_video_reads,
    presets={"tiny": "video_only_tiny", "paper": "video_only"}, modality_heads=("video",),
)  # fmt: skip
def build_video_only(cfg: VideoOnlyConfig) -> nn.Module:
    """MSCT's visual pre-encoder, a transformer over time and a head."""
    return VideoOnly(cfg)


@register_detector(
    "late_fusion", config=VideoOnlyConfig, loss=late_fusion_loss, reads=_video_reads,
    presets={"tiny": "late_fusion_tiny", "paper": "late_fusion"},
)  # fmt: skip
def build_late_fusion(cfg: VideoOnlyConfig) -> nn.Module:
    """Both unimodal branches, fused by the product of their real probabilities."""
    return LateFusion(cfg)
