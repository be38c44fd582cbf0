"""The cross-modal transformer: CLS tokens, positions, masks and the stacked blocks.

Each block runs, for audio and video in parallel and with pre-norm residuals:
    x ← x + SelfAttn(norm(x))                      (MSSA or SA, within the modality)
    x ← x + CrossAttn(norm(x), norm(other))        (DCA or CA, both directions at once)
    x ← x + FFN(norm(x))
The two branches have separate weights; they only meet in the cross attention.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

from .attention import (
    CrossAttention,
    DifferentialCrossAttention,
    PaperDifferentialCrossAttention,
    SelfAttention,
    as_dtype,
)
from .config import ModelConfig


def sinusoidal_positions(length: int, dim: int) -> Tensor:
    """Fixed sine/cosine table (length, dim). Fixed rather than learned so every row is
    meaningful for any T ≤ max_frames, including lengths never seen in training."""
    pos = torch.arange(length, dtype=torch.float32)[:, None]
    freq = torch.exp(torch.arange(0, dim, 2, dtype=torch.float32) * (-math.log(10000.0) / dim))
    table = torch.zeros(length, dim + dim % 2)
    table[:, 0::2] = torch.sin(pos * freq)
    table[:, 1::2] = torch.cos(pos * freq)
    return table[:, :dim]


class FeedForward(nn.Module):
    """Linear → GELU → Linear, with dropout. (B, L, C) → (B, L, C)."""

    def __init__(self, dim: int, hidden: int, dropout: float) -> None:
        super().__init__()
        self.net = nn.Sequential(
            nn.Linear(dim, hidden),
            nn.GELU(),
            nn.Dropout(dropout),
            nn.Linear(hidden, dim),
            nn.Dropout(dropout),
        )

    def forward(self, x: Tensor) -> Tensor:
        return self.net(x)


class Branch(nn.Module):
    """The layers one modality owns inside a block (a container, no forward of its own)."""

    def __init__(self, cfg: ModelConfig, layer: int) -> None:
        super().__init__()
        kernels = cfg.mssa_kernels if cfg.attn_self == "mssa" else None
        self.norm_self = nn.LayerNorm(cfg.dim)
        self.self_attn = SelfAttention(cfg.dim, cfg.heads, cfg.dropout, kernels, cfg.mssa_kernel)
        self.norm_cross = nn.LayerNorm(cfg.dim)
        self.cross_attn: nn.Module
        if cfg.attn_cross == "dca" and cfg.dca_form == "paper":
            self.cross_attn = PaperDifferentialCrossAttention(cfg.dim, cfg.heads, cfg.dropout)
        elif cfg.attn_cross == "dca":
            self.cross_attn = DifferentialCrossAttention(cfg.dim, cfg.heads, layer, cfg.dropout)
        else:
            self.cross_attn = CrossAttention(cfg.dim, cfg.heads, cfg.dropout)
        self.norm_ffn = nn.LayerNorm(cfg.dim)
        self.ffn = FeedForward(cfg.dim, int(cfg.dim * cfg.mlp_ratio), cfg.dropout)


class Block(nn.Module):
    """One MSCT block. a, v (B, L, C), mask (B, L) | None → (a, v) of the same shapes."""

    def __init__(self, cfg: ModelConfig, layer: int) -> None:
        super().__init__()
        self.audio = Branch(cfg, layer)
        self.video = Branch(cfg, layer)

    def forward(self, a: Tensor, v: Tensor, mask: Tensor | None) -> tuple[Tensor, Tensor]:
        au, vi = self.audio, self.video
        a = a + au.self_attn(au.norm_self(a), mask)
        v = v + vi.self_attn(vi.norm_self(v), mask)
        ha, hv = au.norm_cross(a), vi.norm_cross(v)
        a, v = a + au.cross_attn(ha, hv, mask), v + vi.cross_attn(hv, ha, mask)
        a = a + au.ffn(au.norm_ffn(a))
        v = v + vi.ffn(vi.norm_ffn(v))
        return a, v


class CrossModalEncoder(nn.Module):
    """CLS + positions + ``depth`` blocks + final norms.

    forward(audio (B, T, C), video (B, T, C), mask (B, T) bool | None)
        → (za (B, 1+T, C), zv (B, 1+T, C)), CLS at index 0.
    Frame t gets position t (0-based); the CLS tokens get no position (they are not time
    steps) and are always unmasked, so every query has a real key to attend to.
    """

    positions: Tensor  # (max_frames, dim) sinusoidal table, a buffer

    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__()
        self.max_frames = cfg.max_frames
        self.cls_audio = nn.Parameter(torch.randn(1, 1, cfg.dim) * 0.02)
        self.cls_video = nn.Parameter(torch.randn(1, 1, cfg.dim) * 0.02)
        self.register_buffer(
            "positions", sinusoidal_positions(cfg.max_frames, cfg.dim), persistent=False
        )
        self.drop = nn.Dropout(cfg.dropout)
        self.blocks = nn.ModuleList(Block(cfg, layer) for layer in range(1, cfg.depth + 1))
        self.norm_audio = nn.LayerNorm(cfg.dim)
        self.norm_video = nn.LayerNorm(cfg.dim)

    def forward(
        self, audio: Tensor, video: Tensor, mask: Tensor | None = None
    ) -> tuple[Tensor, Tensor]:
        b, t, _ = audio.shape
        if t > self.max_frames:
            raise ValueError(
                f"clip has {t} frames but the model supports at most {self.max_frames}"
            )
        pos = as_dtype(self.positions[:t], audio.dtype)
        cls_a = as_dtype(self.cls_audio.expand(b, -1, -1), audio.dtype)
        cls_v = as_dtype(self.cls_video.expand(b, -1, -1), video.dtype)
        a = torch.cat([cls_a, audio + pos], dim=1)
        v = torch.cat([cls_v, video + pos], dim=1)
        key_mask = None
        if mask is not None:
            key_mask = torch.cat([mask.new_ones(b, 1), mask], dim=1)
        a, v = self.drop(a), self.drop(v)
        for block in self.blocks:
            a, v = block(a, v, key_mask)
        return self.norm_audio(a), self.norm_video(v)
