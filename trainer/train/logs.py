"""What a run logs per epoch: ``metrics.jsonl`` (one JSON line per epoch, counted from 1),
TensorBoard scalars under ``tb/``, and the progress bar of an interactive terminal.

Only the main rank writes. A resumed run first drops the lines of epochs after its
checkpoint (:func:`truncate_metrics`) and TensorBoard purges their events, so the files
read as if the run had never stopped.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from trainer.evaluate.metrics import json_safe

VAL_SUMMARY = ("n", "acc", "auc", "log_loss", "audio_auc", "video_auc", "per_category_acc")
TB_VAL = ("acc", "auc", "audio_auc", "video_auc")


class EpochLog:
    """``metrics.jsonl`` and the TensorBoard writer of one run directory."""

    def __init__(self, metrics: Path, tb: Path, start_epoch: int) -> None:
        from torch.utils.tensorboard import SummaryWriter  # slow import: only where used

        self.metrics = metrics
        self.writer = SummaryWriter(str(tb), purge_step=start_epoch)

    def write(
        self,
        epoch: int,
        train_loss: dict[str, float],
        val: dict[str, Any],
        lr: float,
        best_epoch: int,
        seconds: float,
    ) -> None:
        """Append the line of finished 0-based ``epoch`` and its TensorBoard scalars."""
        record = {
            "epoch": epoch + 1,
            "train": train_loss,
            "val": {k: val[k] for k in VAL_SUMMARY},
            "lr": lr,
            "best_epoch": best_epoch + 1,
            "epoch_time_s": seconds,
        }
        with self.metrics.open("a") as fh:
            fh.write(json.dumps(json_safe(record), allow_nan=False) + "\n")
        for k, v in train_loss.items():
            self.writer.add_scalar(f"train/loss_{k}", v, epoch)
        for k in TB_VAL:
            if val[k] == val[k]:  # NaN is skipped
                self.writer.add_scalar(f"val/{k}", val[k], epoch)
        self.writer.add_scalar("lr", lr, epoch)
        self.writer.flush()

    def close(self) -> None:
        self.writer.close()


def truncate_metrics(path: Path, last_epoch: int) -> None:
    """Keep the lines of epochs ``<= last_epoch`` (0-based; lines count from 1): a run
    killed after logging an epoch but before checkpointing it logged one more."""
    if not path.exists():
        return
    keep = [
        line
        for line in path.read_text().splitlines()
        if line.strip() and json.loads(line)["epoch"] <= last_epoch + 1
    ]
    path.write_text("".join(line + "\n" for line in keep))


def progress_bar(enabled: bool, epoch: int) -> Any:
    """A transient rich progress bar for 1-based ``epoch`` (a no-op when not ``enabled``)."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    return Progress(
        TextColumn(f"epoch {epoch}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("loss {task.fields[loss]:.4f}"),
        TimeElapsedColumn(),
        transient=True,
        disable=not enabled,
    )
