"""MDS's two chunk encoders: one embedding per chunk of audio and of face frames.

As in the authors' code (github.com/abhinavdhall/deepfake, ``ACM_MM_2020/model.py``,
``resnet_2d3d.py``), written here from it:

* **Audio** (:class:`AudioChunkEncoder`): the chunk's MFCC as a one-channel image,
  coefficients × 10 ms hops (the source: 13 × 99 for a 1 s chunk); five 3×3
  convolutions (BatchNorm, ReLU) with a (3, 3) max-pool of stride (1, 2) after the second
  and one of stride (2, 2) after the fifth, then a (5, 4) convolution without padding;
  its map flattened into two linear layers (``hidden``, BatchNorm1d, ReLU, ``dim``).
* **Video** (:class:`VideoChunkEncoder`): DPC's 2D-3D ResNet-18 over the chunk's frames:
  a (1, 7, 7) stem of stride (1, 2, 2), a (1, 3, 3) max-pool, two stages of 1×3×3
  ("2-D") basic blocks and then stages of 3×3×3 basic blocks whose first block strides
  time as well as space, the last block without its final ReLU; the map averaged over
  time, flattened and mapped by the same two linear layers.

What differs, and why: the flattened video map is first average-pooled to
``grid × grid`` cells (the source flattens the 7 × 7 map of its 224² crops; the store's
crops are 112² by default, and pooling keeps the layer sizes the source's at any crop
size); every BatchNorm keeps running statistics (the source's video trunk uses batch
statistics at test time too, so a chunk's embedding depended on what it was batched
with); linear layers keep PyTorch's initialisation (the source draws them Kaiming
fan-out, which starts its two-way classifiers at logits of standard deviation about
√dim), convolutions are Kaiming fan-out as in the source.
"""

from __future__ import annotations

from torch import Tensor, nn


def _kaiming(module: nn.Module) -> None:
    """Kaiming fan-out convolutions, BatchNorm weight 1 and bias 0 (the source's init)."""
    for m in module.modules():
        if isinstance(m, nn.Conv2d | nn.Conv3d):
            nn.init.kaiming_normal_(m.weight, mode="fan_out")
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, nn.modules.batchnorm._BatchNorm):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)


def projection(features: int, hidden: int, dim: int) -> nn.Sequential:
    """The source's two linear layers on a flattened map. (N, features) → (N, dim)."""
    return nn.Sequential(
        nn.Linear(features, hidden), nn.BatchNorm1d(hidden), nn.ReLU(), nn.Linear(hidden, dim)
    )


def audio_map_size(coefficients: int, hops: int) -> tuple[int, int]:
    """(height, width) of :class:`AudioChunkEncoder`'s last map for a coefficients × hops
    image: padded 3×3 convolutions keep the size, the pools and the (5, 4) convolution
    shrink it. 13 × 100 (a 1 s chunk at 25 fps) → (1, 21), as the source's 13 × 99."""
    height = (coefficients - 3) // 1 + 1  # pool (3, 3), stride 1 over coefficients
    width = (hops - 3) // 2 + 1  # stride 2 over time
    height, width = (height - 3) // 2 + 1, (width - 3) // 2 + 1  # pool (3, 3), stride 2
    return height - 4, width - 3  # the (5, 4) convolution, no padding


def _conv_bn(cin: int, cout: int, kernel: tuple[int, int], padding: int) -> list[nn.Module]:
    return [nn.Conv2d(cin, cout, kernel, padding=padding), nn.BatchNorm2d(cout), nn.ReLU()]


