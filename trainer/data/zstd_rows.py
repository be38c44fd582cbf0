"""Row ranges of zstd-compressed stored tensors, decoded here rather than by zarr.

The ``zstd`` layout (``schemas.clips``) writes each ``(T, ...)`` array as chunk files
of whole rows along ``T``, each one zstd frame of the rows' little-endian bytes. A
training window needs a few rows of one or two chunks, so decoding it by hand is
short: for each chunk the window touches, read the file, skip (decode and drop) the
rows before the window, and decode the window's rows straight into the output array.
zarr would decode every touched chunk whole into a buffer of its own and copy from
there; this does one decompression per touched chunk and copies nothing itself. A
process keeps one decompression context and three growing buffers (the largest chunk
file read, the rows skipped before a window, at most a chunk's worth, 7.4 MB for
224-pixel crops, and the rows after it).

Chunks written since stores carry zstd's content checksum (``schemas.clips``: the
xxhash64 of the chunk's decoded bytes, in the frame) are decoded to the frame's end,
the rows after the window included, because zstd checks the checksum there: a flipped
byte anywhere in the chunk is then an error, never other values. Chunks of stores
written before have no checksum; for them only the frame's structure is checked (below),
and a flipped byte inside a block can decode to other values unnoticed.

Only that exact codec chain is decoded here (:meth:`ZstdArray.from_metadata`: a
regular grid chunked along ``T`` alone, the default chunk key encoding, ``bytes`` then
``zstd`` and nothing else); an array of any other configuration gets None and is read
through zarr, so a store of any zarr configuration still reads.

Damage is never read as data: a missing chunk file, a frame cut short or followed by
stray bytes (checked from its block headers, a few microseconds), a frame whose
declared size disagrees with the metadata's chunk shape, a checksum that does not
match, or a decode error is a :class:`schemas.StoreError` naming the clip.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass
from typing import Any

import numpy as np
import zstandard

import schemas
from trainer.data.damage import damaged

# O_NOFOLLOW: a chunk file that is a link is refused, as the raw layout's are.
_OPEN_FLAGS = os.O_RDONLY | os.O_CLOEXEC | os.O_NOFOLLOW
_NUMERIC_KINDS = "biuf"  # bool, signed, unsigned, float: what a little-endian byte copy holds


def frame_length(data: memoryview) -> int:
    """The length in bytes of the zstd frame at the start of ``data``, from its header
    and block headers (RFC 8878, section 3.1.1), without decoding it.

    Raises:
        ValueError: ``data`` ends before the frame does, or a block is of the reserved type.
        zstandard.ZstdError: ``data`` does not start with a zstd frame header.
    """
    position = zstandard.frame_header_size(data)
    end = len(data)
    while True:
        if position + 3 > end:
            raise ValueError("it ends inside a block header")
        header = data[position] | data[position + 1] << 8 | data[position + 2] << 16
        kind = (header >> 1) & 3
        if kind == 3:
            raise ValueError("it holds a block of the reserved type")
        position += 3 + (1 if kind == 1 else header >> 3)  # an RLE block stores one byte
        if header & 1:  # Last_Block
            break
    position += 4 if has_checksum(data) else 0
    if position > end:
        raise ValueError("it ends inside its last block")
    return position


def has_checksum(data: memoryview) -> bool:
    """Whether the zstd frame at the start of ``data`` (its header already read by
    :func:`frame_length`) carries a content checksum: the frame header descriptor's
    ``Content_Checksum_flag``."""
    return bool(data[4] & 0x04)


@dataclass(frozen=True, slots=True)
class ZstdArray:
    """A zstd-compressed ``(T, *row)`` tensor of one clip that :class:`ZstdRows` can decode:
    what its ``zarr.json`` says, kept so that later reads need no metadata."""

    directory: str  # the array's folder (``schemas.array_spec(...).path``)
    shape: tuple[int, ...]
    dtype: np.dtype
    chunk_rows: int  # rows per chunk file; the last chunk is stored padded to it
    row_bytes: int
    separator: str  # of the chunk keys: "c/<i>/0/0/0" or "c.<i>.0.0.0"
    name: str  # "video", "mouth" or "audio", for errors
    clip_id: str
    store: str
    # A clip of a zstd packed store: the shard's chunk file and the byte range of each of
    # the clip's inner chunks in it (``schemas.chunk_ranges``); empty: a file per chunk.
    file: str = ""
    ranges: tuple[tuple[int, int], ...] = ()

    @classmethod
    def packed(cls, spec: schemas.ArraySpec, name: str) -> ZstdArray:
        """A zstd packed store's clip array (``schemas.array_spec`` of it): its chunks are
        byte ranges of its shard's chunk file, of ``schemas.packed_zstd.CHUNK_ROWS`` rows."""
        from schemas.packed_zstd import CHUNK_ROWS

        ranges = schemas.chunk_ranges(spec.store, spec.clip_id, name)
        return cls(
            directory=str(spec.path), shape=spec.shape, dtype=spec.dtype, chunk_rows=CHUNK_ROWS,
            row_bytes=math.prod(spec.shape[1:]) * spec.dtype.itemsize, separator=".",
            name=name, clip_id=spec.clip_id, store=spec.store, file=str(spec.chunk_file),
            ranges=tuple(ranges),
        )  # fmt: skip

    @classmethod
    def from_metadata(
        cls, meta: Any, directory: str, *, name: str, clip_id: str, store: str
    ) -> ZstdArray | None:
        """The array described by the Zarr v3 array metadata ``meta``, or None when it is
        not chunked along ``T`` alone with exactly the ``bytes`` and ``zstd`` codecs.

        None means "read it through zarr"; malformed metadata raises the same
        ``KeyError``/``TypeError``/``ValueError`` as ``schemas.array_spec`` does.
        """
        if not isinstance(meta, dict) or meta.get("zarr_format") != 3:
            return None
        shape = tuple(int(n) for n in meta["shape"])
        dtype = np.dtype(meta["data_type"]) if isinstance(meta["data_type"], str) else None
        grid, keys = meta.get("chunk_grid") or {}, meta.get("chunk_key_encoding") or {}
        chunk_shape = tuple(
            int(n) for n in (grid.get("configuration") or {}).get("chunk_shape", ())
        )
        separator = (keys.get("configuration") or {}).get("separator", "/")
        if (
            dtype is None
            or dtype.kind not in _NUMERIC_KINDS
            or not shape
            or grid.get("name") != "regular"
            or len(chunk_shape) != len(shape)
            or chunk_shape[0] < 1
            or chunk_shape[1:] != shape[1:]
            or keys.get("name") != "default"
            or separator not in ("/", ".")
            or meta.get("storage_transformers")
            or not _plain_zstd(meta.get("codecs"), dtype)
        ):
            return None
        return cls(
            directory=directory,
            shape=shape,
            dtype=dtype.newbyteorder("<"),
            chunk_rows=chunk_shape[0],
            row_bytes=math.prod(shape[1:]) * dtype.itemsize,
            separator=separator,
            name=name,
            clip_id=clip_id,
            store=store,
        )

    def chunk_key(self, index: int) -> str:
        """The key of chunk ``index`` along ``T`` (Zarr v3 default encoding)."""
        return self.separator.join(("c", str(index), *("0" * (len(self.shape) - 1))))

    def damaged(self, problem: str) -> schemas.StoreError:
        return damaged(self.store, self.clip_id, f"its {self.name} {problem}")


