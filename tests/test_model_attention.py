"""DCA and MSSA against explicit references."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from trainer.model.attention import (
    DifferentialCrossAttention,
    MultiScaleKeys,
    SelfAttention,
    differential_attention,
    lambda_init_for,
    merge_heads,
    split_heads,
)


def softmax_map(q: torch.Tensor, k: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
    scores = q @ k.transpose(-1, -2) / math.sqrt(q.shape[-1])
    if mask is not None:
        scores = scores.masked_fill(~mask[:, None, None, :], float("-inf"))
    return scores.softmax(dim=-1)


@pytest.fixture
def qkv() -> tuple[torch.Tensor, ...]:
    torch.manual_seed(0)
    b, h, n, d = 2, 4, 6, 8
    mask = torch.ones(b, n, dtype=torch.bool)
    mask[1, 4:] = False
    return (*(torch.randn(b, h, n, d) for _ in range(4)), mask)


def test_differential_attention_equals_two_softmax_maps(qkv: tuple[torch.Tensor, ...]) -> None:
    q_self, q_cross, k, v, mask = qkv
    lam = 0.37
    expected = (softmax_map(q_self, k, mask) - lam * softmax_map(q_cross, k, mask)) @ v
    got = differential_attention(q_self, q_cross, k, v, lam, mask)
    torch.testing.assert_close(got, expected, rtol=0, atol=1e-5)


def test_lambda_zero_is_self_attention(qkv: tuple[torch.Tensor, ...]) -> None:
    q_self, q_cross, k, v, mask = qkv
    got = differential_attention(q_self, q_cross, k, v, 0.0, mask)
    torch.testing.assert_close(got, softmax_map(q_self, k, mask) @ v, rtol=0, atol=1e-5)
    # ...and the cross queries then play no part at all.
    other = differential_attention(q_self, torch.randn_like(q_cross), k, v, 0.0, mask)
    torch.testing.assert_close(got, other, rtol=0, atol=1e-6)


def test_dca_module_matches_the_written_formula() -> None:
    torch.manual_seed(0)
    dim, heads, layer = 16, 4, 3
    dca = DifferentialCrossAttention(dim, heads, layer).eval()
    a, b = torch.randn(2, 5, dim), torch.randn(2, 5, dim)
    mask = torch.tensor([[True] * 5, [True, True, True, False, False]])

    qa, ka, va = (split_heads(t, heads) for t in dca.qkv(a).chunk(3, dim=-1))
    qb = split_heads(dca.q_cross(b), heads)
    lam_init = 0.8 - 0.6 * math.exp(-0.3 * (layer - 1))
    lam = (
        torch.exp(dca.lambda_q1 @ dca.lambda_k1)
        - torch.exp(dca.lambda_q2 @ dca.lambda_k2)
        + lam_init
    )
    heads_out = (softmax_map(qa, ka, mask) - lam * softmax_map(qb, ka, mask)) @ va
    rms = heads_out.pow(2).mean(-1, keepdim=True).add(1e-5).rsqrt()
    expected = dca.proj(merge_heads(heads_out * rms * dca.head_norm.weight * (1 - lam_init)))
    torch.testing.assert_close(dca(a, b, mask), expected, rtol=0, atol=1e-5)


def test_lambda_schedule_and_reparameterisation() -> None:
    assert lambda_init_for(1) == pytest.approx(0.2)
    assert lambda_init_for(6) == pytest.approx(0.8 - 0.6 * math.exp(-1.5))
    dca = DifferentialCrossAttention(8, 4, layer=2)
    with torch.no_grad():
        for p in (dca.lambda_q1, dca.lambda_k1, dca.lambda_q2, dca.lambda_k2):
            p.zero_()
    assert dca.lam().item() == pytest.approx(lambda_init_for(2))
    assert dca.lam().dtype == torch.float32


SHAPES = ("2d", "time")


def set_delta_kernels(keys: MultiScaleKeys) -> None:
    """Centred identity kernels in every group, for either kernel shape."""
    group = keys.weight.shape[1]
    with torch.no_grad():
        keys.weight.zero_()
        for g in range(4):
            rows = slice(group * g, group * (g + 1))
            keys.weight[rows, :, keys.pad, keys.pad_d] = torch.eye(group)


def mssa_and_sa(shape: str) -> tuple[SelfAttention, SelfAttention]:
    torch.manual_seed(0)
    mssa = SelfAttention(16, 8, kernels=(1, 3, 5, 7), kernel_shape=shape)
    sa = SelfAttention(16, 8)
    sa.load_state_dict(mssa.state_dict(), strict=False)
    return mssa, sa


def masked_input() -> tuple[torch.Tensor, torch.Tensor]:
    x = torch.randn(3, 9, 16)
    mask = torch.ones(3, 9, dtype=torch.bool)
    mask[2, 5:] = False
    return x, mask


@pytest.mark.parametrize("shape", SHAPES)
def test_mssa_with_delta_kernels_equals_self_attention(shape: str) -> None:
    mssa, sa = mssa_and_sa(shape)
    keys = mssa.key_filter
    assert keys.weight.shape == ((8, 2, 7, 7) if shape == "2d" else (8, 2, 7, 1))
    with torch.no_grad():
        keys.weight.normal_()
    x, mask = masked_input()
    assert (mssa(x, mask) - sa(x, mask)).abs().max() > 1e-3  # the scramble is seen...
    set_delta_kernels(keys)
    torch.testing.assert_close(mssa(x, mask), sa(x, mask), rtol=0, atol=1e-6)  # ...and undone


@pytest.mark.parametrize("shape", SHAPES)
def test_a_fresh_mssa_starts_as_self_attention(shape: str) -> None:
    mssa, sa = mssa_and_sa(shape)
    x, mask = masked_input()
    torch.testing.assert_close(mssa(x, mask), sa(x, mask), rtol=0, atol=1e-6)


@pytest.mark.parametrize("group", range(4))
@pytest.mark.parametrize("shape", SHAPES)
def test_a_non_identity_kernel_changes_its_head_group_and_the_output(
    shape: str, group: int
) -> None:
    mssa, sa = mssa_and_sa(shape)
    keys = mssa.key_filter
    x, mask = masked_input()
    k = split_heads(mssa.qkv(x).chunk(3, dim=-1)[1], 8)
    before = keys(k, mask)
    rows = slice(2 * group, 2 * group + 2)
    with torch.no_grad():  # perturb this group's live taps only
        keys.weight[rows] += torch.randn_like(keys.weight[rows]) * keys.taps[rows]
        after = keys(k, mask)
        moved = (after - before).abs().amax(dim=(0, 2, 3))  # per head
    assert (moved[rows] > 1e-3).all(), moved
    assert moved[: 2 * group].eq(0).all() and moved[2 * group + 2 :].eq(0).all(), moved
    # ...and the attention output follows: the key filter is really used.
    assert (mssa(x, mask) - sa(x, mask)).abs().max() > 1e-3


@pytest.mark.parametrize("shape", SHAPES)
def test_taps_outside_a_groups_kernel_size_are_dead(shape: str) -> None:
    mssa, _ = mssa_and_sa(shape)
    keys = mssa.key_filter
    x, mask = masked_input()
    k = split_heads(mssa.qkv(x).chunk(3, dim=-1)[1], 8)
    before = keys(k, mask)
    with torch.no_grad():
        keys.weight.add_(torch.randn_like(keys.weight) * (1 - keys.taps))
    torch.testing.assert_close(keys(k, mask), before, rtol=0, atol=0)


def test_mssa_differs_from_sa_once_kernels_mix_time() -> None:
    mssa, sa = mssa_and_sa("time")
    with torch.no_grad():
        mssa.key_filter.weight.normal_()
    x = torch.randn(2, 9, 16)
    assert (mssa(x) - sa(x)).abs().max() > 1e-3


@pytest.mark.parametrize("shape", SHAPES)
def test_each_head_group_uses_its_own_kernel_size(shape: str) -> None:
    torch.manual_seed(0)
    kernels = (1, 3, 5, 7)
    keys = MultiScaleKeys(heads=8, kernels=kernels, shape=shape)
    with torch.no_grad():
        keys.weight.uniform_(0.5, 1.0)  # positive taps: no accidental cancellation
    t, d, centre, feature = 13, 11, 7, 5  # frames 1..13 after the CLS key at index 0
    k = torch.zeros(1, 8, 1 + t, d)
    k[:, :, centre, feature] = 1.0  # one impulse in (time, feature), in every head
    out = keys(k)
    for g, size in enumerate(kernels):
        group = out[0, 2 * g : 2 * g + 2, 1:]  # (heads in group, T, d)
        times = group.abs().sum(dim=(0, 2)).nonzero().flatten() + 1
        features = group.abs().sum(dim=(0, 1)).nonzero().flatten()
        assert times.tolist() == list(range(centre - size // 2, centre + size // 2 + 1))
        reach = size // 2 if shape == "2d" else 0  # "time" never mixes features
        assert features.tolist() == list(range(feature - reach, feature + reach + 1))
        assert keys.kernel(g).shape == (2, 2, size, size if shape == "2d" else 1)


@pytest.mark.parametrize("shape", SHAPES)
def test_mssa_keeps_padding_and_cls_out_of_the_mix(shape: str) -> None:
    torch.manual_seed(0)
    keys = MultiScaleKeys(heads=4, kernels=(1, 3, 5, 7), shape=shape)
    with torch.no_grad():
        keys.weight.normal_()
    k = torch.randn(2, 4, 8, 6)
    mask = torch.ones(2, 8, dtype=torch.bool)
    mask[:, 5:] = False
    noisy = k.clone()
    noisy[:, :, 5:] += 100.0
    real = slice(0, 5)
    torch.testing.assert_close(keys(k, mask)[:, :, real], keys(noisy, mask)[:, :, real])
    torch.testing.assert_close(keys(k, mask)[:, :, 0], k[:, :, 0])  # CLS key untouched


def test_attention_is_safe_under_bf16_autocast() -> None:
    torch.manual_seed(0)
    dca = DifferentialCrossAttention(32, 4, layer=1)
    a, b = torch.randn(2, 7, 32), torch.randn(2, 7, 32)
    ref = dca(a, b)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        low = dca(a, b)
    assert torch.isfinite(low).all()
    assert F.cosine_similarity(low.float().flatten(), ref.flatten(), dim=0) > 0.99
