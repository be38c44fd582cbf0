"""A packed store in object storage (format 4, read by URL): a clip's bytes by ranges.

The manifest says where each clip lies (:func:`schemas.packed_index.locate`, read once
per process); a raw clip's rows of one array are then one ranged ``GET`` of its shard's
chunk object, and a zstd clip's inner chunks one ranged ``GET`` each, at the ranges its
sealed shard's index gives (the index read once per process and array, one ``HEAD``
and one ranged ``GET``). Only sealed shards are read: a store is synced to a bucket
once its ingest has ended.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from schemas.layout import SHARDS_DIR, StoreError
from schemas.packed_index import SHARD_KEY
from schemas.packed_zstd import index_at
from schemas.remote import remote_store
from schemas.remote_clips import key_of
from schemas.stored_array import ArraySpec


def read_rows(spec: ArraySpec) -> np.ndarray:
    """A raw packed clip's whole array: one ranged ``GET`` of its rows."""
    remote = remote_store(spec.store)
    key = key_of(spec.store, spec.chunk_file)
    start = int(spec.offset or 0)
    needed = math.prod(spec.shape) * spec.dtype.itemsize
    data = remote.read_range(key, start, start + needed) if needed else b""
    return np.frombuffer(data, dtype=spec.dtype).reshape(spec.shape)


def range_reader(store: str | Path, chunk_file: Path) -> Callable[[int, int], bytes]:
    """``read(offset, length)`` of a shard's chunk object: one ranged ``GET`` a call."""
    remote = remote_store(store)
    key = key_of(store, chunk_file)
    return lambda offset, length: remote.read_range(key, offset, offset + length)


def shard_meta(store: str | Path, shard: str) -> dict[str, Any]:
    """A shard's ``attributes.mscct_shard``; a shard that is not sealed is refused."""
    remote = remote_store(store)
    try:
        meta = remote.read_json(f"{SHARDS_DIR}/{shard}/zarr.json")
    except FileNotFoundError:
        raise StoreError(
            f"shard {shard} of store {store} is not sealed: sync a store to a bucket once "
            "its ingest has ended"
        ) from None
    found = (meta.get("attributes") or {}).get(SHARD_KEY)
    if not isinstance(found, dict):
        raise StoreError(f"shard {shard} of store {store} has no {SHARD_KEY} attributes")
    return found


def sealed_index(store: str | Path, chunk_file: Path, chunks: int) -> np.ndarray:
    """The ``(chunks, 2)`` index at the end of a sealed zstd shard array's chunk object."""
    remote = remote_store(store)
    key = key_of(store, chunk_file)
    return index_at(remote.size(key), range_reader(store, chunk_file), chunks, remote.where(key))
