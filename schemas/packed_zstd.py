"""zstd-compressed shard arrays (a packed store of the ``zstd`` layout).

Each array of such a shard is one Zarr array with the ``sharding_indexed`` codec, so
plain zarr reads it: its one chunk file holds inner chunks of :data:`CHUNK_ROWS` rows
(``bytes`` then ``zstd`` with its content checksum, as the ``zstd`` layout of format 3),
one after the other, and, once the shard is sealed, their index at its end (an
``(n, 2)`` little-endian uint64 table of byte offset and length; an inner chunk no clip
wrote, ``2**64 - 1`` twice). A clip starts at an inner chunk's first row and its last
chunk is padded with zeros, so a clip's chunks are its own and a window touches at most
two of them, each decoded once. While a shard is open its journal records each clip's
chunk byte ranges per array; sealed, its index does.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import zstandard

#: Rows per inner chunk: the format-3 zstd layout's chunk (``schemas.clips``), so the
#: trainer's window reads decode the same amounts.
CHUNK_ROWS = 50
_EMPTY = np.iinfo(np.uint64).max

Range = tuple[int, int]  # byte offset and length of one inner chunk in the chunk file


def padded(frames: int) -> int:
    """The rows a clip of ``frames`` frames takes in a zstd shard: whole inner chunks."""
    return math.ceil(frames / CHUNK_ROWS) * CHUNK_ROWS


def compress(data: np.ndarray) -> list[bytes]:
    """A clip's ``(T, *row)`` array as inner chunks: rows padded with zeros to whole
    chunks, each chunk's bytes one zstd frame with its content size and checksum."""
    rows = padded(data.shape[0])
    full = np.zeros((rows, *data.shape[1:]), dtype=data.dtype)
    full[: data.shape[0]] = data
    context = zstandard.ZstdCompressor(level=3, write_checksum=True, write_content_size=True)
    return [
        context.compress(full[i : i + CHUNK_ROWS].tobytes()) for i in range(0, rows, CHUNK_ROWS)
    ]


def index_table(chunks: int, ranges: dict[int, Range]) -> bytes:
    """The index appended to a sealed chunk file: ``chunks`` entries, ``ranges`` by chunk."""
    table = np.full((chunks, 2), _EMPTY, dtype="<u8")
    for index, (offset, length) in ranges.items():
        table[index] = (offset, length)
    return table.tobytes()


def read_index(path: Path, chunks: int) -> np.ndarray:
    """The ``(chunks, 2)`` index at the end of a sealed chunk file."""
    return index_at(os.stat(path).st_size, file_reader(path), chunks, str(path))


def index_at(end: int, read: Callable[[int, int], bytes], chunks: int, where: str) -> np.ndarray:
    """The ``(chunks, 2)`` index ending at byte ``end`` of a chunk file read by ``read``."""
    size = chunks * 16
    if end < size:
        raise ValueError(f"{where} holds {end} bytes, less than its index of {size}")
    data = read(end - size, size)
    if len(data) != size:
        raise ValueError(f"{where} ended early while its index was read")
    return np.frombuffer(data, dtype="<u8").reshape(chunks, 2)


def codecs(row: tuple[int, ...], dtype: np.dtype) -> list[dict[str, Any]]:
    """The Zarr v3 codec list of a zstd shard array of rows ``row``."""
    to_bytes: dict[str, Any] = {"name": "bytes"}
    if np.dtype(dtype).itemsize > 1:
        to_bytes["configuration"] = {"endian": "little"}
    inner = [to_bytes, {"name": "zstd", "configuration": {"level": 3, "checksum": True}}]
    return [
        {
            "name": "sharding_indexed",
            "configuration": {
                "chunk_shape": [CHUNK_ROWS, *row],
                "codecs": inner,
                "index_codecs": [{"name": "bytes", "configuration": {"endian": "little"}}],
                "index_location": "end",
            },
        }
    ]


def file_reader(path: Path) -> Callable[[int, int], bytes]:
    """Bytes ``[offset, offset + length)`` of a local file, for :func:`decode`."""

    def read(offset: int, length: int) -> bytes:
        with open(path, "rb") as handle:
            handle.seek(offset)
            return handle.read(length)

    return read


def decode(
    read: Callable[[int, int], bytes], ranges: list[Range], shape: tuple[int, ...], dtype: np.dtype
) -> np.ndarray:
    """A whole clip's ``shape`` array from its inner chunks at ``ranges``, each read with
    ``read(offset, length)`` (a local file's bytes, or a ranged request).

    Raises ``ValueError`` or ``zstandard.ZstdError`` for a chunk cut short, damaged or of
    another size than its rows."""
    row_bytes = math.prod(shape[1:]) * np.dtype(dtype).itemsize
    out = bytearray()
    context = zstandard.ZstdDecompressor()
    for offset, length in ranges:
        data = read(offset, length)
        if len(data) != length:
            raise ValueError(f"a chunk ends at {offset + len(data)}, not {offset + length}")
        chunk = context.decompress(data, max_output_size=CHUNK_ROWS * row_bytes)
        if len(chunk) != CHUNK_ROWS * row_bytes:
            raise ValueError(f"a chunk holds {len(chunk)} bytes, not {CHUNK_ROWS * row_bytes}")
        out += chunk
    flat = np.frombuffer(bytes(out), dtype=dtype)
    return flat[: math.prod(shape)].reshape(shape)
