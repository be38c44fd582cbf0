"""The resumable state of a training run: what a checkpoint keeps beside the weights,
the optimiser and the scheduler.

Epochs are 0-based here and in the checkpoint (``epoch`` is the last finished one, -1
before the first); ``metrics.jsonl``, ``report.json`` and the log count from 1.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from trainer.evaluate.metrics import json_safe
from trainer.train.selection import KEY_LENGTH, worst_key


@dataclass
class TrainState:
    """Progress and best-so-far of a run, updated on every rank after each epoch."""

    epoch: int = -1  # last finished epoch
    best_epoch: int = -1
    best_key: list[float] = field(default_factory=worst_key)  # trainer.train.selection.val_key
    best_val: dict[str, Any] = field(default_factory=dict)  # val metrics of best_epoch
    bad_epochs: int = 0  # epochs since the last improvement (early stopping)

    def end_epoch(self, epoch: int, key: list[float], val: dict[str, Any]) -> bool:
        """Record finished ``epoch`` with its val ``key`` and metrics; True when it is the
        new best (a strictly greater key: ties keep the earlier epoch)."""
        self.epoch = epoch
        if key > self.best_key:
            self.best_epoch, self.best_key, self.bad_epochs, self.best_val = epoch, key, 0, val
            return True
        self.bad_epochs += 1
        return False

    def out_of_patience(self, patience: int | None) -> bool:
        """Whether early stopping ends the run (``patience=None``: never)."""
        return patience is not None and self.bad_epochs >= patience

    def to_checkpoint(self) -> dict[str, Any]:
        """The checkpoint's state keys (plain data, as ``weights_only`` loading needs)."""
        return {
            "epoch": self.epoch,
            "best_epoch": self.best_epoch,
            "best_metric": self.best_key,
            "best_val": json_safe(self.best_val),
            "bad_epochs": self.bad_epochs,
        }

    @classmethod
    def from_checkpoint(cls, ckpt: dict[str, Any]) -> TrainState:
        """Inverse of :meth:`to_checkpoint`."""
        key = list(ckpt["best_metric"])
        key += worst_key()[len(key) : KEY_LENGTH]  # keys of older runs had no log loss
        return cls(
            epoch=int(ckpt["epoch"]),
            best_epoch=int(ckpt["best_epoch"]),
            best_key=key,
            best_val=dict(ckpt["best_val"]),
            bad_epochs=int(ckpt["bad_epochs"]),
        )
