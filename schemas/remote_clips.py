"""A remote store's clips: array metadata, whole arrays, and which clips are committed.

What :mod:`schemas.readers` reads from a local store, read from a store in object
storage (:mod:`schemas.remote`). Paths arrive as the readers build them (``Path``
objects below the store's root, where ``s3://`` is folded to ``s3:/``) and become keys
relative to the root, checked to stay inside it. A raw-layout array is one bounded
``GET`` of its single chunk; any other array is read through zarr's fsspec store
(which decodes only what is asked), with the same storage options.
"""

from __future__ import annotations

import math
import os
from functools import lru_cache
from pathlib import Path, PurePosixPath
from typing import Any

import numpy as np

from schemas.layout import CLIPS_DIR, LAYOUT_FLAT, StoreError, clip_layout
from schemas.remote import RemoteStore, remote_store, storage_options


def key_of(store: str | os.PathLike[str], path: str | os.PathLike[str]) -> str:
    """The key of ``path`` (a path below the store's root, either URL spelling)."""
    try:
        relative = PurePosixPath(Path(path)).relative_to(PurePosixPath(Path(store)))
    except ValueError:
        raise StoreError(f"{os.fspath(path)} is not inside store {os.fspath(store)}") from None
    return relative.as_posix()


def exists(store: str | os.PathLike[str], path: str | os.PathLike[str]) -> bool:
    """Whether the object at ``path`` (below the store's root) exists."""
    return remote_store(store).exists(key_of(store, path))


def array_meta(store: str | os.PathLike[str], array_path: Path) -> dict[str, Any]:
    """The ``zarr.json`` of the array at ``array_path`` (cached; ``FileNotFoundError``)."""
    return remote_store(store).read_json(key_of(store, array_path / "zarr.json"))


def read_raw(
    store: str | os.PathLike[str], chunk_path: Path, shape: tuple[int, ...], dtype: np.dtype
) -> np.ndarray:
    """A raw-layout chunk, read whole into a new read-only ``shape`` array of ``dtype``.

    Raises:
        FileNotFoundError: no such chunk.
        StoreError: it holds other than the ``shape``'s bytes (refused unread when larger).
    """
    remote = remote_store(store)
    key = key_of(store, chunk_path)
    needed = math.prod(shape) * dtype.itemsize
    size = remote.size(key)
    if size != needed:
        raise StoreError(
            f"{remote.where(key)} holds {size:,} bytes, its shape {shape} {dtype.name} "
            f"needs {needed:,}"
        )
    data = remote.read(key, max_bytes=needed, what="chunk file") if needed else b""
    if len(data) != needed:
        raise StoreError(f"{remote.where(key)} changed while it was read")
    return np.frombuffer(data, dtype=dtype).reshape(shape)


def read_zarr(store: str | os.PathLike[str], array_path: Path) -> np.ndarray:
    """A whole array of any zarr configuration, decoded through zarr's fsspec store."""
    import zarr

    remote = remote_store(store)
    url = remote.where(key_of(store, array_path))
    array = zarr.open_array(store=url, mode="r", storage_options=storage_options())
    return np.asarray(array[...])


def is_committed(store: str | os.PathLike[str], clip_id: str) -> bool:
    """Whether the store holds clip ``clip_id``'s group (``zarr.json``); the clips are
    listed once per process and store (one paginated listing of ``clips/``)."""
    remote = remote_store(store)
    return clip_id in _committed(remote, clip_layout(os.fspath(store)) == LAYOUT_FLAT)


@lru_cache(maxsize=8)
def _committed(remote: RemoteStore, flat: bool) -> frozenset[str]:
    depth = 2 if flat else 4  # clips/<id>/zarr.json or clips/<h0>/<h1>/<id>/zarr.json
    found = set()
    for key in remote.keys_under(CLIPS_DIR):
        parts = key.split("/")
        if len(parts) == depth and parts[-1] == "zarr.json":
            found.add(parts[-2])
    return frozenset(found)
