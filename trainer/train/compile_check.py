"""Whether a compiled training step computes what the eager step computes, on gradients.

A compiled step can match eager on the loss and still be wrong where it matters for
training: the loss is one number of the forward, the gradients are the whole backward.
:func:`compare_compiled` runs one :func:`trainer.train.step.train_step` eagerly and one through
:func:`trainer.train.step.step_forward` from the same seed and batch, with dropout off (its masks
are drawn differently under compilation), no gradient clipping (it would rescale every
gradient by a norm the errors share) and in fp32, and compares every parameter's gradient by its
relative norm ``‖g_compiled − g_eager‖ / max(‖g_eager‖, GRAD_FLOOR · ‖G_eager‖)``, ``G`` the
whole model's gradient.

The floor is there because some gradients are zero but for rounding: a convolution's bias
before a train-mode BatchNorm (the norm removes any per-channel shift), or the stem
BatchNorm's weight at initialisation (each channel's scale passes the ReLU, the max-pool
and the depthwise WTConv unchanged and the next BatchNorm removes it). Their eager fp32
gradients differ from fp64 by 10⁹× (the WTConv bias, ‖g‖ ≈ 5e-17) and 5 % (the stem
weight, ‖g‖ ≈ 1e-6 against a model gradient of norm 7), so any two correct computations
disagree there by 100 % of a noise-sized norm: inductor's "up to 2×" on the CPU was that.
Against a floor of 1e-3 of the model's gradient norm such noise counts for nothing, while
a wrong backward of any parameter whose gradient matters still shows in full.

The tolerance :data:`GRAD_RTOL` allows what reordered float32 sums give (fused kernels add
in another order: ~1e-5 relative on this model), and is orders of magnitude below the
errors of a wrong backward.
``tests/test_compile_step.py`` and ``benchmarks/bench_gpu.py`` (before it times a
compiled step) both use it.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import torch
from torch import Tensor

from trainer.config.settings import TrainConfig
from trainer.model import MSCT
from trainer.train.optim import build_optimizer
from trainer.train.runtime import autocast_dtype
from trainer.train.step import ForwardLoss, forward_loss, step_forward, train_step

#: Largest relative gradient error (per parameter) a compiled step may show against eager.
GRAD_RTOL = 1e-3
#: A parameter's gradient norm counts as at least this fraction of the model's: below it a
#: gradient is rounding noise (see the module's docstring).
GRAD_FLOOR = 1e-3


def comparable(cfg: TrainConfig) -> TrainConfig:
    """``cfg`` with dropout off, no gradient clipping and fp32 (``amp=off``, so the
    tolerance measures the compiler, not where bf16 rounds): a step two paths agree on."""
    model = dataclasses.replace(cfg.model, dropout=0.0)
    return dataclasses.replace(cfg, model=model, grad_clip=0.0, amp="off")


def step_gradients(
    cfg: TrainConfig, batch: dict[str, Tensor], device: torch.device, forward: ForwardLoss
) -> tuple[float, dict[str, Tensor]]:
    """The total loss and every parameter's gradient (fp32, on the host) of one training
    step from seed 0 on ``batch``, through ``forward``."""
    torch.manual_seed(0)
    model = MSCT(cfg.model).to(device).train()
    optimizer = build_optimizer(cfg, model)
    amp = autocast_dtype(cfg, device)
    losses = train_step(model, batch, optimizer, cfg, device, amp, forward=forward)
    grads = {
        name: p.grad.detach().float().cpu().clone()
        for name, p in model.named_parameters()
        if p.grad is not None
    }
    return float(losses["total"]), grads


def gradient_errors(
    reference: dict[str, Tensor], other: dict[str, Tensor], floor: float = GRAD_FLOOR
) -> dict[str, float]:
    """``‖other − reference‖ / max(‖reference‖, floor · ‖all of reference‖)`` per parameter;
    a parameter missing from ``other`` is ``inf``."""
    total = float(torch.linalg.vector_norm(torch.stack([g.norm() for g in reference.values()])))
    errors = {}
    for name, ref in reference.items():
        if name not in other:
            errors[name] = float("inf")
            continue
        scale = max(float(ref.norm()), floor * total)
        diff = float((other[name] - ref).norm())
        errors[name] = diff / scale if scale > 0 else diff
    return errors


def compare_compiled(
    cfg: TrainConfig,
    batch: dict[str, Tensor],
    device: torch.device,
    backend: str,
    rtol: float = GRAD_RTOL,
) -> dict[str, Any]:
    """Eager against compiled (``backend``) gradients of one step of :func:`comparable`
    ``cfg``: a JSON-able report with ``ok`` true when every parameter is within ``rtol``."""
    cfg = comparable(cfg)
    eager_loss, eager = step_gradients(cfg, batch, device, forward_loss)
    torch._dynamo.reset()  # a clean slate: this backend's graphs, and nothing else's
    compiled_cfg = dataclasses.replace(cfg, compile=True)
    compiled_loss, compiled = step_gradients(
        compiled_cfg, batch, device, step_forward(compiled_cfg, backend=backend)
    )
    errors = gradient_errors(eager, compiled)
    worst = max(errors, key=lambda name: errors[name])
    return {
        "backend": backend,
        "rtol": rtol,
        "ok": all(e <= rtol for e in errors.values()),
        "max_rel_error": errors[worst],
        "worst_parameter": worst,
        "floor": GRAD_FLOOR,
        "over_rtol": sorted(name for name, e in errors.items() if e > rtol),
        "parameters": len(errors),
        "loss_eager": eager_loss,
        "loss_compiled": compiled_loss,
    }
