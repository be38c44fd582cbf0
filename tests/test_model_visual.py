"""Visual pre-encoder parts: Haar transform, WTConv, CBAM, Bottle2neck."""

from __future__ import annotations

import torch

from trainer.model.cbam import CBAM
from trainer.model.res2net import Bottle2neck
from trainer.model.wtconv import WTConv2d, haar_analysis, haar_filters, haar_synthesis


def test_haar_filters_are_orthonormal() -> None:
    bank = haar_filters().reshape(4, 4)
    torch.testing.assert_close(bank @ bank.T, torch.eye(4))


def test_haar_analysis_then_synthesis_is_exact() -> None:
    torch.manual_seed(0)
    x = torch.randn(2, 3, 16, 10, dtype=torch.float64)
    filters = haar_filters(torch.float64)
    bands = haar_analysis(x, filters)
    assert bands.shape == (2, 3, 4, 8, 5)
    torch.testing.assert_close(haar_synthesis(bands, filters), x, rtol=0, atol=1e-12)


def test_haar_analysis_matches_a_strided_conv() -> None:
    # The polyphase form must be the depthwise stride-2 conv it stands for.
    torch.manual_seed(0)
    x = torch.randn(1, 2, 6, 6)
    filters = haar_filters()
    conv = torch.nn.functional.conv2d(x, filters[:, None].repeat(2, 1, 1, 1), stride=2, groups=2)
    torch.testing.assert_close(haar_analysis(x, filters), conv.view(1, 2, 4, 3, 3))


def test_haar_of_a_constant_has_no_detail() -> None:
    bands = haar_analysis(torch.full((1, 1, 4, 4), 3.0), haar_filters())
    torch.testing.assert_close(bands[:, :, 0], torch.full((1, 1, 2, 2), 6.0))
    assert bands[:, :, 1:].abs().max() == 0


def test_wtconv_keeps_odd_shapes_and_uses_every_level() -> None:
    torch.manual_seed(0)
    layer = WTConv2d(4, kernel_size=3, levels=3)
    x = torch.randn(2, 4, 15, 13, requires_grad=True)
    y = layer(x)
    assert y.shape == x.shape
    y.square().sum().backward()
    for conv in layer.band_convs:
        assert conv.weight.grad is not None and conv.weight.grad.abs().sum() > 0
    # The Haar filters are a fixed buffer, not a learned weight.
    assert all(p is not layer.filters for p in layer.parameters())


def test_cbam_gates_lie_strictly_between_zero_and_one() -> None:
    torch.manual_seed(0)
    cbam = CBAM(16)
    x = torch.randn(3, 16, 9, 9) * 3
    ch = cbam.channel.gate(x)
    sp = cbam.spatial.gate(cbam.channel(x))
    assert ch.shape == (3, 16, 1, 1) and sp.shape == (3, 1, 9, 9)
    for gate in (ch, sp):
        assert (gate > 0).all() and (gate < 1).all()
    torch.testing.assert_close(cbam(x), x * ch * sp)


def test_bottle2neck_shapes() -> None:
    x = torch.randn(2, 16, 15, 15)
    assert Bottle2neck(16, 32, stride=2, first=True)(x).shape == (2, 32, 8, 8)
    assert Bottle2neck(16, 16)(x).shape == (2, 16, 15, 15)
