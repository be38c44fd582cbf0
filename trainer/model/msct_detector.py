"""MSCT in the detector registry (``model.name=msct``, the default).

The model is :class:`trainer.model.msct.MSCT`, its loss :func:`trainer.model.loss.msct_loss`
and its presets ``tiny`` and ``paper``. It reads the visual stream its ``visual_input``
names, any audio features (104 channels: MFCC by default, as the paper), any crop size
(the visual trunk pools globally) and windows of up to ``max_frames`` frames.
"""

from __future__ import annotations

from torch import Tensor, nn

from .config import ModelConfig
from .loss import LossParts, LossWeights, msct_loss
from .msct import MSCT, MSCTOutput
from .registry import Reads, register_detector


def msct_reads(cfg: ModelConfig) -> Reads:
    """MSCT reads its visual stream, any features and crop size, windows ≤ ``max_frames``."""
    return Reads(streams=(cfg.visual_input,), window=(1, cfg.max_frames))


def msct_detector_loss(
    cfg: ModelConfig,
    out: MSCTOutput,
    audio_label: Tensor,
    video_label: Tensor,
    label: Tensor,
    mask: Tensor | None,
    weights: LossWeights,
    frame_label: Tensor | None,
) -> LossParts:
    """:func:`~trainer.model.loss.msct_loss` (the config adds nothing to it)."""
    return msct_loss(out, audio_label, video_label, label, mask, weights, frame_label)


@register_detector(
    "msct",
    config=ModelConfig,
    loss=msct_detector_loss,
    reads=msct_reads,
    presets={"tiny": "tiny", "paper": "paper"},
)
def build_msct(cfg: ModelConfig) -> nn.Module:
    """MSCT (ICASSP 2026), see :mod:`trainer.model.msct`."""
    return MSCT(cfg)
