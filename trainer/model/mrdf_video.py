"""MRDF's visual front-end: AV-HuBERT's ResEncoder, one token per frame.

As AV-HuBERT's ``ResEncoder`` (which MRDF's authors' code builds through
``AVHubertModel.feature_extractor_video``): a 3D convolution over (time, height, width)
with kernel (5, 7, 7) and stride (1, 2, 2), BatchNorm3d, PReLU and a (1, 3, 3) max-pool
of stride (1, 2, 2); then a ResNet-18 trunk run on every frame (BasicBlocks with PReLU,
four stages, strides 1, 2, 2, 2), global average pooling and, in
:class:`trainer.model.mrdf.MRDF`, a linear projection to the model width. The widths and
depths are settings (AV-HuBERT: front-end 64, stages (64, 128, 256, 512) × 2 blocks); the
``tiny`` preset narrows them.

Padded frames: the 3D front-end sees the whole window (its 5-frame kernel mixes
neighbouring frames, as in the source, where clips are cropped to a batch's shortest and
never padded); the 2D trunk runs on the real frames only, so padding never reaches the
trunk's BatchNorm statistics. Rows of padded frames are zero.
"""

from __future__ import annotations

from torch import Tensor, nn


class BasicBlock(nn.Module):
    """ResNet basic block with PReLU. (N, cin, H, W) → (N, cout, H/stride, W/stride)."""

    def __init__(self, cin: int, cout: int, stride: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, stride=stride, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(cout)
        self.act1 = nn.PReLU(cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        self.act2 = nn.PReLU(cout)
        self.down: nn.Module = nn.Identity()
        if stride != 1 or cin != cout:
            self.down = nn.Sequential(
                nn.Conv2d(cin, cout, 1, stride=stride, bias=False), nn.BatchNorm2d(cout)
            )

    def forward(self, x: Tensor) -> Tensor:
        y = self.act1(self.bn1(self.conv1(x)))
        return self.act2(self.bn2(self.conv2(y)) + self.down(x))


class ResEncoder(nn.Module):
    """forward(video (B, K, T, H, W), mask (B, T) bool | None) → (B, T, widths[-1]).

    ``K`` = 3 (RGB face crops) or 1 (grayscale mouth crops, AV-HuBERT's input)."""

    def __init__(
        self, channels: int, frontend: int, widths: tuple[int, ...], depths: tuple[int, ...]
    ) -> None:
        super().__init__()
        self.frontend = nn.Sequential(
            nn.Conv3d(
                channels, frontend, (5, 7, 7), stride=(1, 2, 2), padding=(2, 3, 3), bias=False
            ),
            nn.BatchNorm3d(frontend),
            nn.PReLU(frontend),
            nn.MaxPool3d((1, 3, 3), stride=(1, 2, 2), padding=(0, 1, 1)),
        )
        blocks: list[nn.Module] = []
        cin = frontend
        for i, (width, depth) in enumerate(zip(widths, depths, strict=True)):
            for j in range(depth):
                blocks.append(BasicBlock(cin, width, 2 if i > 0 and j == 0 else 1))
                cin = width
        self.trunk = nn.Sequential(*blocks)
        self.out_dim = cin

    def forward(self, video: Tensor, mask: Tensor | None = None) -> Tensor:
        x = self.frontend(video)  # (B, F, T, H', W')
        b, f, t, h, w = x.shape
        flat = x.transpose(1, 2).reshape(b * t, f, h, w)
        if mask is None:
            return self.trunk(flat).mean(dim=(2, 3)).view(b, t, self.out_dim)
        keep = mask.reshape(b * t)
        tokens = flat.new_zeros(b * t, self.out_dim)
        if bool(keep.any()):
            encoded = self.trunk(flat[keep]).mean(dim=(2, 3))
            tokens = tokens.to(encoded.dtype).index_put((keep,), encoded)
        return tokens.view(b, t, self.out_dim)
