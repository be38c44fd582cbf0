"""Where and how a run executes: device, bf16 autocast, seeds, the store's split, provenance."""

from __future__ import annotations

import json
import random
import subprocess
from contextlib import nullcontext
from pathlib import Path
from typing import Any

import numpy as np
import torch

import schemas
from trainer import distributed as ddp
from trainer.config import TrainConfig, TrainerError
from trainer.data import ClipInfo, split_clips
from trainer.metrics import json_safe


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


def git_revision() -> str:
    """The commit of the working directory's checkout, else of the package's, else 'unknown'."""
    for where in (Path.cwd(), Path(__file__).resolve().parent):
        try:
            rev = subprocess.run(
                ["git", "rev-parse", "HEAD"],
                cwd=where,
                capture_output=True,
                text=True,
                timeout=10,
                check=False,
            )
        except (OSError, subprocess.SubprocessError):
            continue
        if rev.returncode == 0 and rev.stdout.strip():
            return rev.stdout.strip()
    return "unknown"


def write_json(path: Path, data: Any) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(json.dumps(json_safe(data), indent=2, allow_nan=False) + "\n")
    tmp.replace(path)
