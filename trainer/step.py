"""One optimisation step of training, the same function the loop and the GPU benchmark run.

The step checks the loss before any weight moves: a non-finite loss raises
:class:`~trainer.config.TrainerError` (on every rank at once when distributed), so a
diverged run stops with a one-line hint instead of writing NaN weights.
"""

from __future__ import annotations

from collections.abc import Callable

import torch

from trainer import distributed as ddp
from trainer.config import TrainConfig, TrainerError
from trainer.inputs import model_inputs
from trainer.model import msct_loss
from trainer.runtime import autocast

LOSS_PARTS = ("total", "audio", "video", "fused", "align")
FRAME_PART = "frame"  # the frame head's BCE, a part only with model.frame_head
LABELS = ("audio_label", "video_label", "label")  # msct_loss's label arguments, in order
NOT_FINITE_HINT = "stopped (try a lower lr, amp=off or grad_clip > 0)"


def loss_parts(cfg: TrainConfig) -> tuple[str, ...]:
    """The loss parts a step of ``cfg`` reports: :data:`LOSS_PARTS`, and ``frame`` with a
    frame head."""
    return (*LOSS_PARTS, FRAME_PART) if cfg.model.frame_head else LOSS_PARTS


def check_finite(loss: torch.Tensor) -> None:
    """Single-process default of :func:`train_step`'s ``check``: raise on a non-finite loss."""
    if not bool(torch.isfinite(loss.detach())):
        raise TrainerError(f"loss is not finite; {NOT_FINITE_HINT}")


def check_finite_on_all_ranks(
    loss: torch.Tensor, epoch: int, step: int, info: ddp.DistInfo
) -> None:
    """Raise on a non-finite loss on any rank, naming the (0-based) ``epoch`` and ``step``
    counted from 1; every rank takes part, so all ranks stop together."""
    bad = 0.0 if bool(torch.isfinite(loss.detach())) else 1.0
    if info.enabled:
        bad = ddp.all_sum([bad], info)[0]
    if bad:
        raise TrainerError(
            f"loss is not finite at epoch {epoch + 1} step {step + 1}; {NOT_FINITE_HINT}"
        )


def train_step(
    model: torch.nn.Module,
    batch: dict[str, torch.Tensor],
    optimizer: torch.optim.Optimizer,
    cfg: TrainConfig,
    device: torch.device,
    amp: torch.dtype | None,
    *,
    scheduler: torch.optim.lr_scheduler.LRScheduler | None = None,
    check: Callable[[torch.Tensor], None] = check_finite,
) -> dict[str, float]:
    """One optimisation step of the training loop, exactly as :func:`trainer.recipe.train`
    takes it.

    ``batch`` is a collated :class:`~trainer.data.WindowDataset` batch (audio (B, T, 104),
    uint8 video (B, T, S, S, 3), mask (B, T), labels (B,)), on the host or on ``device``.
    Forward and loss under ``amp`` autocast, ``check(total loss)`` before any weight moves
    (it raises on a non-finite loss), backward, gradient clipping at ``cfg.grad_clip``,
    the optimiser step and, when given, the scheduler step. Returns each loss part
    (:func:`loss_parts`) as a float: reading them is a host sync, which every step of the
    loop pays and so every benchmark of it must pay too. With a frame head the batch
    carries ``frame_label`` ``(B, T)`` and the loss its per-frame BCE.
    """
    audio, video, mask = model_inputs(batch, device, cfg.model.visual_input)
    audio_label, video_label, label = (batch[k].to(device, non_blocking=True) for k in LABELS)
    frame_label = None
    if cfg.model.frame_head:
        frame_label = batch["frame_label"].to(device, non_blocking=True)
    with autocast(device, amp):
        out = model(audio, video, mask)
        parts = msct_loss(out, audio_label, video_label, label, mask, cfg.loss, frame_label)
    check(parts.total)
    optimizer.zero_grad(set_to_none=True)
    parts.total.backward()
    if cfg.grad_clip > 0:
        torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip)
    optimizer.step()
    if scheduler is not None:
        scheduler.step()
    return {name: float(getattr(parts, name).detach()) for name in loss_parts(cfg)}