def _plain_zstd(codecs: Any, dtype: np.dtype) -> bool:
    """Whether ``codecs`` is exactly ``bytes`` (little-endian, or any order for one-byte
    items) followed by ``zstd``: no filter, shuffle, transpose, checksum codec or shard."""
    if not isinstance(codecs, list) or len(codecs) != 2:
        return False
    to_bytes, compressor = codecs
    if not isinstance(to_bytes, dict) or not isinstance(compressor, dict):
        return False
    endian = (to_bytes.get("configuration") or {}).get("endian", "little")
    return (
        to_bytes.get("name") == "bytes"
        and (endian == "little" or dtype.itemsize == 1)
        and compressor.get("name") == "zstd"
    )


class ChunkDecoder:
    """One process's zstd decompression context and its buffer for chunk files.

    ``decompressions`` counts the chunks decoded since it was made (one per chunk a
    read touches), for the benchmark and the tests.
    """

    def __init__(self) -> None:
        self.context = zstandard.ZstdDecompressor()
        self.buffer = bytearray(1 << 16)  # grown to the largest chunk file read
        self.skipped = bytearray(0)  # where skipped rows are decoded to; grown likewise
        self.rest = bytearray(0)  # where the rows after a window are decoded to, likewise
        self.decompressions = 0

    def read_file(self, array: ZstdArray, key: str) -> memoryview:
        """The bytes of chunk file ``key`` of ``array``, in this decoder's buffer (valid
        until the next read)."""
        try:
            fd = os.open(f"{array.directory}/{key}", _OPEN_FLAGS)
        except FileNotFoundError:
            raise array.damaged(f"chunk file {key} is missing") from None
        except OSError as exc:
            raise array.damaged(f"chunk file {key} cannot be opened ({exc.strerror})") from None
        try:
            size = os.fstat(fd).st_size
            if size > len(self.buffer):
                self.buffer = bytearray(size)
            view = memoryview(self.buffer)[:size]
            got = os.preadv(fd, [view], 0)
        finally:
            os.close(fd)
        if got != size:
            raise array.damaged(f"chunk file {key} shrank while it was read")
        return view

    def _read_range(self, array: ZstdArray, index: int) -> memoryview:
        """Inner chunk ``index`` of a packed clip, read from its shard's chunk file."""
        if index >= len(array.ranges):
            raise array.damaged(f"chunk {index} is past its {len(array.ranges)} chunks")
        offset, size = array.ranges[index]
        try:
            fd = os.open(array.file, _OPEN_FLAGS)
        except OSError as exc:
            raise array.damaged(f"chunk file cannot be opened ({exc.strerror})") from None
        try:
            if size > len(self.buffer):
                self.buffer = bytearray(size)
            view = memoryview(self.buffer)[:size]
            got = os.preadv(fd, [view], offset)
        finally:
            os.close(fd)
        if got != size:
            raise array.damaged(f"chunk {index} ends early: the chunk file is cut short")
        return view

    def decode_into(self, array: ZstdArray, index: int, skip: int, out: memoryview) -> None:
        """Decode rows ``[skip, skip + len(out) / row_bytes)`` of chunk ``index`` into ``out``.

        Raises:
            schemas.StoreError: the chunk is missing, cut short, padded or undecodable.
        """
        key = array.chunk_key(index)
        # A packed clip's chunk is a byte range of its shard's chunk file.
        data = self._read_range(array, index) if array.ranges else self.read_file(array, key)
        try:
            length = frame_length(data)
            declared = zstandard.frame_content_size(data)
        except (ValueError, zstandard.ZstdError) as exc:
            raise array.damaged(f"chunk {key} cannot be decoded ({exc})") from None
        if length != len(data):
            raise array.damaged(
                f"chunk {key} cannot be decoded (the file holds {len(data)} bytes, "
                f"its zstd frame {length})"
            )
        expected = array.chunk_rows * array.row_bytes
        if declared not in (expected, zstandard.CONTENTSIZE_UNKNOWN):
            raise array.damaged(
                f"chunk {key} cannot be decoded (it holds {declared} bytes, the metadata's "
                f"chunk of {array.chunk_rows} rows {expected})"
            )
        self.decompressions += 1
        try:
            reader = self.context.stream_reader(data)
            if skip:  # decoded and dropped (faster than the reader's own seek)
                if len(self.skipped) < skip * array.row_bytes:
                    self.skipped = bytearray(skip * array.row_bytes)
                _fill(reader, memoryview(self.skipped)[: skip * array.row_bytes])
            _fill(reader, out)
            if has_checksum(data):  # zstd checks it at the frame's end: decode up to there
                rest = expected - skip * array.row_bytes - len(out)
                if len(self.rest) < rest:
                    self.rest = bytearray(rest)
                _fill(reader, memoryview(self.rest)[:rest])
                if reader.read(1):
                    raise ValueError("the frame holds more bytes than its chunk")
        except (ValueError, OSError, zstandard.ZstdError) as exc:
            raise array.damaged(f"chunk {key} cannot be decoded ({exc})") from None


