"""Checkpoints: atomic save, safe load (``weights_only=True``), RNG state capture, the
checks before a run resumes from one.

A checkpoint is a plain dict of tensors, numbers, strings, lists and dicts, so
``torch.load(..., weights_only=True)`` accepts it and never runs pickled code.
Keys: ``format``; ``model``, ``optimizer``, ``scheduler`` (state dicts); the run's
:class:`~trainer.state.TrainState`: ``epoch`` (last finished, 0-based), ``best_epoch``,
``best_metric``, ``best_val``, ``bad_epochs``; ``rng`` (every rank's RNG states); and
where it came from: ``config``, ``store_fingerprint``, ``recipe``, ``split``, ``store``,
``train_clips``.
"""

from __future__ import annotations

import pickle
import random
import zipfile
from pathlib import Path
from typing import Any, cast

import numpy as np
import torch

import schemas
from trainer.config import TrainConfig, TrainerError, config_diff

CHECKPOINT_FORMAT = "mscct-checkpoint-1"
REQUIRED_KEYS = ("format", "model", "epoch", "config", "store_fingerprint", "recipe")
# torch.save writes its zip entries uncompressed, so an archive of ours unpacks to
# about its own size; a larger declared size is a crafted archive (a "zip bomb"),
# refused before torch.load allocates it. The pickle holds structure only (tensors are
# separate entries): a few MB for the paper model with a 20k-clip training list.
MAX_INFLATION = 2
INFLATION_SLACK = 1 << 20
MAX_PICKLE_BYTES = 256 << 20
UNSAFE_HINT = (
    "it holds objects other than tensors and plain data; refused, as loading it could run code"
)


def capture_rng() -> dict[str, Any]:
    """Torch (CPU and CUDA), numpy and ``random`` states as tensors and lists."""
    np_state = cast(tuple, np.random.get_state())  # the legacy tuple form
    py_state = random.getstate()
    state: dict[str, Any] = {
        "torch": torch.get_rng_state(),
        "numpy": {
            "name": str(np_state[0]),
            "keys": torch.from_numpy(np.asarray(np_state[1], dtype=np.int64)),
            "pos": int(np_state[2]),
            "has_gauss": int(np_state[3]),
            "cached_gaussian": float(np_state[4]),
        },
        "python": {
            "version": int(py_state[0]),
            "state": list(py_state[1]),
            "gauss": py_state[2],
        },
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def restore_rng(state: dict[str, Any]) -> None:
    """Inverse of :func:`capture_rng`."""
    torch.set_rng_state(state["torch"])
    n = state["numpy"]
    np.random.set_state(
        (
            n["name"],
            n["keys"].numpy().astype(np.uint32),
            n["pos"],
            n["has_gauss"],
            n["cached_gaussian"],
        )
    )
    p = state["python"]
    random.setstate((p["version"], tuple(p["state"]), p["gauss"]))
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def save_checkpoint(path: Path, payload: dict[str, Any]) -> None:
    """Write ``payload`` to ``path`` atomically (temp file in the same folder, then rename).

    A crash while saving, even of the host, leaves the previous checkpoint intact: the
    file is fsync'ed before the rename and its folder after it.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    with schemas.atomic_write(path) as tmp:
        torch.save({"format": CHECKPOINT_FORMAT, **payload}, tmp)


def check_archive_size(path: Path) -> None:
    """Refuse a zip archive whose entries declare more bytes than a checkpoint can hold.

    Reads only the zip's central directory. Files that are not zip archives are left
    to ``torch.load`` (which refuses them or reads the legacy format, also bounded by
    the file's size).
    """
    if not zipfile.is_zipfile(path):
        return
    try:
        with zipfile.ZipFile(path) as archive:
            entries = archive.infolist()
    except (zipfile.BadZipFile, OSError, ValueError) as exc:
        raise TrainerError(f"checkpoint {path} is corrupt or not a checkpoint ({exc})") from None
    on_disk = path.stat().st_size
    declared = sum(e.file_size for e in entries)
    pickle_size = max((e.file_size for e in entries if e.filename.endswith(".pkl")), default=0)
    if declared > MAX_INFLATION * on_disk + INFLATION_SLACK or pickle_size > MAX_PICKLE_BYTES:
        raise TrainerError(
            f"checkpoint {path} declares {declared:,} bytes unpacked ({pickle_size:,} of pickle) "
            f"from {on_disk:,} on disk; torch.save never writes that: not an mscct checkpoint"
        )


def _reason(exc: BaseException) -> str:
    """The first line of a load error, never torch's advice to load unsafely."""
    first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    if isinstance(exc, pickle.UnpicklingError) or "weights_only" in first.lower():
        return UNSAFE_HINT
    return first


def load_checkpoint(path: str | Path) -> dict[str, Any]:
    """Load a checkpoint safely, or raise :class:`TrainerError` with a one-line reason.

    The archive's declared sizes are checked first (:func:`check_archive_size`); then
    ``torch.load(weights_only=True)`` unpickles nothing but tensors and plain data.
    """
    path = Path(path)
    if not path.is_file():
        raise TrainerError(f"checkpoint {path} does not exist")
    check_archive_size(path)
    try:
        data = torch.load(path, map_location="cpu", weights_only=True)
    except (
        RuntimeError,
        EOFError,
        OSError,
        ValueError,
        zipfile.BadZipFile,
        pickle.UnpicklingError,
        AttributeError,
        KeyError,
        TypeError,
    ) as exc:
        raise TrainerError(
            f"checkpoint {path} is corrupt or not a checkpoint ({_reason(exc)})"
        ) from None
    if not isinstance(data, dict):
        raise TrainerError(f"checkpoint {path} is not an mscct checkpoint")
    missing = [k for k in REQUIRED_KEYS if k not in data]
    if missing:
        raise TrainerError(f"checkpoint {path} lacks {', '.join(missing)}: not an mscct checkpoint")
    if data["format"] != CHECKPOINT_FORMAT:
        raise TrainerError(
            f"checkpoint {path} has format {data['format']!r}; this software reads {CHECKPOINT_FORMAT}"
        )
    return data


def load_model_state(model: torch.nn.Module, state: dict[str, Any], path: str | Path) -> None:
    """``model.load_state_dict`` that turns a shape / key mismatch into a :class:`TrainerError`."""
    try:
        model.load_state_dict(state)
    except RuntimeError as exc:
        first = str(exc).strip().splitlines()[0]
        raise TrainerError(f"checkpoint {path} does not fit the model config ({first})") from None


def load_for_resume(path: Path, fingerprint: str, cfg: TrainConfig) -> dict[str, Any]:
    """The checkpoint at ``path``, after checking that it was written on the same store
    (``fingerprint``) with the same config ``cfg``: a resumed run must finish as the
    uninterrupted one would have."""
    ckpt = load_checkpoint(path)
    if ckpt["store_fingerprint"] != fingerprint:
        raise TrainerError(
            f"the store changed since {path} was written (fingerprint "
            f"{ckpt['store_fingerprint']} != {fingerprint}); refusing to resume"
        )
    try:
        saved = TrainConfig.from_stored(ckpt["config"])
    except TrainerError as exc:
        raise TrainerError(f"checkpoint {path} has an invalid config: {exc}") from None
    diff = config_diff(saved, cfg)
    if diff:
        raise TrainerError(f"config differs from the checkpoint's: {'; '.join(diff[:3])}")
    return ckpt