class AudioChunkEncoder(nn.Module):
    """forward(mfcc (N, 1, coefficients, hops)) → (N, dim); ``widths``: the six
    convolutions' output channels (the source: 64, 192, 384, 256, 256, 512)."""

    def __init__(
        self, widths: tuple[int, ...], coefficients: int, hops: int, hidden: int, dim: int
    ) -> None:
        super().__init__()
        w = widths
        self.convs = nn.Sequential(
            *_conv_bn(1, w[0], (3, 3), 1),
            *_conv_bn(w[0], w[1], (3, 3), 1),
            nn.MaxPool2d((3, 3), stride=(1, 2)),
            *_conv_bn(w[1], w[2], (3, 3), 1),
            *_conv_bn(w[2], w[3], (3, 3), 1),
            *_conv_bn(w[3], w[4], (3, 3), 1),
            nn.MaxPool2d((3, 3), stride=(2, 2)),
            *_conv_bn(w[4], w[5], (5, 4), 0),
        )
        height, width = audio_map_size(coefficients, hops)
        self.fc = projection(w[5] * height * width, hidden, dim)
        _kaiming(self)

    def forward(self, mfcc: Tensor) -> Tensor:
        return self.fc(self.convs(mfcc).flatten(1))


class BasicBlock3d(nn.Module):
    """A ResNet basic block of 1×3×3 (``temporal=False``) or 3×3×3 convolutions.
    (N, cin, T, H, W) → (N, cout, T', H', W'); a 3-D block's stride applies to time too."""

    def __init__(
        self, cin: int, cout: int, stride: int, *, temporal: bool, final_relu: bool = True
    ) -> None:
        super().__init__()
        k, p = ((3, 3, 3), (1, 1, 1)) if temporal else ((1, 3, 3), (0, 1, 1))
        s = (stride, stride, stride) if temporal else (1, stride, stride)
        self.conv1 = nn.Conv3d(cin, cout, k, stride=s, padding=p, bias=False)
        self.bn1 = nn.BatchNorm3d(cout)
        self.conv2 = nn.Conv3d(cout, cout, k, padding=p, bias=False)
        self.bn2 = nn.BatchNorm3d(cout)
        self.relu = nn.ReLU()
        self.final_relu = final_relu
        self.down: nn.Module = nn.Identity()
        if stride != 1 or cin != cout:
            self.down = nn.Sequential(
                nn.Conv3d(cin, cout, 1, stride=s, bias=False), nn.BatchNorm3d(cout)
            )

    def forward(self, x: Tensor) -> Tensor:
        y = self.bn2(self.conv2(self.relu(self.bn1(self.conv1(x))))) + self.down(x)
        return self.relu(y) if self.final_relu else y


class VideoChunkEncoder(nn.Module):
    """forward(frames (N, K, L, H, W)) → (N, dim): DPC's 2D-3D ResNet over one chunk.

    The first two stages are 2-D (1×3×3), the others 3-D; every stage but the first
    halves the map (and, when 3-D, the time axis)."""

    def __init__(
        self,
        channels: int,
        stem: int,
        widths: tuple[int, ...],
        depths: tuple[int, ...],
        grid: int,
        hidden: int,
        dim: int,
    ) -> None:
        super().__init__()
        self.stem = nn.Sequential(
            nn.Conv3d(channels, stem, (1, 7, 7), stride=(1, 2, 2), padding=(0, 3, 3), bias=False),
            nn.BatchNorm3d(stem),
            nn.ReLU(),
            nn.MaxPool3d((1, 3, 3), stride=(1, 2, 2), padding=(0, 1, 1)),
        )
        blocks: list[nn.Module] = []
        cin = stem
        for i, (width, depth) in enumerate(zip(widths, depths, strict=True)):
            for j in range(depth):
                last = i == len(widths) - 1 and j == depth - 1
                stride = 2 if i > 0 and j == 0 else 1
                blocks.append(
                    BasicBlock3d(cin, width, stride, temporal=i >= 2, final_relu=not last)
                )
                cin = width
        self.trunk = nn.Sequential(*blocks)
        self.pool = nn.AdaptiveAvgPool3d((1, grid, grid))  # all of time, grid × grid cells
        self.fc = projection(cin * grid * grid, hidden, dim)
        _kaiming(self)

    def forward(self, frames: Tensor) -> Tensor:
        return self.fc(self.pool(self.trunk(self.stem(frames))).flatten(1))