def _fill(reader: Any, out: memoryview) -> None:
    """Decode from ``reader`` until ``out`` is full."""
    filled = 0
    while filled < len(out):
        got = reader.readinto(out[filled:])
        if got == 0:
            raise ValueError("the frame ends before the rows asked for")
        filled += got


class ZstdRows:
    """A :class:`ZstdArray`, read by rows: each read decodes each chunk it touches once.

    Holds no descriptor: chunk files are opened, read and closed per read.
    """

    __slots__ = ("array", "decoder", "shape")

    def __init__(self, array: ZstdArray, decoder: ChunkDecoder) -> None:
        self.array = array
        self.decoder = decoder
        self.shape = array.shape

    def rows(self, start: int, stop: int) -> np.ndarray:
        """A new ``(stop - start, *row)`` array of rows ``[start, stop)``, decoded."""
        array = self.array
        if not 0 <= start <= stop <= array.shape[0]:
            raise ValueError(f"rows [{start}, {stop}) outside {array.name} of {array.shape[0]}")
        out = np.empty((stop - start, *array.shape[1:]), dtype=array.dtype)
        flat = out.reshape(-1).view(np.uint8).data  # 1-D bytes of the new array
        step, row_bytes = array.chunk_rows, array.row_bytes
        for index in range(start // step, (stop - 1) // step + 1 if stop > start else 0):
            first, last = max(start, index * step), min(stop, (index + 1) * step)
            at = (first - start) * row_bytes
            target = flat[at : at + (last - first) * row_bytes]
            self.decoder.decode_into(array, index, first - index * step, target)
        return out
