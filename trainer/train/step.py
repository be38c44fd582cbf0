"""One optimisation step of training, the same function the loop and the GPU benchmark run.

The step never waits for the device: its losses stay on the device, and a
:class:`LossTally` adds them up there, with a flag that records the first step whose loss
was not finite. The loop reads the tally on the host every ``cfg.sync_every`` steps and at
the end of the epoch (:meth:`LossTally.read`, the only host read of the loop); a read that
finds a non-finite loss raises :class:`~trainer.config.settings.TrainerError` naming the first bad
step, on every rank at once when distributed. The epoch's last read comes before precise
BN, validation and the checkpoint, so weights that a non-finite loss has spoilt are never
written; they may take up to ``sync_every`` - 1 more steps in memory before the run stops.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor

from trainer.config.settings import TrainConfig, TrainerError
from trainer.data.inputs import model_inputs
from trainer.model import LossWeights, detector_loss
from trainer.model.loss import LossParts
from trainer.train import distributed as ddp
from trainer.train.runtime import autocast

LOSS_PARTS = ("total", "audio", "video", "fused", "align")
FRAME_PART = "frame"  # the frame head's BCE, a part only with model.frame_head
LABELS = ("audio_label", "video_label", "label")  # the losses' label arguments, in order
NOT_FINITE_HINT = "stopped (try a lower lr, amp=off or grad_clip > 0)"
NO_BAD_STEP = -1  # the tally's first-bad-step value while every loss was finite

#: forward_loss's signature: model, audio, video, mask, labels, loss weights, frame labels.
ForwardLoss = Callable[
    [torch.nn.Module, Tensor, Tensor, Tensor | None, tuple[Tensor, Tensor, Tensor], LossWeights,
     Tensor | None],
    LossParts,
]  # fmt: skip


def loss_parts(cfg: TrainConfig) -> tuple[str, ...]:
    """The loss parts a step of ``cfg`` reports: :data:`LOSS_PARTS`, and ``frame`` with a
    frame head."""
    return (*LOSS_PARTS, FRAME_PART) if cfg.model.frame_head else LOSS_PARTS


def read_device(values: Tensor) -> list[float]:
    """Copy a short 1-D device tensor to the host: the training loop's one host sync."""
    return [float(v) for v in values.tolist()]


def not_finite_message(epoch: int, step: int) -> str:
    """The one-line error of a non-finite loss at 0-based ``epoch`` and ``step``."""
    return f"loss is not finite at epoch {epoch + 1} step {step + 1}; {NOT_FINITE_HINT}"


class LossTally:
    """Running sums of each loss part × batch size of one epoch, kept on ``device``, and the
    index of the first step whose total loss was not finite.

    :meth:`add` launches a few tiny kernels and never waits for the device; :meth:`read`
    copies the sums to the host (one sync), raises on a non-finite loss and folds the
    interval's sums into the host totals.
    """

    def __init__(
        self, parts: tuple[str, ...], device: torch.device, epoch: int, info: ddp.DistInfo
    ) -> None:
        if parts[0] != "total":
            raise ValueError(f"the tally's first part must be the total, got {parts}")
        self.parts, self.epoch, self.info = parts, epoch, info
        self.steps = 0  # steps added so far, so the next step's 0-based index
        # float64: the interval's sums lose nothing against the host float of old.
        self._sums = torch.zeros(len(parts), dtype=torch.float64, device=device)
        self._first_bad = torch.full((), NO_BAD_STEP, dtype=torch.int64, device=device)
        self._totals = [0.0] * len(parts)  # host sums of everything read so far
        self._windows = 0.0  # host-known: batch sizes need no device read
        self._interval_windows = 0.0
        self._interval_steps = 0
        self.last = {name: float("nan") for name in parts}  # the latest read's means

    def add(self, losses: dict[str, Tensor], windows: int) -> None:
        """Add one step's detached 0-dim losses (the mean over its ``windows`` windows)."""
        values = torch.stack([losses[name] for name in self.parts]).to(torch.float64)
        self._sums.add_(values, alpha=float(windows))
        bad = ~torch.isfinite(values[0])  # the total: any non-finite part makes it so
        first = bad & (self._first_bad == NO_BAD_STEP)
        self._first_bad = torch.where(first, self.steps, self._first_bad)
        self.steps += 1
        self._windows += windows
        self._interval_windows += windows
        self._interval_steps += 1

    @property
    def pending(self) -> bool:
        """Whether steps were added since the last read."""
        return self._interval_steps > 0

    def read(self) -> dict[str, float]:
        """Host read (every rank calls it at the same steps): raise on a non-finite loss,
        naming the first bad step of any rank; else the means since the last read."""
        host = read_device(torch.cat([self._sums, self._first_bad.to(torch.float64)[None]]))
        raise_if_not_finite(int(host[-1]), self.epoch, self.info)
        sums = host[:-1]
        self._totals = [t + s for t, s in zip(self._totals, sums, strict=True)]
        n = max(self._interval_windows, 1.0)
        self.last = {name: s / n for name, s in zip(self.parts, sums, strict=True)}
        self._sums.zero_()
        self._interval_windows = 0.0
        self._interval_steps = 0
        return self.last

    def sums(self) -> list[float]:
        """Host totals of each part × windows, then the window count (call after a read)."""
        return [*self._totals, self._windows]


