"""The run directory: its layout, a fresh one for a run without ``--out``, and the checks
before anything is written into it.

Layout: ``config.yaml``, ``meta.json``, ``metrics.jsonl``, ``tb/``,
``checkpoints/{last,best}.pt``, ``report.json`` and ``plots/``.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from trainer import distributed as ddp
from trainer.config import TrainerError
from trainer.runtime import new_run_dir

RUNS_ROOT = Path("runs")  # where a run without --out gets its runs/<timestamp> directory


@dataclass(frozen=True)
class RunPaths:
    """The files of one run directory ``out``."""

    out: Path

    @property
    def last(self) -> Path:
        return self.out / "checkpoints" / "last.pt"

    @property
    def best(self) -> Path:
        return self.out / "checkpoints" / "best.pt"

    @property
    def metrics(self) -> Path:
        return self.out / "metrics.jsonl"

    @property
    def tb(self) -> Path:
        return self.out / "tb"

    @property
    def report(self) -> Path:
        return self.out / "report.json"


def shared_new_run_dir(root: Path, info: ddp.DistInfo) -> Path:
    """A fresh ``root/<timestamp>`` made by the main rank (:func:`trainer.runtime.new_run_dir`:
    atomically, with a suffix when another run took the name this second); every rank gets
    the main rank's path.

    The path cannot be derived on each rank alone: ranks may read the clock on either side
    of a second, and which suffix is free is known only to the process that took it.
    """
    made = str(new_run_dir(root)) if info.is_main else None
    return Path(ddp.broadcast_object(made, info))


def check_run_dir(paths: RunPaths, resume: bool) -> None:
    """Refuse an ``--out`` that is a file, a finished or started run when not resuming, and
    one with nothing to resume when resuming."""
    if paths.out.exists() and not paths.out.is_dir():
        raise TrainerError(f"--out {paths.out} is a file, not a run directory; pass another --out")
    if not resume and paths.last.exists():
        raise TrainerError(
            f"{paths.out} already holds a run; pass --resume to continue it or another --out"
        )
    if resume and not paths.last.exists():
        raise TrainerError(f"nothing to resume: {paths.last} does not exist")
