"""The MSCT training objective.

L = λa·CE(audio_logits, audio_label) + λv·CE(video_logits, video_label)
  + λav·CE(fused_logits, label) + λc·L_c,
L_c = mean over the batch of  y·(1 − d) + (1 − y)·max(0, d),  y = 1 only for real pairs (RARV),
d = cosine similarity of the audio and video token sequences [z1 … zT], by ``alignment``:

* ``"sequence"`` (default): each sequence flattened to one (T·C) vector, padded frames
  zeroed (zeros add nothing to the dot product or the norms, so d is exactly the
  similarity of the real frames). Frame t of the audio is compared with frame t of the
  video, so a lip-sync offset of a few frames lowers d: the cue the loss is there to teach.
* ``"mean"``: the cosine of the time-averaged embeddings (mean over real frames), as MRDF
  does. Insensitive to where in time the two modalities agree, so a shift of a few frames
  barely moves it.

With a frame head (``model.frame_head``, not the paper's) the loss adds
λf·BCE(frame_logits, frame_label), the mean over the real (unpadded) frames of the batch,
λf = ``frame``; without one the objective is exactly the above.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch.nn.functional as F
from torch import Tensor

from .msct import MSCTOutput, masked_mean

ALIGNMENTS: tuple[str, ...] = ("sequence", "mean")


@dataclass
class LossWeights:
    """λa, λv, λav, λc, and how L_c compares the two token sequences (``alignment``)."""

    audio: float = 1.0
    video: float = 1.0
    fused: float = 1.0
    align: float = 1.0
    alignment: str = "sequence"
    frame: float = 1.0  # λf: weight of the per-frame BCE, used only with a frame head

    def __post_init__(self) -> None:
        if self.alignment not in ALIGNMENTS:
            raise ValueError(f"alignment must be one of {ALIGNMENTS}, got {self.alignment!r}")


@dataclass
class LossParts:
    """The weighted total and each unweighted term (0-dim tensors)."""

    total: Tensor
    audio: Tensor
    video: Tensor
    fused: Tensor
    align: Tensor
    frame: Tensor | None = None  # the per-frame BCE; None without a frame head


def sequence_cosine(za: Tensor, zv: Tensor, mask: Tensor | None) -> Tensor:
    """Cosine similarity of two token sequences. za, zv (B, T, C), mask (B, T) → (B,) fp32."""
    za, zv = za.float(), zv.float()
    if mask is not None:
        keep = mask[..., None].to(za.dtype)
        za, zv = za * keep, zv * keep
    return F.cosine_similarity(za.flatten(1), zv.flatten(1), dim=1, eps=1e-8)


def mean_cosine(za: Tensor, zv: Tensor, mask: Tensor | None) -> Tensor:
    """Cosine similarity of the time-averaged embeddings (MRDF's L_c).
    za, zv (B, T, C), mask (B, T) → (B,) fp32."""
    ma, mv = masked_mean(za.float(), mask), masked_mean(zv.float(), mask)
    return F.cosine_similarity(ma, mv, dim=1, eps=1e-8)


def alignment_loss(d: Tensor, pair: Tensor) -> Tensor:
    """y·(1 − d) + (1 − y)·max(0, d), averaged. d (B,) similarity, pair (B,) 1 = real pair."""
    y = pair.to(d.dtype)
    return (y * (1.0 - d) + (1.0 - y) * d.clamp_min(0.0)).mean()


def msct_loss(
    out: MSCTOutput,
    audio_label: Tensor,
    video_label: Tensor,
    label: Tensor,
    mask: Tensor | None,
    weights: LossWeights,
    frame_label: Tensor | None = None,
) -> LossParts:
    """labels are (B,) int64, 1 = fake. The alignment target y = 1 only for real pairs (RARV):
    y = (audio_label == 0) & (video_label == 0). ``frame_label`` (B, T) float 0/1 is the
    target of ``out.frame_logits``; both or neither must be given."""
    # Each head is scored against its own modality's label: audio logits ↔ audio label.
    ce_audio = F.cross_entropy(out.audio_logits.float(), audio_label)
    ce_video = F.cross_entropy(out.video_logits.float(), video_label)
    ce_fused = F.cross_entropy(out.fused_logits.float(), label)
    pair = (audio_label == 0) & (video_label == 0)
    similarity = mean_cosine if weights.alignment == "mean" else sequence_cosine
    align = alignment_loss(similarity(out.audio_tokens, out.video_tokens, mask), pair)
    total = (
        weights.audio * ce_audio
        + weights.video * ce_video
        + weights.fused * ce_fused
        + weights.align * align
    )
    frame = None
    if (out.frame_logits is None) != (frame_label is None):
        raise ValueError("frame_label must be given exactly when the model has a frame head")
    if out.frame_logits is not None and frame_label is not None:
        frame = frame_bce(out.frame_logits, frame_label, mask)
        total = total + weights.frame * frame
    return LossParts(
        total=total, audio=ce_audio, video=ce_video, fused=ce_fused, align=align, frame=frame
    )


def frame_bce(logits: Tensor, target: Tensor, mask: Tensor | None) -> Tensor:
    """Mean BCE over the real frames. logits, target (B, T), mask (B, T) bool | None → () fp32."""
    losses = F.binary_cross_entropy_with_logits(logits.float(), target.float(), reduction="none")
    if mask is None:
        return losses.mean()
    keep = mask.to(losses.dtype)
    return (losses * keep).sum() / keep.sum().clamp_min(1.0)
