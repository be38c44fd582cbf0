"""MRDF-CE and MRDF-Margin (``mrdf_ce``, ``mrdf_margin``).

Source: Zou et al., "Cross-Modality and Within-Modality Regularization for Audio-Visual
DeepFake Detection", ICASSP 2024, and its authors' public code
(github.com/Vincent-ZHQ/MRDF: ``model/mrdf_ce.py``, ``model/mrdf_margin.py``,
``loss.py``), which builds the model from AV-HuBERT's modules. Written here from those,
not copied. What it follows:

* **Inputs**: 26 log filter banks per 10 ms, four stacked per video frame = 104 channels
  (the store's ``--audio-features fbank``; an MFCC store is refused), and the video.
* **Pre-encoders** (AV-HuBERT's feature extractors with no layers of their own): audio a
  linear layer 104 → D; video :class:`~trainer.model.mrdf_video.ResEncoder` then a linear
  layer to D. Their outputs are the per-frame tokens ``audio_tokens``/``video_tokens``.
* **Fusion**: the two token sequences concatenated per frame (2D), LayerNorm, a linear
  layer 2D → D, then AV-HuBERT's transformer encoder: a convolutional position
  embedding (a grouped, weight-normed Conv1d of ``conv_pos`` taps, GELU) added to the
  tokens, LayerNorm, and ``depth`` post-norm layers (``layer_norm_first`` is false in
  AV-HuBERT Base). The fused head reads the encoder's first token (AV-HuBERT has no
  CLS token; the source reads ``av_features[:, 0, :]``) through Linear-ReLU-Linear.
* **Within-modality branch**: each modality's tokens through LayerNorm-Linear-Dropout
  and a mean over time: MRDF-CE puts a linear classifier on it, trained with cross-
  entropy on that modality's label; MRDF-Margin trains the embedding with the margin
  loss over every pair of the batch (same label: 1 − cos; different: max(0, cos − m)).
* **Cross-modality loss**: on the pre-encoder tokens' time means (``loss.alignment=mean``
  in the presets), y·(1 − cos) + (1 − y)·max(0, cos − ``margin_contrast``), y = 1 for
  real pairs only.
* **Objective**: CE(fused) + audio term + video term + contrast, each of weight 1 in
  the source (``loss.fused``, ``loss.audio``, ``loss.video``, ``loss.align`` here);
  margins 0 (the authors' defaults).

Choices the source leaves open or that differ here (``docs/model.md``):

* The authors' MRDF-CE code scores the video logits against the audio label and the
  audio logits against the video label (``loss_fn`` swaps them); here each head is
  scored against its own modality's label, as the paper describes.
* The video is the store's RGB face crop (``visual_input=face``, 3-channel front-end,
  ImageNet normalisation) or its 88×88 grayscale mouth crop (``mouth``, AV-HuBERT's
  input and normalisation). The source reads whole grayscale frames at half size,
  cropped to 100×100.
* Audio is normalised per clip and channel (the trainer's rule); the source applies a
  layer norm over the whole (T, 104) clip.
* Windows of ``window`` frames, scored per window and averaged per clip (the trainer's
  protocol); the source trains on whole clips of up to 500 frames.
* No AV-HuBERT pre-training is loaded (neither does the source: it builds the model
  from its config); dropout inside attention and after the activation share one rate.
* MRDF-Margin has no per-modality classifier: its audio and video scores are 0.5.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.nn.utils.parametrizations import weight_norm

from .config import ConfigBasics
from .loss import LossParts, LossWeights, alignment_loss, mean_cosine, sequence_cosine
from .mrdf_video import ResEncoder
from .outputs import DetectorOutput, masked_mean, no_head
from .registry import Reads, register_detector

VARIANTS: tuple[str, ...] = ("mrdf_ce", "mrdf_margin")


@dataclass
class MRDFConfig(ConfigBasics):
    """Sizes of MRDF (the ``paper`` presets: AV-HuBERT Base, as the source)."""

    dim: int  # D, the encoder width (768)
    depth: int  # fusion transformer layers (12)
    heads: int  # attention heads (12)
    ffn_dim: int  # feed-forward width (3072)
    dropout: float  # transformer dropout (0.1)
    name: str = "mrdf_ce"  # "mrdf_ce" | "mrdf_margin"
    audio_channels: int = 104
    max_frames: int = 512  # longest window accepted
    video_frontend: int = 64  # channels of the 3D front-end convolution
    video_widths: tuple[int, ...] = (64, 128, 256, 512)  # ResNet-18 stage widths
    video_depths: tuple[int, ...] = (2, 2, 2, 2)  # BasicBlocks per stage
    conv_pos: int = 128  # taps of the convolutional position embedding
    conv_pos_groups: int = 16  # its groups; divide dim
    margin_contrast: float = 0.0  # m of the cross-modality loss
    margin_audio: float = 0.0  # m of MRDF-Margin's audio margin loss
    margin_video: float = 0.0  # m of MRDF-Margin's video margin loss
    visual_input: str = "face"  # "face" (RGB face crops) | "mouth" (grayscale mouth crops)
    frame_head: bool = False  # MRDF has none

    def __post_init__(self) -> None:
        self.video_widths = tuple(int(w) for w in self.video_widths)
        self.video_depths = tuple(int(d) for d in self.video_depths)
        if self.name not in VARIANTS:
            raise ValueError(f"an MRDF config's name must be one of {VARIANTS}, not {self.name!r}")
        if self.heads < 1 or self.dim % self.heads:
            raise ValueError(f"dim ({self.dim}) must be divisible by heads ({self.heads})")
        if self.conv_pos < 1 or self.conv_pos_groups < 1 or self.dim % self.conv_pos_groups:
            raise ValueError(f"conv_pos ≥ 1 and conv_pos_groups dividing dim ({self.dim})")
        if not self.video_widths or len(self.video_widths) != len(self.video_depths):
            raise ValueError("video_widths and video_depths must be non-empty, of equal length")
        if min(self.video_depths) < 1 or self.depth < 1 or self.ffn_dim < 1:
            raise ValueError("video_depths, depth and ffn_dim must be ≥ 1")
        self.check_visual_input()


@dataclass
class MRDFOutput(DetectorOutput):
    """The heads, and what MRDF's losses read."""

    audio_tokens: Tensor | None = None  # (B, T, D) audio pre-encoder tokens
    video_tokens: Tensor | None = None  # (B, T, D) video pre-encoder tokens
    audio_embedding: Tensor | None = None  # (B, D) within-modality audio embedding
    video_embedding: Tensor | None = None  # (B, D) within-modality video embedding


