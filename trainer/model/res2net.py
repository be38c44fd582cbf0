"""Res2Net Bottle2neck blocks (scale 4) and stages built from them.

A Bottle2neck replaces the 3×3 conv of a ResNet bottleneck by four narrower 3×3 convs on
four channel splits, each fed the previous split's output as well ("hierarchical residual"),
so one block mixes receptive fields of 3, 5, 7 pixels and an identity.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

SCALE = 4


def conv_bn_relu(cin: int, cout: int, kernel: int, stride: int = 1) -> nn.Sequential:
    """Conv (no bias: BN follows) → BatchNorm → ReLU."""
    return nn.Sequential(
        nn.Conv2d(cin, cout, kernel, stride=stride, padding=kernel // 2, bias=False),
        nn.BatchNorm2d(cout),
        nn.ReLU(inplace=True),
    )


class Bottle2neck(nn.Module):
    """Res2Net bottleneck. (N, cin, H, W) → (N, cout, H/stride, W/stride).

    Inner width is cout/2, split into 4 groups of cout/8. The first block of a stage
    (``first=True``) convolves every split independently (with the stride) and average-pools
    the last one, as in Res2Net's "stage" blocks; later blocks chain the splits.
    """

    def __init__(self, cin: int, cout: int, stride: int = 1, first: bool = False) -> None:
        super().__init__()
        inner = cout // 2
        self.split = inner // SCALE
        self.first = first
        self.reduce = conv_bn_relu(cin, inner, 1)
        self.convs = nn.ModuleList(
            conv_bn_relu(self.split, self.split, 3, stride) for _ in range(SCALE - 1)
        )
        self.pool = nn.AvgPool2d(3, stride, padding=1) if first else nn.Identity()
        self.expand = nn.Sequential(nn.Conv2d(inner, cout, 1, bias=False), nn.BatchNorm2d(cout))
        self.shortcut: nn.Module = nn.Identity()
        if stride != 1 or cin != cout:
            self.shortcut = nn.Sequential(
                nn.AvgPool2d(stride, stride, ceil_mode=True) if stride > 1 else nn.Identity(),
                nn.Conv2d(cin, cout, 1, bias=False),
                nn.BatchNorm2d(cout),
            )
        self.act = nn.ReLU(inplace=True)

    def forward(self, x: Tensor) -> Tensor:
        parts = self.reduce(x).split(self.split, dim=1)
        outs: list[Tensor] = []
        for i, conv in enumerate(self.convs):
            inp = parts[i] if self.first or i == 0 else parts[i] + outs[-1]
            outs.append(conv(inp))
        outs.append(self.pool(parts[-1]))
        y = self.expand(torch.cat(outs, dim=1))
        return self.act(y + self.shortcut(x))


def res2net_stage(cin: int, cout: int, blocks: int, stride: int) -> nn.Sequential:
    """``blocks`` Bottle2necks; the first one changes width and resolution."""
    layers = [Bottle2neck(cin, cout, stride, first=True)]
    layers += [Bottle2neck(cout, cout) for _ in range(blocks - 1)]
    return nn.Sequential(*layers)
