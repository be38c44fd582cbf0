"""Checkpoints: atomic save, safe load (``weights_only=True``), RNG state capture, the
checks before a run resumes from one.

A checkpoint is a plain dict of tensors, numbers, strings, lists and dicts, so
``torch.load(..., weights_only=True)`` accepts it and never runs pickled code.
Keys: ``format``; ``model``, ``optimizer``, ``scheduler`` (state dicts); the run's
:class:`~trainer.train.state.TrainState`: ``epoch`` (last finished, 0-based), ``best_epoch``,
``best_metric``, ``best_val``, ``bad_epochs``; ``rng`` (every rank's RNG states); and
where it came from: ``config``, ``store_fingerprint``, ``recipe``, ``split``, ``store``,
``train_clips``.
"""

from __future__ import annotations

import os
import pickle
import random
import zipfile
from pathlib import Path
from typing import IO, Any, cast

import numpy as np
import torch

import schemas
from schemas.safe_files import RefusedFile, open_inside
from trainer.config.ranges import RECIPE_RANGES, out_of_range
from trainer.config.settings import TrainConfig, TrainerError, config_diff

CHECKPOINT_FORMAT = "mscct-checkpoint-1"
REQUIRED_KEYS = ("format", "model", "epoch", "config", "store_fingerprint", "recipe")
# torch.save writes its zip entries uncompressed, so an archive of ours unpacks to
# about its own size; a larger declared size is a crafted archive (a "zip bomb"),
# refused before torch.load allocates it. The pickle holds structure only (tensors are
# separate entries): a few MB for the paper model with a 20k-clip training list.
MAX_INFLATION = 2
INFLATION_SLACK = 1 << 20
MAX_PICKLE_BYTES = 256 << 20
# The paper model's checkpoint is about 100 MB; a file beyond this is not one of ours.
MAX_CHECKPOINT_BYTES = 16 << 30
ZIP_MAGIC = b"PK\x03\x04"  # how every archive torch.save writes begins
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


def check_archive_size(path: Path, handle: IO[bytes] | None = None) -> None:
    """Refuse a zip archive whose entries declare more bytes than a checkpoint can hold.

    Reads only the zip's central directory, from ``handle`` (an open ``path``) when
    given. Files that are not zip archives are left to the caller.
    """
    source: Any = handle if handle is not None else path
    if not zipfile.is_zipfile(source):
        return
    try:
        with zipfile.ZipFile(source) as archive:
            entries = archive.infolist()
    except (zipfile.BadZipFile, OSError, ValueError) as exc:
        raise TrainerError(f"checkpoint {path} is corrupt or not a checkpoint ({exc})") from None
    on_disk = os.fstat(handle.fileno()).st_size if handle is not None else path.stat().st_size
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


def _open_checkpoint(path: Path) -> IO[bytes]:
    """``path`` (the user's, links included) opened once, if it is a regular file of at
    most :data:`MAX_CHECKPOINT_BYTES` that starts like a zip archive; else one line
    saying what it is (missing, a FIFO, a folder, too big, not an archive)."""
    if not os.path.lexists(path):
        raise TrainerError(f"checkpoint {path} does not exist")
    real = os.path.realpath(path)
    try:
        handle = open_inside(real, what="checkpoint")
    except RefusedFile as exc:
        raise TrainerError(str(exc).replace(real, str(path))) from None
    except OSError as exc:
        raise TrainerError(f"cannot read checkpoint {path}: {exc.strerror or exc}") from None
    head, size = handle.read(len(ZIP_MAGIC)), os.fstat(handle.fileno()).st_size
    handle.seek(0)
    if head != ZIP_MAGIC or size > MAX_CHECKPOINT_BYTES:
        handle.close()
        what = "empty" if not head else f"starts with {head.hex(' ')}"
        raise TrainerError(
            f"checkpoint {path} is corrupt or not a checkpoint: torch.save writes a zip "
            f"archive, and this file is not one (it is {size:,} bytes and {what})"
            if head != ZIP_MAGIC
            else f"checkpoint {path} is {size:,} bytes, over the {MAX_CHECKPOINT_BYTES:,} "
            "a checkpoint of this software can be"
        )
    return handle


def load_checkpoint(path: str | Path) -> dict[str, Any]:
    """Load a checkpoint safely, or raise :class:`TrainerError` with a one-line reason.

    The file is opened once (:func:`_open_checkpoint`: a regular zip archive of bounded
    size); the archive's declared sizes are checked (:func:`check_archive_size`); then
    ``torch.load(weights_only=True)`` unpickles nothing but tensors and plain data, and
    the recipe's numbers are checked against their ranges (:func:`check_recipe_values`).
    """
    path = Path(path)
    with _open_checkpoint(path) as handle:
        check_archive_size(path, handle)
        data = _torch_load(path, handle)
    if not isinstance(data, dict):
        raise TrainerError(f"checkpoint {path} is not an mscct checkpoint")
    missing = [k for k in REQUIRED_KEYS if k not in data]
    if missing:
        raise TrainerError(f"checkpoint {path} lacks {', '.join(missing)}: not an mscct checkpoint")
    if data["format"] != CHECKPOINT_FORMAT:
        raise TrainerError(
            f"checkpoint {path} has format {data['format']!r}; this software reads {CHECKPOINT_FORMAT}"
        )
    check_recipe_values(data["recipe"], path)
    return data


def check_recipe_values(recipe: Any, path: Path) -> None:
    """Refuse a checkpoint's recipe whose numbers are outside their documented ranges
    (:data:`trainer.config.ranges.RECIPE_RANGES`): ``predict`` decodes and crops by them."""
    if not isinstance(recipe, dict):
        raise TrainerError(f"checkpoint {path} has no recipe mapping: not an mscct checkpoint")
    problems = out_of_range(recipe, RECIPE_RANGES)
    if problems:
        raise TrainerError(f"checkpoint {path} has an invalid recipe: {problems[0]}")


def _torch_load(path: Path, handle: IO[bytes]) -> Any:
    """``torch.load(weights_only=True)`` of the open checkpoint; errors as one line."""
    handle.seek(0)  # the zip checks moved it
    try:
        return torch.load(handle, map_location="cpu", weights_only=True)
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
