"""Row ranges of a clip's tensors in a store in object storage, by byte-range requests.

The remote twin of :class:`trainer.data.stored_rows.RawRows` and of the zstd chunk reads of
:mod:`trainer.data.zstd_rows`, for a store named by a URL (:mod:`schemas.store_url`), read
through :class:`schemas.remote.RemoteStore`:

- raw layout: the single chunk file of a ``(T, *row)`` array is its C-ordered bytes, so
  rows ``[start, stop)`` are bytes ``[start * row_bytes, stop * row_bytes)``: one
  ranged ``GET`` per array and window. At a clip's first read its size is checked once
  (one ``HEAD`` per array, :meth:`RemoteChunk.check`) and kept with the reader's other
  per-clip facts, so later windows send nothing else;
- zstd layout: each chunk file a window touches (one, at most two) is fetched whole in
  one ``GET`` (bounded by what its rows can compress to) and decoded exactly as a local
  one (:class:`RemoteChunkDecoder`).

Failures are the same one-line :class:`schemas.StoreError` naming the clip as locally.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np

import schemas
from schemas.layout import clip_parts, is_packed
from schemas.lifecycle import open_store
from schemas.remote import RemoteStore, remote_store
from schemas.remote_clips import key_of
from schemas.store_url import store_url
from trainer.data.damage import damaged
from trainer.data.zstd_rows import ChunkDecoder, ZstdArray

# A zstd frame is never larger than its content plus a small overhead (a block header
# per 128 KiB and the frame header): anything larger is refused unread.
_ZSTD_SLACK = 1 << 16


@dataclass(frozen=True)
class RemoteChunk:
    """A raw-layout chunk object this process has checked: ``(T, *row)`` of ``dtype``."""

    key: str  # below the store's root
    shape: tuple[int, ...]
    dtype: np.dtype
    row_bytes: int
    name: str  # "video", "mouth" or "audio", for errors
    clip_id: str
    store: str  # the store's URL
    offset: int = 0  # of row 0 in the object: a packed store's clip lies inside its shard's

    @classmethod
    def check_packed(
        cls, remote: RemoteStore, clip_id: str, name: str, shape: tuple[int, ...], dtype: np.dtype
    ) -> RemoteChunk:
        """A packed store's clip array: its rows in its shard's chunk object, whose size is
        checked to hold them (one ``HEAD``)."""
        spec = schemas.array_spec(remote.url, clip_id, name)
        if spec.shape != shape:
            problem = f"its shard holds {spec.shape[0]} frames, the manifest says {shape[0]}"
            raise damaged(remote.url, clip_id, problem)
        offset = int(spec.offset or 0)
        chunk = cls(
            key_of(remote.url, spec.chunk_file), shape, dtype,
            math.prod(shape[1:]) * dtype.itemsize, name, clip_id, remote.url, offset,
        )  # fmt: skip
        try:
            size = remote.size(chunk.key)
        except FileNotFoundError:
            raise damaged(remote.url, clip_id, f"its {name} chunk file is missing") from None
        if size < offset + shape[0] * chunk.row_bytes:
            raise damaged(remote.url, clip_id, f"its {name} chunk ends before its rows")
        return chunk

    @classmethod
    def check(
        cls, remote: RemoteStore, clip_id: str, name: str, shape: tuple[int, ...], dtype: np.dtype
    ) -> RemoteChunk:
        """The chunk of array ``name`` of ``clip_id``, its size checked against ``shape``."""
        parts = (*clip_parts(remote.url, clip_id), name, "c", *("0" * len(shape)))
        chunk = cls(
            key="/".join(parts),
            shape=shape,
            dtype=dtype,
            row_bytes=math.prod(shape[1:]) * dtype.itemsize,
            name=name,
            clip_id=clip_id,
            store=remote.url,
        )
        try:
            size = remote.size(chunk.key)
        except FileNotFoundError:
            raise damaged(remote.url, clip_id, f"its {name} chunk file is missing") from None
        expected = shape[0] * chunk.row_bytes
        if size != expected:
            raise damaged(
                remote.url,
                clip_id,
                f"its {name} chunk holds {size} bytes, but the manifest's shape {shape} "
                f"needs {expected}",
            )
        return chunk


class RemoteRows:
    """A :class:`RemoteChunk`, read by rows: one ranged ``GET`` per read."""

    __slots__ = ("chunk", "remote", "shape")

    def __init__(self, chunk: RemoteChunk, remote: RemoteStore) -> None:
        self.chunk = chunk
        self.remote = remote
        self.shape = chunk.shape

    def rows(self, start: int, stop: int) -> np.ndarray:
        """A new ``(stop - start, *row)`` array of rows ``[start, stop)``."""
        chunk = self.chunk
        out = np.empty((stop - start, *chunk.shape[1:]), dtype=chunk.dtype)
        if stop > start:
            data = self.remote.read_range(
                chunk.key,
                chunk.offset + start * chunk.row_bytes,
                chunk.offset + stop * chunk.row_bytes,
            )
            out.reshape(-1).view(np.uint8)[:] = np.frombuffer(data, dtype=np.uint8)
        return out

    def close(self) -> None:
        """Nothing to close: no descriptor is held."""


class RemoteChunkDecoder(ChunkDecoder):
    """A :class:`ChunkDecoder` whose chunk files are objects of a remote store; a
    :class:`ZstdArray`'s ``directory`` is then its folder's key below the store's root."""

    def __init__(self, remote: RemoteStore) -> None:
        super().__init__()
        self.remote = remote

    def read_file(self, array: ZstdArray, key: str) -> memoryview:
        bound = array.chunk_rows * array.row_bytes
        try:
            data = self.remote.read(
                f"{array.directory}/{key}", max_bytes=bound + bound // 128 + _ZSTD_SLACK
            )
        except FileNotFoundError:
            raise array.damaged(f"chunk file {key} is missing") from None
        return memoryview(data)

    def _read_range(self, array: ZstdArray, index: int) -> memoryview:
        """Inner chunk ``index`` of a packed clip: one ranged ``GET`` of its shard's object."""
        if index >= len(array.ranges):
            raise array.damaged(f"chunk {index} is past its {len(array.ranges)} chunks")
        offset, size = array.ranges[index]
        key = key_of(self.remote.url, Path(array.file))
        try:
            return memoryview(self.remote.read_range(key, offset, offset + size))
        except FileNotFoundError:
            raise array.damaged("chunk file is missing") from None


