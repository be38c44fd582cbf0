"""Frozen copy of ``trainer/model/attention.py`` as of commit c17185f, before ``model.dca_form``
and the op-count cuts: the reference that the ``diff_transformer`` form and the cheaper forward
must reproduce bit for bit. Do not edit: it is the old computation, not a second implementation.

The original docstring: attention layers of the MSCT encoder: SA, MSSA, CA and DCA.

Every layer works on token sequences (B, L, C) with L = 1 + T (CLS token first) and takes
an optional key mask (B, L) bool, True = real token. The CLS token is always real, so every
query row has at least one key and softmax never sees an all-masked row. Outputs at padded
query positions are computed but meaningless; nothing downstream reads them.

All softmax attention goes through ``F.scaled_dot_product_attention`` (fused kernels on GPU,
softmax accumulated in fp32 under bf16 autocast).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn


def split_heads(x: Tensor, heads: int) -> Tensor:
    """(B, L, C) → (B, h, L, C/h)."""
    b, n, c = x.shape
    return x.view(b, n, heads, c // heads).transpose(1, 2)


def merge_heads(x: Tensor) -> Tensor:
    """(B, h, L, d) → (B, L, h·d)."""
    b, h, n, d = x.shape
    return x.transpose(1, 2).reshape(b, n, h * d)


def sdpa_mask(mask: Tensor | None) -> Tensor | None:
    """Key mask (B, L) → boolean SDPA mask (B, 1, 1, L), True = may be attended."""
    return None if mask is None else mask[:, None, None, :]


class MultiScaleKeys(nn.Module):
    """MSSA's key filter. k (B, h, L, d) → (B, h, L, d).

    The h heads form four groups of h/4. Group i is treated as an image with h/4 channels
    over the (T, d_head) plane and filtered by a 2-D conv with "same" padding and no bias,
    whose kernel is

    * ``shape="2d"`` (the paper's "2D convolution at a specific scale"): k_i × k_i, mixing
      k_i neighbouring frames and k_i neighbouring features of d_head;
    * ``shape="time"``: k_i × 1, time only. The d_head axis has no neighbourhood structure
      of its own (its order is whatever the key projection learns), so this variant
      mixes frames without mixing features; an ablation of the paper's choice.

    Mixing the h/4 heads of a group is kept, as the 2-D conv over the group implies.

    The four convs run as one grouped conv (groups = 4) whose kernels are zero outside each
    group's own size (a fixed tap mask), so MSSA costs one conv call, not four. The weight
    is stored at the largest size for every group, so the parameter count includes taps
    the mask keeps at zero.

    Padded keys are zeroed first so that they cannot leak into real neighbours, and the CLS
    key is left as is: it is not a time step. Kernels start as a centred delta (identity),
    so MSSA starts out equal to SA and learns how much of the neighbours to mix in.
    """

    taps: Tensor  # (h, 1, k_max, k_max or 1): 1 inside each group's kernel, a buffer

    def __init__(self, heads: int, kernels: Sequence[int], shape: str = "2d") -> None:
        super().__init__()
        if shape not in ("2d", "time"):
            raise ValueError(f"MSSA kernel shape must be '2d' or 'time', got {shape!r}")
        self.kernel_sizes = tuple(kernels)
        self.shape = shape
        group, size = heads // 4, max(kernels)
        self.pad = size // 2
        width = size if shape == "2d" else 1  # kernel extent along d_head
        self.pad_d = width // 2
        taps = torch.zeros(heads, 1, size, width)
        delta = torch.zeros(heads, group, size, width)
        for i, k in enumerate(kernels):
            rows = slice(i * group, (i + 1) * group)
            taps[(rows, slice(None), *self._window(k))] = 1.0
            delta[rows, :, self.pad, self.pad_d] = torch.eye(group)
        # (h, h/4, k_max, k_max or 1): out head, in head of its group, time tap, feature tap
        self.weight = nn.Parameter(delta)
        self.register_buffer("taps", taps, persistent=False)

    def _window(self, k: int) -> tuple[slice, slice]:
        """The (time, feature) taps of a size-k kernel inside the stored k_max kernel."""
        time = slice(self.pad - k // 2, self.pad + k // 2 + 1)
        if self.shape == "time":
            return time, slice(0, 1)
        return time, slice(self.pad_d - k // 2, self.pad_d + k // 2 + 1)

    def kernel(self, group: int) -> Tensor:
        """Effective kernel of one head group, (h/4, h/4, k_i, k_i) or (h/4, h/4, k_i, 1)."""
        g = self.weight.shape[1]
        rows = self.weight[group * g : (group + 1) * g]
        return rows[(slice(None), slice(None), *self._window(self.kernel_sizes[group]))]

    def forward(self, k: Tensor, mask: Tensor | None = None) -> Tensor:
        cls, frames = k[:, :, :1], k[:, :, 1:]
        if mask is not None:
            frames = frames * mask[:, None, 1:, None].to(frames.dtype)
        weight = (self.weight * self.taps).to(frames.dtype)
        mixed = F.conv2d(frames, weight, padding=(self.pad, self.pad_d), groups=4)
        return torch.cat([cls, mixed], dim=2)


class SelfAttention(nn.Module):
    """SA, or MSSA when ``kernels`` is given (``kernel_shape``: see :class:`MultiScaleKeys`).
    x (B, L, C), mask (B, L) → (B, L, C)."""

    def __init__(
        self,
        dim: int,
        heads: int,
        dropout: float = 0.0,
        kernels: Sequence[int] | None = None,
        kernel_shape: str = "2d",
    ) -> None:
        super().__init__()
        self.heads = heads
        self.qkv = nn.Linear(dim, 3 * dim)
        self.key_filter = (
            MultiScaleKeys(heads, kernels, kernel_shape) if kernels is not None else None
        )
        self.proj = nn.Linear(dim, dim)
        self.drop = nn.Dropout(dropout)

    def forward(self, x: Tensor, mask: Tensor | None = None) -> Tensor:
        q, k, v = (split_heads(t, self.heads) for t in self.qkv(x).chunk(3, dim=-1))
        if self.key_filter is not None:
            k = self.key_filter(k, mask)
        out = F.scaled_dot_product_attention(q, k, v, attn_mask=sdpa_mask(mask))
        return self.drop(self.proj(merge_heads(out)))


class CrossAttention(nn.Module):
    """Plain cross-modal attention (the CA ablation): queries from x, keys and values from
    the other modality, i.e. x attends to other. x, other (B, L, C), mask (B, L) → (B, L, C).
    Both modalities share T and the padding, so one mask serves both."""

    def __init__(self, dim: int, heads: int, dropout: float = 0.0) -> None:
        super().__init__()
        self.heads = heads
        self.q = nn.Linear(dim, dim)
        self.kv = nn.Linear(dim, 2 * dim)
        self.proj = nn.Linear(dim, dim)
        self.drop = nn.Dropout(dropout)

    def forward(self, x: Tensor, other: Tensor, mask: Tensor | None = None) -> Tensor:
        q = split_heads(self.q(x), self.heads)
        k, v = (split_heads(t, self.heads) for t in self.kv(other).chunk(2, dim=-1))
        out = F.scaled_dot_product_attention(q, k, v, attn_mask=sdpa_mask(mask))
        return self.drop(self.proj(merge_heads(out)))


def lambda_init_for(layer: int) -> float:
    """Differential Transformer's depth schedule, layer counted from 1: 0.2 at the first
    block, rising towards 0.8 in deep ones."""
    return 0.8 - 0.6 * math.exp(-0.3 * (layer - 1))


def differential_attention(
    q_self: Tensor, q_cross: Tensor, k: Tensor, v: Tensor, lam: Tensor | float, mask: Tensor | None
) -> Tensor:
    """(softmax(q_self kᵀ/√d) − λ·softmax(q_cross kᵀ/√d)) v, returned in fp32.

    q_self, q_cross (B, h, L, d); k, v (B, h, S, d); mask (B, S) | None → (B, h, L, d).
    Since (A − λB)V = AV − λBV and both maps share K and V, the two query sets are stacked
    along the sequence axis and served by a single SDPA call. The subtraction of two nearly
    equal terms is done in fp32 so bf16 autocast does not cancel it away.
    """
    n = q_self.shape[-2]
    out = F.scaled_dot_product_attention(
        torch.cat([q_self, q_cross], dim=-2), k, v, attn_mask=sdpa_mask(mask)
    )
    own, cross = out.float().split(n, dim=-2)
    lam = torch.as_tensor(lam, dtype=own.dtype, device=own.device)
    return torch.addcmul(own, cross, lam, value=-1.0)  # own − λ·cross in one kernel


class HeadRMSNorm(nn.Module):
    """RMSNorm over d_head, computed in fp32, with one learned gain shared by all heads and a
    fixed extra factor ``scale``. x (B, h, L, d) → (B, h, L, d) fp32."""

    def __init__(self, head_dim: int, scale: float = 1.0, eps: float = 1e-5) -> None:
        super().__init__()
        self.eps = eps
        self.scale = scale
        self.weight = nn.Parameter(torch.ones(head_dim))

    def forward(self, x: Tensor) -> Tensor:
        gain = self.weight.float() * self.scale  # a d-vector: cheaper than scaling the output
        return F.rms_norm(x.float(), (x.shape[-1],), gain, self.eps)


class DifferentialCrossAttention(nn.Module):
    """DCA for one modality (call it A). x = A, other = B; (B, L, C) each → (B, L, C).

    Q_A, K_A, V_A come from A and Q_Bcross from B (four projections). Per head:
        O = (softmax(Q_A K_Aᵀ/√d) − λ·softmax(Q_Bcross K_Aᵀ/√d)) V_A.
    λ follows the Differential Transformer: a scalar per layer, re-parameterised as
        λ = exp(λq1·λk1) − exp(λq2·λk2) + λ_init,  λ_init = 0.8 − 0.6·exp(−0.3·(layer − 1)),
    with λq1, λk1, λq2, λk2 ∈ R^{d_head} drawn from N(0, 0.1²), so λ starts near λ_init and can
    move in both directions without the raw scalar's poor conditioning. Each head's output is
    RMS-normalised and scaled by (1 − λ_init), which keeps the output's scale comparable to
    plain attention whatever λ does.
    """

    def __init__(self, dim: int, heads: int, layer: int, dropout: float = 0.0) -> None:
        super().__init__()
        self.heads = heads
        head_dim = dim // heads
        self.qkv = nn.Linear(dim, 3 * dim)  # Q_A, K_A, V_A
        self.q_cross = nn.Linear(dim, dim)  # Q_Bcross
        self.lambda_init = lambda_init_for(layer)
        self.lambda_q1 = nn.Parameter(torch.randn(head_dim) * 0.1)
        self.lambda_k1 = nn.Parameter(torch.randn(head_dim) * 0.1)
        self.lambda_q2 = nn.Parameter(torch.randn(head_dim) * 0.1)
        self.lambda_k2 = nn.Parameter(torch.randn(head_dim) * 0.1)
        self.head_norm = HeadRMSNorm(head_dim, scale=1.0 - self.lambda_init)
        self.proj = nn.Linear(dim, dim)
        self.drop = nn.Dropout(dropout)

    def lam(self) -> Tensor:
        """Current λ, a 0-dim fp32 tensor. Elementwise products and sums rather than a dot
        product, so autocast cannot move it to bf16 (too coarse for exp of small numbers)."""
        one = torch.exp((self.lambda_q1.float() * self.lambda_k1.float()).sum())
        two = torch.exp((self.lambda_q2.float() * self.lambda_k2.float()).sum())
        return one - two + self.lambda_init

    def forward(self, x: Tensor, other: Tensor, mask: Tensor | None = None) -> Tensor:
        q, k, v = (split_heads(t, self.heads) for t in self.qkv(x).chunk(3, dim=-1))
        q_cross = split_heads(self.q_cross(other), self.heads)
        out = differential_attention(q, q_cross, k, v, self.lam(), mask)
        out = self.head_norm(out)
        return self.drop(self.proj(merge_heads(out).to(x.dtype)))