def raise_if_not_finite(first_bad: int, epoch: int, info: ddp.DistInfo) -> None:
    """Raise naming the earliest of the ranks' first non-finite steps (``NO_BAD_STEP`` for
    none); every rank takes part in the gather, so all ranks stop together."""
    bad = [s for s in ddp.gather_objects(first_bad, info) if s != NO_BAD_STEP]
    if bad:
        raise TrainerError(not_finite_message(epoch, min(bad)))


def forward_loss(
    model: torch.nn.Module,
    audio: Tensor,
    video: Tensor,
    mask: Tensor | None,
    labels: tuple[Tensor, Tensor, Tensor],
    weights: LossWeights,
    frame_label: Tensor | None,
) -> LossParts:
    """The model's forward and its detector's loss (:func:`~trainer.model.detector_loss`,
    :func:`~trainer.model.msct_loss` for MSCT): what ``compile`` compiles."""
    out = model(audio, video, mask)
    cfg: Any = ddp.unwrap(model).cfg  # every detector keeps its config as .cfg
    return detector_loss(cfg)(cfg, out, *labels, mask, weights, frame_label)


def step_forward(cfg: TrainConfig, backend: str = "inductor") -> ForwardLoss:
    """:func:`forward_loss`, under ``torch.compile`` with ``backend`` when ``cfg.compile``.

    Shapes are static (``dynamic=False``): windows are fixed-length and the training loader
    drops its last partial batch, so one graph serves every step of a run.
    """
    if not cfg.compile:
        return forward_loss
    return torch.compile(forward_loss, backend=backend, dynamic=False)


def train_step(
    model: torch.nn.Module,
    batch: dict[str, Tensor],
    optimizer: torch.optim.Optimizer,
    cfg: TrainConfig,
    device: torch.device,
    amp: torch.dtype | None,
    *,
    scheduler: torch.optim.lr_scheduler.LRScheduler | None = None,
    tally: LossTally | None = None,
    forward: ForwardLoss = forward_loss,
) -> dict[str, Tensor]:
    """One optimisation step of the training loop, exactly as :func:`trainer.train.run.train`
    takes it.

    ``batch`` is a collated :class:`~trainer.data.dataset.WindowDataset` batch (audio (B, T, 104),
    uint8 video (B, T, S, S, 3), mask (B, T), labels (B,)), on the host or on ``device``.
    ``forward`` (:func:`forward_loss`, or :func:`step_forward`'s compiled one) under
    ``amp`` autocast, backward, gradient clipping at ``cfg.grad_clip``, the optimiser step
    and, when given, the scheduler step; the losses go to ``tally`` when given. Returns
    each loss part (:func:`loss_parts`) as a detached 0-dim tensor on ``device``: nothing
    here waits for the device. With a frame head the batch carries ``frame_label``
    ``(B, T)`` and the loss its per-frame BCE.
    """
    audio, video, mask = model_inputs(batch, device, cfg.model.visual_input)
    audio_label, video_label, label = (batch[k].to(device, non_blocking=True) for k in LABELS)
    labels = (audio_label, video_label, label)
    frame_label = None
    if cfg.model.frame_head:
        frame_label = batch["frame_label"].to(device, non_blocking=True)
    with autocast(device, amp):
        parts = forward(model, audio, video, mask, labels, cfg.loss, frame_label)
    optimizer.zero_grad(set_to_none=True)
    parts.total.backward()
    if cfg.grad_clip > 0:
        torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip)
    optimizer.step()
    if scheduler is not None:
        scheduler.step()
    losses = {name: getattr(parts, name).detach() for name in loss_parts(cfg)}
    if tally is not None:
        tally.add(losses, int(batch["label"].shape[0]))
    return losses
