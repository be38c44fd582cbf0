"""MDS, the modality dissonance score (``mds``).

Source: Chugh et al., "Not made for each other: Audio-Visual Dissonance-based Deepfake
Detection and Localization", ACM MM 2020, and its authors' public code
(github.com/abhinavdhall/deepfake, ``ACM_MM_2020/``: ``model.py``, ``train.py``,
``utils.py``, ``test.py``). Written here from those, not copied. What it follows:

* **Chunks**: the window is cut into non-overlapping chunks of ``chunk_frames`` frames
  (the source: 1 s = 30 frames of DFDC's 30 fps video; here 1 s = 25 frames of the
  store), each encoded on its own: a chunk is one sample of the source's batches.
* **Streams** (:mod:`trainer.model.mds_encoders`): the chunk's MFCC through a 2-D CNN
  and the chunk's face frames through DPC's 2D-3D ResNet-18, each followed by two linear
  layers to a ``dim``-wide chunk embedding (the source: 1024).
* **Per-stream classifiers**: BatchNorm1d, dropout, a linear layer to two classes on
  each chunk embedding, trained with cross-entropy per chunk; a clip's audio (video)
  logits are the mean of its chunks' logits.
* **Contrastive loss** per chunk, on the Euclidean distance d of the two embeddings:
  y·d² + (1 − y)·max(0, m − d)², y = 1 for a real pair, margin m = 0.99 (``margin``).
* **Objective**: CE_audio + CE_video + contrast, each of weight 1 (the source's
  ``loss1 + loss2 + loss3``: ``loss.audio``, ``loss.video``, ``loss.align`` here).
* **Score**: MDS = the mean over a clip's chunks of d; the source calls a clip fake when
  its MDS reaches a threshold set by hand (``test.py``: 0.6).

Choices the source leaves open or that differ here (``docs/model.md``):

* **Fused head**: logits (0, (MDS − τ)/σ), so P(fake) = sigmoid((MDS − τ)/σ) rises with
  the MDS and the fused AUC is the MDS's own. τ (initially ``threshold``, the source's
  0.6) and σ (initially ``threshold_scale``) are learned by cross-entropy against the
  clip label (``loss.fused``) on the MDS with its gradient stopped: a two-parameter
  calibration in place of a threshold picked by hand per dataset, which leaves the
  embeddings trained by the source's objective alone. ``learn_threshold=false`` keeps
  τ and σ fixed.
* Each classifier is scored against its own modality's label (the source's DFDC has one
  label per clip, used for both); the contrastive pair is real when both are.
* Audio: the store's MFCC (13 cepstra per 10 ms with the log energy in c0, as the
  source's ``python_speech_features.mfcc``), four hops per video frame, normalised per
  clip; ``audio_deltas=true`` adds the store's 13 deltas as 13 more rows. Video: the
  store's face crop (or mouth crop, ``visual_input``), not the source's S3FD crop at 224².
* A chunk partly past the window's real frames (a window shorter than a chunk, or its
  tail) is zero-filled to ``chunk_frames`` (zero is the normalised mean), and a chunk
  with no real frame is left out of every loss, mean and BatchNorm; the source drops a
  clip's tail shorter than a chunk.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .config import ConfigBasics
from .loss import LossParts, LossWeights
from .mds_encoders import AudioChunkEncoder, VideoChunkEncoder, audio_map_size
from .outputs import DetectorOutput, masked_mean
from .registry import Reads, register_detector

#: 10 ms audio hops per video frame, and features per hop (13 MFCC + 13 deltas).
HOPS_PER_FRAME, FEATURES_PER_HOP, CEPSTRA = 4, 26, 13


@dataclass
class MDSConfig(ConfigBasics):
    """Sizes of MDS (the ``paper`` preset: the authors' code's)."""

    dim: int  # chunk embedding width (1024)
    hidden: int  # width of the two-layer projection of each stream (4096)
    chunk_frames: int  # frames per chunk (25 = 1 s of the store's 25 fps)
    dropout: float  # before the per-stream classifiers (0.5)
    name: str = "mds"
    audio_channels: int = 104  # 4 hops × 26 features per video frame
    max_frames: int = 512  # longest window accepted
    audio_deltas: bool = False  # the audio image: 13 cepstra, or 26 with their deltas
    audio_widths: tuple[int, ...] = (64, 192, 384, 256, 256, 512)  # the six audio convs
    video_stem: int = 64
    video_widths: tuple[int, ...] = (64, 128, 256, 256)  # 2D-3D ResNet-18 stage widths
    video_depths: tuple[int, ...] = (2, 2, 2, 2)
    video_grid: int = 7  # cells per side of the pooled video map (7: the source's 224²)
    margin: float = 0.99  # m of the contrastive loss
    threshold: float = 0.6  # τ: the MDS at P(fake) = 0.5 (its start when learned)
    threshold_scale: float = 0.1  # σ: the MDS change that moves the fake logit by 1
    learn_threshold: bool = True  # τ and σ learned by loss.fused, or fixed
    visual_input: str = "face"
    frame_head: bool = False  # MDS has none

    def __post_init__(self) -> None:
        self.audio_widths = tuple(int(w) for w in self.audio_widths)
        self.video_widths = tuple(int(w) for w in self.video_widths)
        self.video_depths = tuple(int(d) for d in self.video_depths)
        if self.name != "mds":
            raise ValueError(f"MDSConfig is MDS's: its name is 'mds', not {self.name!r}")
        if self.audio_channels != HOPS_PER_FRAME * FEATURES_PER_HOP:
            raise ValueError(f"audio_channels must be {HOPS_PER_FRAME * FEATURES_PER_HOP}")
        if min(audio_map_size(self.coefficients, HOPS_PER_FRAME * self.chunk_frames)) < 1:
            raise ValueError(f"chunk_frames must be ≥ 5 (the audio CNN), got {self.chunk_frames}")
        if len(self.audio_widths) != 6 or min(self.audio_widths) < 1:
            raise ValueError(f"audio_widths must be six widths ≥ 1, got {self.audio_widths}")
        if not self.video_widths or len(self.video_widths) != len(self.video_depths):
            raise ValueError("video_widths and video_depths must be non-empty, of equal length")
        if min(self.video_depths) < 1 or min(self.dim, self.hidden, self.video_grid) < 1:
            raise ValueError("video_depths, dim, hidden and video_grid must be ≥ 1")
        if self.margin <= 0 or self.threshold_scale <= 0 or not 0 <= self.dropout < 1:
            raise ValueError("margin and threshold_scale must be > 0, dropout in [0, 1)")
        if self.max_frames < 1:
            raise ValueError("max_frames must be ≥ 1")
        self.check_visual_input()

    @property
    def coefficients(self) -> int:
        """Rows of the audio image: the 13 cepstra, and their 13 deltas with ``audio_deltas``."""
        return FEATURES_PER_HOP if self.audio_deltas else CEPSTRA


@dataclass
class MDSOutput(DetectorOutput):
    """The heads, and the chunk-level values MDS's loss reads (N = chunks per window)."""

    audio_chunks: Tensor | None = None  # (B, N, D) audio chunk embeddings (0 where absent)
    video_chunks: Tensor | None = None  # (B, N, D) video chunk embeddings (0 where absent)
    chunk_audio_logits: Tensor | None = None  # (B, N, 2)
    chunk_video_logits: Tensor | None = None  # (B, N, 2)
    chunk_mask: Tensor | None = None  # (B, N) bool, True = the chunk has a real frame
    distance: Tensor | None = None  # (B, N) fp32 Euclidean distance of each chunk's pair
    score: Tensor | None = None  # (B,) fp32 the MDS: mean distance over the real chunks


