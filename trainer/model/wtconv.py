"""Wavelet convolution (WTConv): a large receptive field from small depthwise kernels.

A one-level 2-D Haar transform turns a (N, C, H, W) map into four half-resolution
sub-bands (LL, LH, HL, HH). WTConv repeats it on the LL band for several levels,
filters every sub-band of every level with a small depthwise kernel, scales each
channel by a learned factor and transforms back. A k×k kernel at level ℓ thereby
covers k·2^ℓ pixels of the input at the cost of a k×k depthwise convolution.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn


def haar_filters(dtype: torch.dtype = torch.float32) -> Tensor:
    """The four orthonormal 2×2 Haar filters (LL, LH, HL, HH), shape (4, 2, 2).

    Orthonormal means the 4×4 matrix of flattened filters is orthogonal on every 2×2 block,
    so its transpose is the exact inverse: synthesis reconstructs analysis' input exactly.
    """
    lo = torch.tensor([1.0, 1.0], dtype=dtype) / 2**0.5
    hi = torch.tensor([1.0, -1.0], dtype=dtype) / 2**0.5
    return torch.stack([torch.outer(r, c) for r, c in ((lo, lo), (hi, lo), (lo, hi), (hi, hi))])


def haar_analysis(x: Tensor, filters: Tensor) -> Tensor:
    """One Haar level. x (N, C, H, W) with even H, W → bands (N, C, 4, H/2, W/2).

    Equivalent to a stride-2 depthwise conv with the four filters, written as a 4×4 matrix
    applied to the four polyphase components (pixel (2i + r, 2j + c) → component 2r + c),
    which is several times faster on CPU than a grouped conv.
    """
    n, c, h, w = x.shape
    phases = x.view(n, c, h // 2, 2, w // 2, 2).permute(0, 1, 3, 5, 2, 4)
    phases = phases.reshape(n, c, 4, h // 2, w // 2)
    return torch.einsum("bk,nckhw->ncbhw", filters.reshape(4, 4).to(x.dtype), phases)


def haar_synthesis(bands: Tensor, filters: Tensor) -> Tensor:
    """Inverse of :func:`haar_analysis`. bands (N, C, 4, h, w) → (N, C, 2h, 2w)."""
    n, c, _, h, w = bands.shape
    phases = torch.einsum("bk,ncbhw->nckhw", filters.reshape(4, 4).to(bands.dtype), bands)
    return phases.view(n, c, 2, 2, h, w).permute(0, 1, 4, 2, 5, 3).reshape(n, c, 2 * h, 2 * w)


class WTConv2d(nn.Module):
    """Depthwise wavelet convolution, channels in = channels out.

    out = s₀ ⊙ dwconv(x) + IWT(levels), where each level's four sub-bands are filtered by a
    depthwise k×k conv and scaled per channel (scales start at 0.1 so the wavelet path starts
    as a small correction to the plain depthwise conv).

    Shapes: (N, C, H, W) → (N, C, H, W); odd H or W are zero-padded per level and cropped back.
    """

    filters: Tensor  # (4, 2, 2) Haar filters (haar_filters), a non-persistent buffer

    def __init__(self, channels: int, kernel_size: int = 5, levels: int = 2) -> None:
        super().__init__()
        self.levels = levels
        pad = kernel_size // 2
        self.base = nn.Conv2d(channels, channels, kernel_size, padding=pad, groups=channels)
        self.base_scale = nn.Parameter(torch.ones(1, channels, 1, 1))
        self.band_convs = nn.ModuleList(
            nn.Conv2d(
                4 * channels,
                4 * channels,
                kernel_size,
                padding=pad,
                groups=4 * channels,
                bias=False,
            )
            for _ in range(levels)
        )
        self.band_scales = nn.ParameterList(
            nn.Parameter(torch.full((1, 4 * channels, 1, 1), 0.1)) for _ in range(levels)
        )
        # Fixed filters: a buffer, not a parameter, and not saved (they are a constant).
        self.register_buffer("filters", haar_filters(), persistent=False)

    def forward(self, x: Tensor) -> Tensor:
        filtered: list[Tensor] = []  # per level: (N, C, 4, h, w) filtered sub-bands
        sizes: list[tuple[int, int]] = []
        low = x
        for conv, scale in zip(self.band_convs, self.band_scales, strict=True):
            h, w = low.shape[-2:]
            sizes.append((h, w))
            low = F.pad(low, (0, w % 2, 0, h % 2))
            bands = haar_analysis(low, self.filters)
            n, c, _, bh, bw = bands.shape
            out = conv(bands.reshape(n, 4 * c, bh, bw)) * scale
            filtered.append(out.view(n, c, 4, bh, bw))
            low = bands[:, :, 0]  # the unfiltered LL band feeds the next, coarser level
        # Coarse to fine: the reconstruction of level ℓ+1 joins level ℓ's filtered LL band.
        carry = torch.zeros_like(filtered[-1][:, :, 0])
        for bands, (h, w) in zip(reversed(filtered), reversed(sizes), strict=True):
            ll = bands[:, :, :1] + carry[:, :, None]
            carry = haar_synthesis(torch.cat([ll, bands[:, :, 1:]], dim=2), self.filters)
            carry = carry[..., :h, :w]
        return self.base(x) * self.base_scale + carry
