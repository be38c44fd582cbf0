"""What every detector's forward returns: the three heads' logits and an embedding.

Evaluation and prediction read ``audio_logits``, ``video_logits`` and ``fused_logits``
(class 1 = fake), ``embedding`` (the t-SNE plot) and ``frame_logits``; a detector's loss
may read more (:class:`trainer.model.msct.MSCTOutput` and
:class:`trainer.model.mrdf.MRDFOutput` add token sequences and embeddings).

A detector without a head for one modality gives that head :func:`no_head` logits: both
classes equal, so its fake probability is exactly 0.5 for every clip (an AUC of 0.5, no
information), rather than a number that looks like a verdict.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor


@dataclass
class DetectorOutput:
    """The heads every detector has (or fills with :func:`no_head`)."""

    audio_logits: Tensor  # (B, 2), class 1 = fake audio
    video_logits: Tensor  # (B, 2), class 1 = fake video
    fused_logits: Tensor  # (B, 2), class 1 = fake clip
    embedding: Tensor  # (B, E), what the clip-level head reads (for t-SNE)
    frame_logits: Tensor | None = None  # (B, T) per-frame fake logits, where a detector has them


def no_head(like: Tensor) -> Tensor:
    """Logits ``(B, 2)`` of zeros for a head a detector lacks; ``like`` is any (B, ...) tensor
    on the right device (its dtype is kept)."""
    return torch.zeros(like.shape[0], 2, dtype=like.dtype, device=like.device)


def masked_mean(tokens: Tensor, mask: Tensor | None) -> Tensor:
    """Mean over the real frames. tokens (B, T, C), mask (B, T) bool | None → (B, C)."""
    if mask is None:
        return tokens.mean(dim=1)
    keep = mask[..., None].to(tokens.dtype)
    return (tokens * keep).sum(dim=1) / keep.sum(dim=1).clamp_min(1.0)
