"""The documented range of every number a config or a checkpoint's recipe may hold.

A config reaches the trainer from a preset, a file, ``--set`` or a checkpoint; a recipe
from a store or a checkpoint. Either may come from someone else, so each number is
checked here, in one place, against a range wide enough for any real run and narrow
enough that no value makes the trainer allocate beyond a machine (a ``model.dim`` of
65536, a ``crop_size`` of 40000, an ``fps`` of 20000 or a 31-digit seed would end in a
MemoryError or an overflow far from the value that caused it). ``docs/training.md``
lists the same ranges.

The functions return the problems as lines, so that callers word the error; this module
imports nothing of the trainer.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Mapping
from typing import Any

#: Inclusive ``(low, high)`` of each numeric config key (dotted); a list value (such
#: as ``model.visual_widths``) has each item checked, and its length is bounded by
#: :data:`MAX_LIST_ITEMS`.
CONFIG_RANGES: dict[str, tuple[float, float]] = {
    "model.dim": (8, 4096),
    "model.depth": (1, 64),
    "model.heads": (4, 256),
    "model.mlp_ratio": (0.25, 16.0),
    "model.dropout": (0.0, 0.99),
    "model.mssa_kernels": (1, 63),
    "model.audio_channels": (1, 1024),
    "model.max_frames": (1, 4096),
    "model.visual_stem": (8, 1024),
    "model.visual_widths": (8, 4096),
    "model.visual_depths": (1, 64),
    "model.wt_levels": (1, 8),
    "model.wt_kernel": (1, 63),
    "window": (1, 4096),
    "windows_per_clip": (1, 10_000),
    "batch_size": (1, 65_536),
    "epochs": (1, 1_000_000),
    "lr": (1e-12, 10.0),
    "weight_decay": (0.0, 10.0),
    "warmup_epochs": (0, 1_000_000),
    "grad_clip": (0.0, 1e6),
    "loss.audio": (0.0, 1000.0),
    "loss.video": (0.0, 1000.0),
    "loss.fused": (0.0, 1000.0),
    "loss.align": (0.0, 1000.0),
    "loss.frame": (0.0, 1000.0),
    "seed": (0, 2**32 - 1),
    "num_workers": (0, 256),
    "eval_stride": (1, 4096),
    "patience": (1, 1_000_000),
    "precise_bn": (0, 1_000_000),
    "sync_every": (1, 1_000_000),
}
MAX_LIST_ITEMS = 16

#: Inclusive ranges of the recipe fields that size what ``predict`` decodes and crops,
#: checked on a checkpoint's recipe before anything is decoded.
RECIPE_RANGES: dict[str, tuple[float, float]] = {
    "crop_size": (16, 1024),
    "fps": (1, 240),
    "sample_rate": (1000, 192_000),
    "max_seconds": (0.04, 3600.0),
    "min_frames": (1, 100_000),
    "face_stride": (1, 10_000),
    "face_smooth": (1, 10_000),
    "face_size_smooth": (1, 10_000),
}


def _leaves(data: Mapping[str, Any], prefix: str = "") -> Iterator[tuple[str, Any]]:
    for key, value in data.items():
        if isinstance(value, Mapping):
            yield from _leaves(value, f"{prefix}{key}.")
        else:
            yield f"{prefix}{key}", value


def _problem(key: str, value: Any, low: float, high: float) -> str | None:
    if value is None or isinstance(value, bool) or not isinstance(value, int | float):
        return None  # types are checked where the value is built
    bounds = f"[{_number(low)}, {_number(high)}]"
    if not math.isfinite(value):
        return f"{key} must be finite and in {bounds}, not {value!r}"
    if not low <= value <= high:
        return f"{key} must be in {bounds}, not {value!r}"
    return None


def _number(bound: float) -> str:
    return f"{bound:g}" if isinstance(bound, float) else str(bound)


def out_of_range(data: Mapping[str, Any], ranges: Mapping[str, tuple[float, float]]) -> list[str]:
    """One line per value of ``data`` (nested, keys dotted) outside its range in ``ranges``."""
    problems = []
    for key, value in _leaves(data):
        if key not in ranges:
            continue
        low, high = ranges[key]
        items = value if isinstance(value, list | tuple) else [value]
        if len(items) > MAX_LIST_ITEMS:
            problems.append(f"{key} lists {len(items)} values, over {MAX_LIST_ITEMS}")
            continue
        problems += [p for v in items if (p := _problem(key, v, low, high)) is not None]
    return problems
