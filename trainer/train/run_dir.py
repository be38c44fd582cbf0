"""The run directory: its layout, a fresh one for a run without ``--out``, and the checks
and the lock before anything is written into it.

Layout: ``config.yaml``, ``meta.json``, ``metrics.jsonl``, ``tb/``,
``checkpoints/{last,best}.pt``, ``report.json``, ``plots/`` and ``.run.lock``.

What ``--out`` may be (:func:`claim_run_dir`): a new path or an empty folder for a new
run; the folder of a run with ``checkpoints/last.pt`` for ``--resume``. Anything else is
refused in one line before a byte is written: a folder holding anything (a finished run,
a user's files) without ``--resume``, a file, a path inside a feature store (the run's
files would be foreign files there). The main rank then holds an exclusive lock on
``.run.lock`` until the run ends, so a second run on the same folder is refused instead
of interleaving ``metrics.jsonl`` and replacing the first one's checkpoints.
"""

from __future__ import annotations

import errno
import fcntl
import os
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from trainer.config.settings import TrainerError
from trainer.train import distributed as ddp
from trainer.train.runtime import new_run_dir

RUNS_ROOT = Path("runs")  # where a run without --out gets its runs/<timestamp> directory
LOCK_NAME = ".run.lock"  # held by the run writing into the folder


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
    """A fresh ``root/<timestamp>`` made by the main rank (:func:`trainer.train.runtime.new_run_dir`:
    atomically, with a suffix when another run took the name this second); every rank gets
    the main rank's path.

    The path cannot be derived on each rank alone: ranks may read the clock on either side
    of a second, and which suffix is free is known only to the process that took it.
    """
    made = str(new_run_dir(root)) if info.is_main else None
    return Path(ddp.broadcast_object(made, info))


def check_run_dir(paths: RunPaths, resume: bool) -> None:
    """Refuse an ``--out`` that is a file, a folder holding anything when not resuming, and
    one with nothing to resume when resuming (the lock file of a run that never wrote
    anything aside)."""
    if os.path.lexists(paths.out) and not paths.out.is_dir():
        raise TrainerError(f"--out {paths.out} is a file, not a run directory; pass another --out")
    if not resume and paths.last.exists():
        raise TrainerError(
            f"{paths.out} already holds a run; pass --resume to continue it or another --out"
        )
    if not resume and paths.out.is_dir():
        taken = sorted(e.name for e in os.scandir(paths.out) if e.name != LOCK_NAME)
        if taken:
            raise TrainerError(
                f"--out {paths.out} is not empty (it holds {taken[0]!r}"
                f"{f' and {len(taken) - 1} more' if len(taken) > 1 else ''}); pass --resume "
                "to continue the run in it, or a new or empty folder"
            )
    if resume and not paths.last.exists():
        raise TrainerError(f"nothing to resume: {paths.last} does not exist")


def check_not_in_store(out: Path, store: Path) -> None:
    """Refuse an ``--out`` inside the ``--store`` or inside any folder that looks like a
    feature store (a ``zarr.json`` file beside a ``clips/`` folder, seen by ``lstat``
    alone: nothing outside the given paths is read)."""
    real = Path(os.path.realpath(out))
    if real.is_relative_to(os.path.realpath(store)):
        raise TrainerError(
            f"--out {out} is inside the store {store}; a run's files do not belong in a "
            "store: pass an --out outside it"
        )
    for folder in (real, *real.parents):
        if (folder / "zarr.json").is_file() and any(
            (folder / name).is_dir() for name in ("clips", "shards")
        ):
            raise TrainerError(
                f"--out {out} is inside the feature store {folder}; a run's files do not "
                "belong in a store: pass an --out outside it"
            )


class RunLock:
    """The exclusive lock on ``out/.run.lock``; released by :meth:`release` or when the
    process ends (the kernel drops it, so a killed run never leaves a stale lock).

    A POSIX record lock (``lockf``), not ``flock``: it belongs to this process alone, so
    the DataLoader workers forked from it do not hold it, and a killed run's folder can be
    resumed at once even while its orphaned workers are still winding down.
    """

    def __init__(self, out: Path) -> None:
        path = out / LOCK_NAME
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC, 0o644)
        try:
            fcntl.lockf(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as exc:
            os.close(fd)
            if exc.errno in (errno.EACCES, errno.EAGAIN):
                raise TrainerError(
                    f"another run is writing into {out} (it holds {path}); wait for it to "
                    "end or pass another --out"
                ) from None
            raise
        self.handle: BinaryIO | None = os.fdopen(fd, "r+b")

    def release(self) -> None:
        if self.handle is not None:
            self.handle.close()  # closing the descriptor drops the lock
            self.handle = None


def claim_run_dir(paths: RunPaths, resume: bool, store: Path) -> RunLock:
    """Check ``paths.out`` (:func:`check_not_in_store`, :func:`check_run_dir`), create it
    and take its lock; a file system error (a full disk, no permission) is one line.

    Everything is checked before the folder or its lock file is made (a refused folder
    gets no byte), and again once the lock is held: of two runs started on one empty
    folder, exactly one proceeds.
    """
    out = paths.out
    check_not_in_store(out, store)
    check_run_dir(paths, resume)
    try:
        out.mkdir(parents=True, exist_ok=True)
        lock = RunLock(out)
    except OSError as exc:
        raise TrainerError(f"cannot use --out {out}: {exc.strerror or exc}") from None
    try:
        check_run_dir(paths, resume)
    except BaseException:
        lock.release()
        raise
    return lock