class ConvPositions(nn.Module):
    """wav2vec 2.0 / AV-HuBERT convolutional position embedding. (B, T, D) → (B, T, D)."""

    def __init__(self, dim: int, taps: int, groups: int, dropout: float) -> None:
        super().__init__()
        conv = nn.Conv1d(dim, dim, taps, padding=taps // 2, groups=groups)
        nn.init.normal_(conv.weight, 0.0, math.sqrt(4 * (1.0 - dropout) / (taps * dim)))
        if conv.bias is not None:
            nn.init.zeros_(conv.bias)
        self.conv = weight_norm(conv, name="weight", dim=2)
        self.trim = 1 if taps % 2 == 0 else 0  # an even kernel gives one frame too many

    def forward(self, x: Tensor) -> Tensor:
        y = self.conv(x.transpose(1, 2))
        if self.trim:
            y = y[..., : -self.trim]
        return F.gelu(y).transpose(1, 2)


class FusionEncoder(nn.Module):
    """AV-HuBERT's encoder: x + pos(x) → LayerNorm → dropout → post-norm layers.
    (B, T, D), mask (B, T) bool | None → (B, T, D)."""

    def __init__(self, cfg: MRDFConfig) -> None:
        super().__init__()
        self.positions = ConvPositions(cfg.dim, cfg.conv_pos, cfg.conv_pos_groups, cfg.dropout)
        self.norm = nn.LayerNorm(cfg.dim)
        self.drop = nn.Dropout(cfg.dropout)
        layer = nn.TransformerEncoderLayer(
            cfg.dim, cfg.heads, cfg.ffn_dim, cfg.dropout,
            activation="gelu", batch_first=True, norm_first=False,
        )  # fmt: skip
        self.layers = nn.TransformerEncoder(layer, cfg.depth, enable_nested_tensor=False)

    def forward(self, x: Tensor, mask: Tensor | None) -> Tensor:
        if mask is not None:  # padded tokens must not leak into the convolution
            x = x * mask[..., None].to(x.dtype)
        x = self.drop(self.norm(x + self.positions(x)))
        return self.layers(x, src_key_padding_mask=None if mask is None else ~mask)


def _projection(dim: int, dropout: float) -> nn.Sequential:
    return nn.Sequential(nn.LayerNorm(dim), nn.Linear(dim, dim), nn.Dropout(dropout))


class MRDF(nn.Module):
    """forward(audio (B, T, 104), video (B, K, T, H, W), mask (B, T) | None) → MRDFOutput."""

    def __init__(self, cfg: MRDFConfig) -> None:
        super().__init__()
        self.cfg = cfg
        self.audio_encoder = nn.Linear(cfg.audio_channels, cfg.dim)
        self.video_trunk = ResEncoder(
            cfg.visual_channels, cfg.video_frontend, cfg.video_widths, cfg.video_depths
        )
        self.video_encoder = nn.Linear(self.video_trunk.out_dim, cfg.dim)
        self.fuse_norm = nn.LayerNorm(2 * cfg.dim)
        self.fuse_proj = nn.Linear(2 * cfg.dim, cfg.dim)
        self.fusion = FusionEncoder(cfg)
        self.fused_head = nn.Sequential(
            nn.Linear(cfg.dim, cfg.dim), nn.ReLU(inplace=True), nn.Linear(cfg.dim, 2)
        )
        self.project_audio = _projection(cfg.dim, cfg.dropout)
        self.project_video = _projection(cfg.dim, cfg.dropout)
        if cfg.name == "mrdf_ce":
            self.audio_head = nn.Linear(cfg.dim, 2)
            self.video_head = nn.Linear(cfg.dim, 2)

    def forward(self, audio: Tensor, video: Tensor, mask: Tensor | None = None) -> MRDFOutput:
        fa = self.audio_encoder(audio)
        fv = self.video_encoder(self.video_trunk(video, mask))
        fused = self.fusion(self.fuse_proj(self.fuse_norm(torch.cat([fa, fv], dim=-1))), mask)
        first = fused[:, 0]  # the source's av_features[:, 0, :]
        ea = masked_mean(self.project_audio(fa), mask)
        ev = masked_mean(self.project_video(fv), mask)
        fused_logits = self.fused_head(first)
        if self.cfg.name == "mrdf_ce":
            la, lv = self.audio_head(ea), self.video_head(ev)
        else:
            la, lv = no_head(fused_logits), no_head(fused_logits)
        return MRDFOutput(
            audio_logits=la, video_logits=lv, fused_logits=fused_logits, embedding=first,
            audio_tokens=fa, video_tokens=fv, audio_embedding=ea, video_embedding=ev,
        )  # fmt: skip


def margin_loss(embedding: Tensor, labels: Tensor, margin: float) -> Tensor:
    """MRDF's within-modality margin loss over every ordered pair (i, j) of the batch:
    1 − cos(e_i, e_j) for equal labels, max(0, cos − margin) otherwise; the mean.
    embedding (B, D), labels (B,) → () fp32."""
    e = F.normalize(embedding.float(), dim=-1, eps=1e-8)
    cos = e @ e.T
    same = labels[:, None] == labels[None, :]
    return torch.where(same, 1.0 - cos, (cos - margin).clamp_min(0.0)).mean()


def mrdf_loss(
    cfg: MRDFConfig, out: MRDFOutput, audio_label: Tensor, video_label: Tensor,
    label: Tensor, mask: Tensor | None, weights: LossWeights, frame_label: Tensor | None,
) -> LossParts:  # fmt: skip
    """λav·CE(fused) + λa·audio term + λv·video term + λc·contrast (see the module)."""
    assert out.audio_tokens is not None and out.video_tokens is not None
    assert out.audio_embedding is not None and out.video_embedding is not None
    fused = F.cross_entropy(out.fused_logits.float(), label)
    if cfg.name == "mrdf_ce":
        audio = F.cross_entropy(out.audio_logits.float(), audio_label)
        video = F.cross_entropy(out.video_logits.float(), video_label)
    else:
        audio = margin_loss(out.audio_embedding, audio_label, cfg.margin_audio)
        video = margin_loss(out.video_embedding, video_label, cfg.margin_video)
    similarity = mean_cosine if weights.alignment == "mean" else sequence_cosine
    pair = (audio_label == 0) & (video_label == 0)
    d = similarity(out.audio_tokens, out.video_tokens, mask)
    align = alignment_loss(d - cfg.margin_contrast * (1 - pair.to(d.dtype)), pair)
    total = weights.fused * fused + weights.audio * audio + weights.video * video
    return LossParts(
        total=total + weights.align * align, audio=audio, video=video, fused=fused, align=align
    )


def _reads(cfg: MRDFConfig) -> Reads:
    return Reads(streams=(cfg.visual_input,), features="fbank", window=(1, cfg.max_frames))


@register_detector(
    "mrdf_ce", config=MRDFConfig, loss=mrdf_loss, reads=_reads,
    presets={"tiny": "mrdf_ce_tiny", "paper": "mrdf_ce"},
)  # fmt: skip
def build_mrdf_ce(cfg: MRDFConfig) -> nn.Module:
    """MRDF with cross-entropy within each modality (Zou et al., ICASSP 2024)."""
    return MRDF(cfg)


@register_detector(
    "mrdf_margin", config=MRDFConfig, loss=mrdf_loss, reads=_reads,
    presets={"tiny": "mrdf_margin_tiny", "paper": "mrdf_margin"}, modality_heads=(),
)  # fmt: skip
def build_mrdf_margin(cfg: MRDFConfig) -> nn.Module:
    """MRDF with the margin loss within each modality (Zou et al., ICASSP 2024)."""
    return MRDF(cfg)
