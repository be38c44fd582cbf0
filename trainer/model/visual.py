"""Visual pre-encoder: one C-dim token per frame of the visual stream (face or mouth crop).

stem conv (stride 2) → max-pool → WTConv → Res2Net stages with CBAM between them
→ global average pool → linear to C. Frames are encoded independently; padded frames are
never run through the trunk, so they cost nothing and cannot reach BatchNorm's batch
statistics (which would otherwise leak padding into real frames during training).
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from .cbam import CBAM
from .config import ModelConfig
from .res2net import conv_bn_relu, res2net_stage
from .wtconv import WTConv2d


class FrameEncoder(nn.Module):
    """Per-frame CNN. (N, K, H, W) → (N, C). Any H, W ≥ 8 works (global pooling).

    ``K = cfg.visual_channels``: 3 for RGB face crops, 1 for grayscale mouth crops (only
    the stem's input channels differ).
    """

    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__()
        stem = cfg.visual_stem
        self.stem = conv_bn_relu(cfg.visual_channels, stem, 3, stride=2)
        self.wavelet = nn.Sequential(
            WTConv2d(stem, cfg.wt_kernel, cfg.wt_levels),
            nn.BatchNorm2d(stem),
            nn.ReLU(inplace=True),
        )
        self.pool = nn.MaxPool2d(3, stride=2, padding=1)
        layers: list[nn.Module] = []
        cin = stem
        for i, (width, blocks) in enumerate(zip(cfg.visual_widths, cfg.visual_depths, strict=True)):
            if i > 0:
                layers.append(CBAM(cin))  # between consecutive stages, not after the last
            layers.append(res2net_stage(cin, width, blocks, stride=1 if i == 0 else 2))
            cin = width
        self.stages = nn.Sequential(*layers)
        self.proj = nn.Linear(cin, cfg.dim)

    def forward(self, frames: Tensor) -> Tensor:
        # Channels-last: BatchNorm and the convolutions then run on NHWC kernels, which
        # under bf16 autocast on a GPU take a fraction of the time of the NCHW ones
        # (BatchNorm's backward alone was a third of a paper-size step), and avoid
        # cuDNN's layout conversions; on the CPU it is faster too.
        frames = frames.contiguous(memory_format=torch.channels_last)
        # WTConv after the pool: at 1/4 resolution its 2-level 5×5 kernels still span 20×20
        # input pixels of the stem's map, at a quarter of the cost of running it before.
        x = self.wavelet(self.pool(self.stem(frames)))
        x = self.stages(x).mean(dim=(2, 3))
        return self.proj(x)


class VisualPreEncoder(nn.Module):
    """Clip-level wrapper of :class:`FrameEncoder`.

    forward(video (B, K, T, H, W), mask (B, T) bool | None) → (B, T, C); rows of padded
    frames are zero.
    """

    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__()
        self.dim = cfg.dim
        self.frames = FrameEncoder(cfg)

    def forward(self, video: Tensor, mask: Tensor | None = None) -> Tensor:
        b, c, t, h, w = video.shape
        flat = video.transpose(1, 2).reshape(b * t, c, h, w)
        if mask is None:
            return self.frames(flat).view(b, t, self.dim)
        keep = mask.reshape(b * t)
        tokens = flat.new_zeros(b * t, self.dim)
        if bool(keep.any()):
            encoded = self.frames(flat[keep])
            tokens = tokens.to(encoded.dtype).index_put((keep,), encoded)
        return tokens.view(b, t, self.dim)
