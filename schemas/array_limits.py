"""What a stored array's ``zarr.json`` may say: checked before any number in it is used.

A clip's array metadata comes from disk, so a damaged or hostile file could name a
shape of 10¹² frames (a reader would try to allocate it), hold a JSON list, or lack
its shape. :func:`parse_array_meta` checks that the metadata makes sense and
:func:`check_shape` that the shape is one the store's recipe could have made: each
array's row shape and data type are fixed by the recipe (:func:`expected_rows`) and no
clip is longer than ``max_seconds`` at ``fps`` (one frame of slack). Both raise
``ValueError`` with the problem in words; :func:`schemas.readers.array_spec` turns it
into the one-line damaged-clip error.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np

from schemas.lifecycle import open_store
from schemas.recipe import Recipe
from schemas.store_url import store_url
from schemas.streams import rows_of


@dataclass(frozen=True)
class ArrayLimits:
    """The shapes a store's recipe allows: ``rows[name] = (row shape, dtype)``."""

    max_frames: int
    rows: dict[str, tuple[tuple[int, ...], np.dtype]]


def expected_rows(recipe: Recipe) -> dict[str, tuple[tuple[int, ...], np.dtype]]:
    """Each array's path -> its shape after ``T`` and its data type, as the recipe makes
    them (the table :data:`schemas.streams.CLIP_ARRAY_TABLE`)."""
    return rows_of(recipe)


def parse_array_meta(
    meta: Any,
) -> tuple[tuple[int, ...], np.dtype, tuple[int, ...], list[dict[str, Any]]]:
    """``(shape, dtype, chunk_shape, codecs)`` of Zarr v3 array metadata.

    Raises:
        ValueError: a missing or malformed shape, data type, chunk grid or codec list.
    """
    if not isinstance(meta, dict):
        raise ValueError(f"is a JSON {type(meta).__name__}, not an object")
    shape = _int_list(meta.get("shape"), "shape")
    data_type = meta.get("data_type")
    try:
        if not isinstance(data_type, str):
            raise TypeError
        dtype = np.dtype(data_type)
    except TypeError:
        raise ValueError(f"has no usable data_type ({data_type!r})") from None
    grid = meta.get("chunk_grid")
    config = grid.get("configuration") if isinstance(grid, dict) else None
    chunks = config.get("chunk_shape") if isinstance(config, dict) else None
    chunk_shape = _int_list(chunks, "chunk_shape")
    if len(chunk_shape) != len(shape) or min(chunk_shape, default=1) < 1:
        raise ValueError(f"has chunk_shape {list(chunk_shape)} for shape {list(shape)}")
    codecs = meta.get("codecs", [])
    if not isinstance(codecs, list) or not all(isinstance(c, dict) for c in codecs):
        raise ValueError("has a malformed codecs list")
    return shape, dtype, chunk_shape, codecs


def _int_list(value: Any, what: str) -> tuple[int, ...]:
    ok = isinstance(value, list) and all(
        isinstance(n, int) and not isinstance(n, bool) and n >= 0 for n in value
    )
    if not ok:
        shown = repr(value) if len(repr(value)) <= 60 else repr(value)[:57] + "..."
        raise ValueError(f"has no usable {what} ({shown})")
    return tuple(value)


def check_shape(
    store: str | Path,
    name: str,
    shape: tuple[int, ...],
    dtype: np.dtype,
    chunk_shape: tuple[int, ...],
) -> None:
    """Refuse a shape the store's recipe could not have made (``ValueError``).

    ``name`` is the array's path in the clip (``video``, ``labels/fake``); an array of
    another name is bounded by the largest row the recipe makes. A chunk is never
    larger than the array.
    """
    limits = store_limits(store)
    frames = shape[0] if shape else 0
    if not 1 <= frames <= limits.max_frames:
        raise ValueError(
            f"has shape {list(shape)}: {frames} frames, where the store's recipe makes "
            f"1 to {limits.max_frames}"
        )
    if name in limits.rows:
        row, wanted = limits.rows[name]
        if shape[1:] != row or dtype.newbyteorder("=") != wanted.newbyteorder("="):
            raise ValueError(
                f"has shape {list(shape)} {dtype.name}, where the store's recipe makes "
                f"{[frames, *row]} {wanted.name}"
            )
    else:
        largest = max(math.prod(r) * d.itemsize for r, d in limits.rows.values())
        if math.prod(shape[1:]) * dtype.itemsize > largest:
            raise ValueError(f"has shape {list(shape)}, rows larger than the recipe makes")
    if any(c > max(s, 1) for c, s in zip(chunk_shape, shape, strict=True)):
        raise ValueError(f"has chunks {list(chunk_shape)} larger than its shape {list(shape)}")


# Resolved store path -> (identity of its root zarr.json, limits): the recipe is read
# once per store and process, and again only when the store was made anew.
_LIMITS: dict[str, tuple[tuple[int, int, int], ArrayLimits]] = {}


def store_limits(store: str | Path) -> ArrayLimits:
    """The :class:`ArrayLimits` of a store's recipe (one ``stat`` when known; a remote
    store's, read once per process: a store in a bucket is finished)."""
    url = store_url(store)
    if url is not None:
        return _limits_of(open_store(url).recipe)
    root = os.path.realpath(os.fspath(store))
    info = os.stat(os.path.join(root, "zarr.json"))
    identity = (info.st_ino, info.st_mtime_ns, info.st_size)
    known = _LIMITS.get(root)
    if known is not None and known[0] == identity:
        return known[1]
    limits = _limits_of(open_store(store).recipe)
    _LIMITS[root] = (identity, limits)
    return limits


@lru_cache(maxsize=64)
def _limits_of(recipe: Recipe) -> ArrayLimits:
    return ArrayLimits(
        max_frames=math.ceil(recipe.max_seconds * recipe.fps) + 1, rows=expected_rows(recipe)
    )
