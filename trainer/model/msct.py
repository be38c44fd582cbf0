"""MSCT: multi-scale cross-modal transformer for audio-visual deepfake detection.

audio (B, T, 104) ─linear─► (B, T, C) ─┐
                                        ├─► CrossModalEncoder ─► za, zv (B, 1+T, C)
video (B, 3, T, H, W) ─per-frame CNN─► ─┘
[za[:, 0] ‖ zv[:, 0]] (the CLS tokens) → fused head;
audio / video head ← mean of [z1 … zT] over real frames (``unimodal_head="mean"``, default)
                     or the modality's CLS token (``unimodal_head="cls"``);
frame head (``frame_head=True`` only) ← [za[:, t] ‖ zv[:, t]] for every t → (B, T) logits.

Why ``mean`` by default: the paper regularises the token sequence [z1 … zT] of each
modality with that modality's cross-entropy, following MRDF-CE, whose uni-modal
classifiers read mean-pooled tokens. Every frame token then gets a direct per-modality
gradient, and the CLS tokens are left to the fused head. ``cls`` reads the CLS tokens
instead, as the heads of a plain ViT-style classifier would.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor, nn

from .config import ModelConfig
from .encoder import CrossModalEncoder
from .visual import VisualPreEncoder


@dataclass
class MSCTOutput:
    """Everything the loss, the metrics and the plots need from one forward pass."""

    audio_logits: Tensor  # (B, 2), class 1 = fake audio
    video_logits: Tensor  # (B, 2), class 1 = fake video
    fused_logits: Tensor  # (B, 2), class 1 = fake clip
    embedding: Tensor  # (B, 2C) audio CLS ‖ video CLS, the fused head's input (for t-SNE)
    audio_tokens: Tensor  # (B, T, C) audio [z1 … zT] after the final norm
    video_tokens: Tensor  # (B, T, C) video [z1 … zT] after the final norm
    frame_logits: Tensor | None = None  # (B, T) per-frame fake logits; None without a frame head


def masked_mean(tokens: Tensor, mask: Tensor | None) -> Tensor:
    """Mean over the real frames. tokens (B, T, C), mask (B, T) bool | None → (B, C).

    Padded tokens are zeroed rather than just left out of the count, so that whatever
    they hold (they are computed but meaningless) cannot reach the result."""
    if mask is None:
        return tokens.mean(dim=1)
    keep = mask[..., None].to(tokens.dtype)
    return (tokens * keep).sum(dim=1) / keep.sum(dim=1).clamp_min(1.0)


class MSCT(nn.Module):
    """The full detector. See :class:`ModelConfig` for the sizes and ablation switches."""

    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__()
        self.cfg = cfg
        self.audio_encoder = nn.Linear(cfg.audio_channels, cfg.dim)
        self.visual_encoder = VisualPreEncoder(cfg)
        self.encoder = CrossModalEncoder(cfg)
        self.audio_head = nn.Linear(cfg.dim, 2)
        self.video_head = nn.Linear(cfg.dim, 2)
        self.fused_head = nn.Linear(2 * cfg.dim, 2)
        if cfg.frame_head:
            # Created only when asked for: without it the parameters (names, count, the
            # order of their initialisation) are exactly the paper model's.
            self.frame_head = nn.Linear(2 * cfg.dim, 1)

    def forward(self, audio: Tensor, video: Tensor, mask: Tensor | None = None) -> MSCTOutput:
        """audio (B, T, 104) float; video (B, K, T, H, W) float (already normalised; K = 3
        for face crops, 1 for mouth crops, ``cfg.visual_channels``);
        mask (B, T) bool, True = real frame, False = padding (None = all valid)."""
        self._check(audio, video, mask)
        fa = self.audio_encoder(audio)
        fv = self.visual_encoder(video, mask)
        za, zv = self.encoder(fa, fv, mask)
        cls_a, cls_v = za[:, 0], zv[:, 0]
        embedding = torch.cat([cls_a, cls_v], dim=-1)
        if self.cfg.unimodal_head == "mean":
            head_a, head_v = masked_mean(za[:, 1:], mask), masked_mean(zv[:, 1:], mask)
        else:
            head_a, head_v = cls_a, cls_v
        frame_logits = None
        if self.cfg.frame_head:
            # Each time step's fused token: the audio and video tokens of that frame.
            frame_logits = self.frame_head(torch.cat([za[:, 1:], zv[:, 1:]], dim=-1))[..., 0]
        return MSCTOutput(
            audio_logits=self.audio_head(head_a),
            video_logits=self.video_head(head_v),
            fused_logits=self.fused_head(embedding),
            embedding=embedding,
            audio_tokens=za[:, 1:],
            video_tokens=zv[:, 1:],
            frame_logits=frame_logits,
        )

    def _check(self, audio: Tensor, video: Tensor, mask: Tensor | None) -> None:
        # Shape mistakes otherwise surface as an opaque matmul error deep in the encoder.
        if audio.ndim != 3 or audio.shape[-1] != self.cfg.audio_channels:
            raise ValueError(
                f"audio must be (B, T, {self.cfg.audio_channels}), got {tuple(audio.shape)}"
            )
        b, t = audio.shape[:2]
        k = self.cfg.visual_channels  # 3 for face crops, 1 for mouth crops
        if video.ndim != 5 or video.shape[:3] != (b, k, t):
            raise ValueError(
                f"video must be (B, {k}, T, H, W) = ({b}, {k}, {t}, H, W), got {tuple(video.shape)}"
            )
        if t < 1:
            raise ValueError("a clip needs at least one frame")
        if mask is not None and (mask.shape != (b, t) or mask.dtype != torch.bool):
            raise ValueError(f"mask must be bool ({b}, {t}), got {mask.dtype} {tuple(mask.shape)}")