def chunk_windows(
    audio: Tensor, video: Tensor, mask: Tensor | None, frames: int, coefficients: int
) -> tuple[Tensor, Tensor, Tensor]:
    """Cut a window into chunks of ``frames`` frames, the last zero-filled.

    audio (B, T, 104), video (B, K, T, H, W), mask (B, T) bool | None →
    MFCC images (B, N, 1, coefficients, 4·frames), frames (B, N, K, frames, H, W),
    chunk mask (B, N) bool, N = ⌈T / frames⌉. Padded frames are zeroed."""
    b, k, t, h, w = video.shape
    n = max(1, -(-t // frames))
    real = torch.ones(b, t, dtype=torch.bool, device=audio.device) if mask is None else mask
    pad = n * frames - t
    real = F.pad(real, (0, pad), value=False)  # (B, N·L)
    keep = real.to(audio.dtype)
    hops = F.pad(audio, (0, 0, 0, pad)) * keep[..., None]  # (B, N·L, 104)
    hops = hops.reshape(b, n, frames * HOPS_PER_FRAME, FEATURES_PER_HOP)[..., :coefficients]
    images = hops.transpose(2, 3).unsqueeze(2)  # coefficients × hops, as the source
    clips = F.pad(video, (0, 0, 0, 0, 0, pad)) * keep.to(video.dtype)[:, None, :, None, None]
    clips = clips.reshape(b, k, n, frames, h, w).transpose(1, 2)
    return images, clips, real.view(b, n, frames).any(dim=-1)


def contrastive_terms(audio: Tensor, video: Tensor, real: Tensor, margin: float) -> Tensor:
    """The source's contrastive loss of each pair: d² for a real pair, max(0, m − d)²
    for a fake one, d = ‖audio − video‖₂. audio, video (N, D), real (N,) bool → (N,) fp32."""
    diff = audio.float() - video.float()
    squared = diff.pow(2).sum(dim=-1)  # d² directly: its gradient is finite at d = 0
    far = (margin - squared.clamp_min(1e-12).sqrt()).clamp_min(0.0).pow(2)
    return torch.where(real, squared, far)


def dissonance_logits(score: Tensor, threshold: Tensor, log_scale: Tensor) -> Tensor:
    """Two-class logits whose fake probability is sigmoid((score − τ)/σ), σ = e^log_scale.
    score (B,) → (B, 2): (0, (score − τ)/σ), rising with the score."""
    fake = (score - threshold) * torch.exp(-log_scale)
    return torch.stack([torch.zeros_like(fake), fake], dim=-1)


class MDS(nn.Module):
    """forward(audio (B, T, 104), video (B, K, T, H, W), mask (B, T) | None) → MDSOutput."""

    threshold: Tensor  # () τ
    log_scale: Tensor  # () log σ

    def __init__(self, cfg: MDSConfig) -> None:
        super().__init__()
        self.cfg = cfg
        hops = HOPS_PER_FRAME * cfg.chunk_frames
        self.audio = AudioChunkEncoder(
            cfg.audio_widths, cfg.coefficients, hops, cfg.hidden, cfg.dim
        )
        self.video = VideoChunkEncoder(
            cfg.visual_channels, cfg.video_stem, cfg.video_widths, cfg.video_depths,
            cfg.video_grid, cfg.hidden, cfg.dim,
        )  # fmt: skip
        self.audio_head = _classifier(cfg.dim, cfg.dropout)
        self.video_head = _classifier(cfg.dim, cfg.dropout)
        tau = torch.tensor(float(cfg.threshold))
        log_sigma = torch.tensor(float(cfg.threshold_scale)).log()
        if cfg.learn_threshold:
            self.threshold = nn.Parameter(tau)
            self.log_scale = nn.Parameter(log_sigma)
        else:
            self.register_buffer("threshold", tau)
            self.register_buffer("log_scale", log_sigma)

    def forward(self, audio: Tensor, video: Tensor, mask: Tensor | None = None) -> MDSOutput:
        images, clips, chunk_mask = chunk_windows(
            audio, video, mask, self.cfg.chunk_frames, self.cfg.coefficients
        )
        # Only chunks with a real frame are encoded: padding never reaches a BatchNorm.
        ea = self.audio(images[chunk_mask])  # (M, D), M real chunks
        ev = self.video(clips[chunk_mask])
        la, lv = self.audio_head(ea), self.video_head(ev)
        distance = (ea.float() - ev.float()).pow(2).sum(-1).clamp_min(1e-12).sqrt()
        audio_chunks, video_chunks, chunk_la, chunk_lv, dist = (
            _scatter(x, chunk_mask) for x in (ea, ev, la, lv, distance)
        )
        score = masked_mean(dist[..., None], chunk_mask)[:, 0]
        # The calibration sees the score with its gradient stopped: only τ and σ learn from it.
        fused = dissonance_logits(score.detach(), self.threshold, self.log_scale)
        embedding = torch.cat(
            [masked_mean(audio_chunks, chunk_mask), masked_mean(video_chunks, chunk_mask)], -1
        )
        return MDSOutput(
            audio_logits=masked_mean(chunk_la, chunk_mask),
            video_logits=masked_mean(chunk_lv, chunk_mask),
            fused_logits=fused.to(la.dtype), embedding=embedding,
            audio_chunks=audio_chunks, video_chunks=video_chunks,
            chunk_audio_logits=chunk_la, chunk_video_logits=chunk_lv,
            chunk_mask=chunk_mask, distance=dist, score=score,
        )  # fmt: skip


def _classifier(dim: int, dropout: float) -> nn.Sequential:
    """The source's per-stream head: BatchNorm1d, dropout, two classes. (M, D) → (M, 2)."""
    return nn.Sequential(nn.BatchNorm1d(dim), nn.Dropout(dropout), nn.Linear(dim, 2))


def _scatter(values: Tensor, chunk_mask: Tensor) -> Tensor:
    """Rows of the real chunks (M, ...) back into (B, N, ...), zeros elsewhere."""
    out = values.new_zeros(*chunk_mask.shape, *values.shape[1:])
    return out.index_put((chunk_mask,), values)


def mds_loss(
    cfg: MDSConfig, out: MDSOutput, audio_label: Tensor, video_label: Tensor,
    label: Tensor, mask: Tensor | None, weights: LossWeights, frame_label: Tensor | None,
) -> LossParts:  # fmt: skip
    """λa·CE_audio + λv·CE_video + λc·contrast over the real chunks, + λav·CE of the
    calibrated fused head (which trains τ and σ only; see the module)."""
    assert out.chunk_mask is not None and out.audio_chunks is not None
    assert out.video_chunks is not None and out.chunk_audio_logits is not None
    assert out.chunk_video_logits is not None
    real_chunks = out.chunk_mask
    per_chunk = real_chunks.sum(dim=1)  # (B,) every clip's label, once per chunk
    a_label = audio_label.repeat_interleave(per_chunk)
    v_label = video_label.repeat_interleave(per_chunk)
    audio = F.cross_entropy(out.chunk_audio_logits[real_chunks].float(), a_label)
    video = F.cross_entropy(out.chunk_video_logits[real_chunks].float(), v_label)
    pair = (a_label == 0) & (v_label == 0)
    align = contrastive_terms(
        out.audio_chunks[real_chunks], out.video_chunks[real_chunks], pair, cfg.margin
    ).mean()
    fused = F.cross_entropy(out.fused_logits.float(), label)
    total = weights.audio * audio + weights.video * video + weights.align * align
    return LossParts(
        total=total + weights.fused * fused, audio=audio, video=video, fused=fused, align=align
    )


def _reads(cfg: MDSConfig) -> Reads:
    return Reads(streams=(cfg.visual_input,), features="mfcc", window=(1, cfg.max_frames))


@register_detector(
    "mds", config=MDSConfig, loss=mds_loss, reads=_reads,
    presets={"tiny": "mds_tiny", "paper": "mds"},
)  # fmt: skip
def build_mds(cfg: MDSConfig) -> nn.Module:
    """MDS: per-chunk audio and video embeddings, their distance the fake score."""
    return MDS(cfg)
