"""Stored ``(T, ...)`` tensors read by row ranges: the raw layout's chunk files and zarr arrays.

:class:`trainer.data.reader.ClipReader` reads every array of a clip through one small
interface, :class:`Rows`: ``rows(start, stop)`` hands out a new array of rows
``[start, stop)``. This module holds two of its kinds (the third, zstd chunks decoded
here, is :mod:`trainer.data.zstd_rows`), apart from the reader's caching of open and seen
clips so that each file is about one job:

- :class:`RawChunk` is what a process has checked of a raw-layout chunk file (no
  links below the store root, size as the manifest's shape says), kept so the file
  can be opened again with a single ``open``; :class:`RawRows` is such a file open,
  read with ``pread`` straight into the window's array;
- :class:`ZarrRows` is any other zarr array, read through zarr, with every chunk
  file a read touches checked to exist first (zarr would hand out zeros).

Damage is never read as data: each failure is a :class:`schemas.StoreError` naming
the clip (:func:`trainer.data.damage.damaged`).
"""

from __future__ import annotations

import itertools
import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import numpy as np

import schemas
from trainer.data.damage import damaged

_OPEN_FLAGS = os.O_RDONLY | os.O_CLOEXEC


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


class Rows(Protocol):
    """A ``(T, ...)`` stored tensor that can hand out copies of row ranges."""

    shape: tuple[int, ...]

    def rows(self, start: int, stop: int) -> np.ndarray: ...


@dataclass(frozen=True)
class RawChunk:
    """A raw-layout chunk file that this process has checked: ``(T, *row)`` of ``dtype``."""

    path: str
    shape: tuple[int, ...]
    dtype: np.dtype
    row_bytes: int
    name: str  # "video", "mouth" or "audio", for errors
    clip_id: str
    store: str
    offset: int = 0  # of row 0 in the file: a packed store's clip lies inside its shard's chunk

    def damaged(self, problem: str) -> schemas.StoreError:
        return damaged(self.store, self.clip_id, f"its {self.name} {problem}")

    @classmethod
    def check(
        cls, root: str, clip_id: str, name: str, shape: tuple[int, ...], dtype: np.dtype
    ) -> tuple[RawChunk, int]:
        """Open tensor ``name`` of ``clip_id`` under the resolved store ``root``, refusing
        links, and check that it holds exactly ``shape`` of ``dtype``.

        Returns:
            The chunk and the open descriptor.
        """
        if schemas.is_packed(root):  # checked there: links, kind, size, the clip's frames
            fd, path, offset = schemas.open_packed_chunk(root, clip_id, name, shape[0])
            row_bytes = math.prod(shape[1:]) * dtype.itemsize
            return cls(path, shape, dtype, row_bytes, name, clip_id, root, offset), fd
        try:
            fd, path = schemas.open_raw_chunk(root, clip_id, name, len(shape))
        except FileNotFoundError:
            raise damaged(root, clip_id, f"its {name} chunk file is missing") from None
        chunk = cls(
            path=path,
            shape=shape,
            dtype=dtype,
            row_bytes=math.prod(shape[1:]) * dtype.itemsize,
            name=name,
            clip_id=clip_id,
            store=root,
        )
        size, expected = os.fstat(fd).st_size, shape[0] * chunk.row_bytes
        if size != expected:
            os.close(fd)
            raise chunk.damaged(
                f"chunk holds {size} bytes, but the manifest's shape {shape} needs {expected}"
            )
        return chunk, fd


class RawRows:
    """An open :class:`RawChunk`, read by rows with ``pread``.

    The descriptor is closed by :meth:`close` or when the object is dropped.
    """

    # Slots and copied fields: this object is made twice per training item.
    __slots__ = ("chunk", "dtype", "fd", "offset", "row_bytes", "row_shape", "shape")

    def __init__(self, fd: int, chunk: RawChunk) -> None:
        self.fd = fd
        self.offset = chunk.offset
        self.chunk = chunk
        self.shape = chunk.shape
        self.row_shape = chunk.shape[1:]
        self.row_bytes = chunk.row_bytes
        self.dtype = chunk.dtype

    @classmethod
    def reopen(cls, chunk: RawChunk) -> RawRows:
        """Open a chunk checked earlier: a single ``open``, no link or size check again.

        A file that shrank since is still caught by the short-read check of :meth:`rows`.
        """
        try:
            return cls(os.open(chunk.path, _OPEN_FLAGS), chunk)
        except FileNotFoundError:
            raise chunk.damaged("chunk file is missing") from None

    def rows(self, start: int, stop: int) -> np.ndarray:
        """A new ``(stop - start, *row)`` array of rows ``[start, stop)``: the one copy."""
        out = np.empty((stop - start, *self.row_shape), dtype=self.dtype)
        # numpy's stubs do not declare the buffer protocol that preadv reads into
        got = os.preadv(self.fd, [out], self.offset + start * self.row_bytes)  # type: ignore[list-item]
        if got != out.nbytes:  # file shrank
            raise self.chunk.damaged("chunk file ended early")
        return out

    def close(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1

    def __del__(self) -> None:
        self.close()


class ZarrRows:
    """A compressed stored tensor; slicing decodes only the chunks it touches.

    zarr hands out its fill value (zeros) for a chunk whose file is missing, which
    would train on black frames and silence: every read first checks that the files
    of the chunks it touches exist (one ``stat`` per chunk, next to a decode that
    costs far more). Any decode failure (a truncated or corrupted chunk, metadata
    whose shape disagrees with its chunks) becomes a one-line damaged-clip error.
    """

    def __init__(self, array: Any, path: Path, store: Path, clip_id: str, name: str) -> None:
        self.array = array
        self.path = path
        self.shape = tuple(array.shape)
        self.chunk_rows = int(array.chunks[0])
        # Chunks along the other axes: our layouts have one, but any grid is checked.
        self.inner_grid = [
            range(math.ceil(n / c)) for n, c in zip(self.shape[1:], array.chunks[1:], strict=True)
        ]
        self.store, self.clip_id, self.name = store, clip_id, name

    @classmethod
    def open(cls, path: Path, store: Path, clip_id: str, name: str) -> ZarrRows:
        import zarr

        try:
            array = zarr.open_array(str(path), mode="r")
        except Exception as exc:  # zarr raises many types for unreadable metadata
            problem = f"its {name} metadata is unreadable ({_first_line(exc)})"
            raise damaged(store, clip_id, problem) from None
        return cls(array, path, store, clip_id, name)

    def rows(self, start: int, stop: int) -> np.ndarray:
        """A new ``(stop - start, ...)`` array of rows ``[start, stop)``, decoded."""
        if stop > start:
            self._check_chunk_files(start // self.chunk_rows, (stop - 1) // self.chunk_rows)
        try:
            return np.asarray(self.array[start:stop])
        except Exception as exc:  # zstd, reshape and codec errors all mean a damaged clip
            problem = f"its {self.name} cannot be decoded ({_first_line(exc)})"
            raise damaged(self.store, self.clip_id, problem) from None

    def _check_chunk_files(self, first: int, last: int) -> None:
        encode = self.array.metadata.encode_chunk_key
        for coords in itertools.product(range(first, last + 1), *self.inner_grid):
            key = encode(coords)
            if not (self.path / key).is_file():
                problem = f"its {self.name} chunk file {key} is missing"
                raise damaged(self.store, self.clip_id, problem)