class RemoteArrays:
    """How a :class:`trainer.data.reader.ClipReader` reads the clips of one remote store."""

    def __init__(self, store: str) -> None:
        self.remote = remote_store(store)
        # Its root metadata, once per process: the clip layout (flat or sharded) the keys
        # follow is learnt there (a worker started by spawn has not read it yet).
        open_store(self.remote.url)
        self.packed = is_packed(self.remote.url)

    @classmethod
    def of(cls, store: object) -> RemoteArrays | None:
        """The remote reads of ``store``, or None for a local store (chosen once)."""
        return cls(str(store)) if store_url(str(store)) is not None else None

    def open_raw(
        self, clip_id: str, name: str, shape: tuple[int, ...], dtype: np.dtype
    ) -> RemoteRows:
        check = RemoteChunk.check_packed if self.packed else RemoteChunk.check
        return RemoteRows(check(self.remote, clip_id, name, shape, dtype), self.remote)

    def reopen(self, chunk: RemoteChunk) -> RemoteRows:
        return RemoteRows(chunk, self.remote)

    def array_folder(self, clip_id: str, name: str) -> str:
        """The key of a clip's array folder (a :class:`ZstdArray`'s ``directory``)."""
        return "/".join((*clip_parts(self.remote.url, clip_id), name))

    def array_meta(self, clip_id: str, name: str) -> dict[str, object]:
        """The array's ``zarr.json`` (cached by :mod:`schemas.remote`)."""
        return self.remote.read_json(f"{self.array_folder(clip_id, name)}/zarr.json")

    def decoder(self) -> RemoteChunkDecoder:
        return RemoteChunkDecoder(self.remote)
