"""Where and how a run executes: device, bf16 autocast, seeds, the store's split, provenance,
the run directory, and the log callable every entry point passes down."""

from __future__ import annotations

import itertools
import json
import random
import subprocess
import time
from collections.abc import Callable
from contextlib import nullcontext
from pathlib import Path
from typing import Any

import numpy as np
import torch

import schemas
from trainer.config.settings import TrainConfig, TrainerError
from trainer.data.dataset import ClipInfo, split_clips
from trainer.evaluate.metrics import json_safe
from trainer.train import distributed as ddp

Log = Callable[[str], None]  # where a run's progress lines go (print, typer.echo, a no-op)


def resolve_device(cfg: TrainConfig, info: ddp.DistInfo) -> torch.device:
    """``auto`` → CUDA (this rank's GPU) when available, else CPU."""
    if cfg.device == "cuda" or (cfg.device == "auto" and torch.cuda.is_available()):
        if not torch.cuda.is_available():
            raise TrainerError("config device=cuda but no CUDA device is available")
        return torch.device("cuda", info.local_rank)
    return torch.device("cpu")


def autocast_dtype(cfg: TrainConfig, device: torch.device) -> torch.dtype | None:
    """bf16 autocast on GPU for ``amp=auto`` (no loss scaling needed), or everywhere for ``bf16``."""
    if cfg.amp == "bf16" or (cfg.amp == "auto" and device.type == "cuda"):
        return torch.bfloat16
    return None


def autocast(device: torch.device, dtype: torch.dtype | None) -> Any:
    if dtype is None:
        return nullcontext()
    return torch.autocast(device_type=device.type, dtype=dtype)


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def open_split(store: Path, split: str) -> tuple[schemas.Recipe, str, dict[str, list[ClipInfo]]]:
    """Recipe, fingerprint and clips of a store's split; store problems become TrainerError."""
    try:
        info = schemas.open_store(store)
        fingerprint = schemas.store_fingerprint(store)
        parts = split_clips(store, split)
    except (schemas.StoreError, schemas.SchemaError) as exc:
        raise TrainerError(str(exc)) from None
    return info.recipe, fingerprint, parts


SOURCE_ROOT = Path(__file__).resolve().parents[2]  # the checkout holding trainer/


def _git(root: Path, *args: str) -> str | None:
    """stdout of ``git -C root args`` (stripped), or None when git fails or is missing."""
    try:
        proc = subprocess.run(
            ["git", "-C", str(root), *args],
            capture_output=True,
            text=True,
            timeout=10,
            check=False,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return proc.stdout.strip() if proc.returncode == 0 else None


def source_revision(root: Path = SOURCE_ROOT) -> dict[str, Any]:
    """``{"git_revision": commit | "unknown", "git_dirty": bool | None}`` of the project's
    own source tree, whatever the current directory is.

    ``root`` must be the top level of its git checkout: an installed copy of the package
    (site-packages) inside some other repository, a virtualenv in the user's project say,
    must not report that repository's commit. ``git_dirty`` counts modified tracked files
    and untracked, not ignored ones (a new source file changes what runs as much as an
    edit does); None when the revision is unknown.
    """
    unknown = {"git_revision": "unknown", "git_dirty": None}
    top = _git(root, "rev-parse", "--show-toplevel")
    if top is None or Path(top).resolve() != root.resolve():
        return unknown
    rev = _git(root, "rev-parse", "HEAD")
    status = _git(root, "status", "--porcelain")
    if not rev or status is None:
        return unknown
    return {"git_revision": rev, "git_dirty": bool(status)}


def new_run_dir(root: Path, stamp: str | None = None) -> Path:
    """Create and return a fresh run directory ``root/<stamp>`` (default stamp: the local
    time, ``YYYYmmdd-HHMMSS``), or ``root/<stamp>-2``, ``-3``, ... when that name is taken.

    ``mkdir`` without ``exist_ok`` is atomic: of several processes started in the same
    second exactly one creates each name, and the others move on to the next suffix.
    """
    stamp = stamp or time.strftime("%Y%m%d-%H%M%S")
    try:
        root.mkdir(parents=True, exist_ok=True)
        for n in itertools.count(1):
            path = root / (stamp if n == 1 else f"{stamp}-{n}")
            try:
                path.mkdir()
            except FileExistsError:
                continue
            return path
    except OSError as exc:
        raise TrainerError(f"cannot create a run directory in {root}: {exc}") from None
    raise AssertionError("itertools.count never ends")


def write_json(path: Path, data: Any) -> None:
    """Write ``data`` as JSON to ``path`` atomically (NaN becomes null)."""
    with schemas.atomic_write(path) as tmp:
        tmp.write_text(json.dumps(json_safe(data), indent=2, allow_nan=False) + "\n")
