"""Writing clips into shards (format 4): append, journal, seal; recover what a kill left.

One :class:`ShardWriter` per writing process and run (an ingest task's worker, a
``convert``): its shards carry its own random writer id, so no two writers ever share
a shard. Appending a clip (:meth:`ShardWriter.append`):

1. its rows are written at the shard's next row in each array's one chunk file
   (``pwrite``; an array the clip lacks keeps a hole there), and the files fsync'ed;
2. its manifest record, naming the shard and row, is appended to the shard's
   ``journal.jsonl`` and that is fsync'ed: the clip's bytes are durable;
3. the caller hands the record on to the manifest: the clip is committed once a
   manifest fragment names it (:mod:`schemas.manifest_store`).

A shard is sealed (:func:`seal_shard`) when its rows reach the store's target size
(``shard_target_bytes``) or when its writer's run ends: every chunk file cut to the
rows of the clips the journal holds whole, the arrays' ``zarr.json`` and the index
written, then the group's ``zarr.json`` (atomic, fsync'ed: the seal), then the
journal deleted. A writer killed at any point leaves an open shard whose torn tail
(rows or a journal line written after the last whole one) :func:`recover_shards`
cuts away when it seals it; clips the manifest never named are redone by the next
run, in a new shard.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import shutil
import uuid
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import numpy as np

from schemas import packed_zstd
from schemas.durable import fsync_path, write_json_atomic
from schemas.layout import LABELS_DIR, SHARDS_DIR
from schemas.packed_index import (
    ARRAY_BIT,
    INDEX_ARRAY,
    JOURNAL_FILE,
    SHARD_ARRAYS,
    SHARD_KEY,
    chunk_key,
    index_bytes,
    is_sealed,
    journal_records,
    list_shards,
    shard_folder,
    shard_meta,
    shard_name,
)
from schemas.recipe import Recipe
from schemas.streams import rows_of

_OPEN_FLAGS = os.O_RDWR | os.O_CREAT | os.O_CLOEXEC | os.O_NOFOLLOW


def _pwrite_all(fd: int, data: memoryview, offset: int) -> None:
    while len(data):
        written = os.pwrite(fd, data, offset)
        data, offset = data[written:], offset + written


def _row_bytes(recipe: Recipe) -> dict[str, tuple[tuple[int, ...], np.dtype, int]]:
    """Each shard array's row shape, little-endian dtype and bytes per row."""
    out = {}
    for path, (row, dtype) in rows_of(recipe).items():
        little = np.dtype(dtype).newbyteorder("<")
        out[path] = (row, little, int(np.prod(row, dtype=np.int64)) * little.itemsize)
    return out


class _OpenShard:
    """The shard a writer appends to: its folder, rows so far and open chunk files."""

    def __init__(self, store: Path, name: str, durable: bool) -> None:
        self.name = name
        self.folder = store / SHARDS_DIR / name
        self.rows = 0
        self.bytes = 0
        self.fds: dict[str, int] = {}
        self.ends: dict[str, int] = {}  # zstd: where each chunk file's next chunk goes
        made = _make_dirs(self.folder)
        self.journal = os.open(self.folder / JOURNAL_FILE, _OPEN_FLAGS | os.O_APPEND, 0o644)
        if durable:
            fsync_path(self.folder, directory=True)
            for folder in made:  # deepest first: each new folder's entry in its parent
                fsync_path(folder.parent, directory=True)

    def chunk_fd(self, path: str, ndim: int, durable: bool) -> int:
        fd = self.fds.get(path)
        if fd is None:
            array = self.folder / path
            made = _make_dirs(array)
            fd = os.open(array / chunk_key(ndim), _OPEN_FLAGS, 0o644)
            self.fds[path] = fd
            if durable:
                fsync_path(array, directory=True)
                for folder in made:
                    fsync_path(folder.parent, directory=True)
        return fd

    def append_chunks(self, path: str, fd: int, chunks: list[bytes]) -> list[tuple[int, int]]:
        """Write a clip's inner chunks at the end of array ``path``; their byte ranges."""
        offset = self.ends.get(path, 0)
        ranges = []
        for chunk in chunks:
            ranges.append((offset, len(chunk)))
            offset += len(chunk)
        _pwrite_all(fd, memoryview(b"".join(chunks)), ranges[0][0] if ranges else offset)
        self.ends[path] = offset
        self.bytes += offset - (ranges[0][0] if ranges else offset)
        return ranges

    def close(self) -> None:
        for fd in (*self.fds.values(), self.journal):
            with contextlib.suppress(OSError):
                os.close(fd)
        self.fds.clear()


def _make_dirs(folder: Path) -> list[Path]:
    """Make ``folder`` and its missing parents; return those made, deepest first."""
    missing = []
    current = folder
    while not current.is_dir():
        missing.append(current)
        current = current.parent
    for made in reversed(missing):
        made.mkdir(exist_ok=True)
    return missing


class ShardWriter:
    """Appends clips to shards of its own in ``store`` (see the module docstring).

    ``run`` is the run's number (:func:`schemas.packed_index.next_run`, taken by the
    process that holds the store's lock); shard names sort by it, so a clip redone by
    a later run has its latest copy in a later shard.
    """

    def __init__(
        self, store: str | Path, recipe: Recipe, run: int, target_bytes: int, *, durable: bool
    ) -> None:
        self.store = Path(store)
        self.recipe = recipe
        self.run = run
        self.target_bytes = max(1, int(target_bytes))
        self.durable = durable
        self.writer = uuid.uuid4().hex[:8]
        self.count = 0
        self.rows = _row_bytes(recipe)
        self.zstd = recipe.layout == "zstd"
        self.shard: _OpenShard | None = None

    def append(self, arrays: Mapping[str, np.ndarray], record: dict[str, Any]) -> dict[str, Any]:
        """Append one clip: ``arrays`` by path (``video``, ``audio``, ``labels/fake``, …),
        each ``(T, *row)`` as the recipe makes it (checked by the caller). Returns
        ``record`` with ``shard``, ``shard_row`` and ``shard_arrays`` set, durable in the
        shard's journal (with ``durable``) when this returns."""
        shard = self._locked_shard()
        try:
            out = self._write(shard, arrays, record)
        finally:
            fcntl.flock(shard.journal, fcntl.LOCK_UN)
        if shard.bytes >= self.target_bytes:
            self.close()
        return out

    def _write(
        self, shard: _OpenShard, arrays: Mapping[str, np.ndarray], record: dict[str, Any]
    ) -> dict[str, Any]:
        """:meth:`append`'s writes, with the shard's journal locked."""
        frames = int(arrays["video"].shape[0])
        mask = 0
        chunks: dict[str, list[tuple[int, int]]] = {}
        for path, data in arrays.items():
            row, dtype, row_bytes = self.rows[path]
            flat = np.ascontiguousarray(data, dtype=dtype)
            fd = shard.chunk_fd(path, 1 + len(row), self.durable)
            if self.zstd:  # whole inner chunks, one after the other
                chunks[path] = shard.append_chunks(path, fd, packed_zstd.compress(flat))
            else:
                # numpy's stubs do not declare the buffer protocol memoryview reads
                raw = memoryview(flat.reshape(-1).view(np.uint8))  # type: ignore[arg-type]
                _pwrite_all(fd, raw, shard.rows * row_bytes)
                shard.bytes += flat.nbytes
            mask |= ARRAY_BIT[path]
        if self.durable:
            for path in arrays:
                os.fsync(shard.fds[path])
        out = {**record, "shard": shard.name, "shard_row": shard.rows, "shard_arrays": mask}
        if chunks:
            out["chunks"] = chunks  # the journal's only: the sealed index holds them
        line = json.dumps(out, allow_nan=True, separators=(",", ":")) + "\n"
        os.write(shard.journal, line.encode())
        if self.durable:
            os.fsync(shard.journal)
        shard.rows += packed_zstd.padded(frames) if self.zstd else frames
        out.pop("chunks", None)
        return out

    def _locked_shard(self) -> _OpenShard:
        """The open shard, its journal locked by this writer (``flock``), not sealed: a
        shard sealed under us (its run ended, or a recovery sealed it) is left for a new
        one. The lock is held for one append only, so a seal never waits on an idle writer.

        A seal unlinks the journal, and a seal that finds no whole clip deletes the
        shard's folder: a journal with no links left means the shard is gone or sealed,
        whether or not its ``zarr.json`` is still there to say so."""
        while True:
            if self.shard is None:
                name = shard_name(self.run, self.writer, self.count)
                self.count += 1
                try:
                    self.shard = _OpenShard(self.store, name, self.durable)
                except FileNotFoundError:  # a recovery deleted the folder being made
                    continue
            fcntl.flock(self.shard.journal, fcntl.LOCK_EX)
            if os.fstat(self.shard.journal).st_nlink and not is_sealed(self.shard.folder):
                return self.shard
            self.shard.close()  # never append to a sealed or deleted shard
            self.shard = None

    def close(self) -> None:
        """Seal the open shard, if any."""
        shard, self.shard = self.shard, None
        if shard is not None:
            shard.close()
            seal_shard(self.store, shard.name, self.recipe, durable=self.durable)


def seal_shard(store: str | Path, name: str, recipe: Recipe, *, durable: bool = True) -> int:
    """Seal shard ``name``: keep the clips its journal holds whole, cut away the rest,
    write its arrays' metadata, its index, then its group ``zarr.json``. Returns the
    clips kept; a shard that keeps none is deleted. Idempotent. It holds the journal's
    lock throughout, so a writer still appending (a worker orphaned by a killed driver)
    either finishes its clip first or finds the shard sealed and starts another."""
    folder = shard_folder(store, name)
    with _journal_locked(folder):
        return _seal(store, name, recipe, durable=durable)


@contextlib.contextmanager
def _journal_locked(folder: Path) -> Iterator[None]:
    """The shard's journal locked (``flock``) while the block runs, if it has one."""
    try:
        fd = os.open(folder / JOURNAL_FILE, os.O_RDWR | os.O_CLOEXEC | os.O_NOFOLLOW)
    except FileNotFoundError:
        yield
        return
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)


def _seal(store: str | Path, name: str, recipe: Recipe, *, durable: bool) -> int:
    """:func:`seal_shard`'s work, with the journal locked."""
    folder = shard_folder(store, name)
    if is_sealed(folder):
        _tidy_sealed(store, name, recipe)
        return int(shard_meta(store, name).get("clips", 0))
    rows = _row_bytes(recipe)
    kept, end = _whole_records(folder, rows, zstd=recipe.layout == "zstd")
    if not kept:
        shutil.rmtree(folder, ignore_errors=True)
        if durable:
            fsync_path(folder.parent, directory=True)
        return 0
    held = {path for path in SHARD_ARRAYS if any(r["shard_arrays"] & ARRAY_BIT[path] for r in kept)}
    for path in SHARD_ARRAYS:
        if path not in held:
            shutil.rmtree(folder / path, ignore_errors=True)
        elif recipe.layout == "zstd":
            _seal_zstd_array(folder, path, rows[path], kept, end, durable=durable)
        else:
            _seal_raw_array(folder, path, rows[path], end, durable=durable)
    if any(p.startswith(f"{LABELS_DIR}/") for p in held):
        write_json_atomic(folder / LABELS_DIR / "zarr.json", _group({}), durable=durable)
    index = index_bytes(kept)
    (folder / INDEX_ARRAY).mkdir(exist_ok=True)
    with open(folder / INDEX_ARRAY / chunk_key(1), "wb") as handle:
        handle.write(index)
        if durable:
            os.fsync(handle.fileno())
    _array_json(folder / INDEX_ARRAY, (len(index),), np.dtype("uint8"), durable=durable)
    writer = name.split("-")[1]
    attributes = {SHARD_KEY: {"sealed": True, "clips": len(kept), "rows": end, "writer": writer}}
    write_json_atomic(folder / "zarr.json", _group(attributes), durable=durable)  # the seal
    (folder / JOURNAL_FILE).unlink(missing_ok=True)
    if durable:
        fsync_path(folder, directory=True)
    return len(kept)


def _seal_raw_array(
    folder: Path, path: str, rows: tuple[tuple[int, ...], np.dtype, int], end: int, *, durable: bool
) -> None:
    """Cut a raw shard array's chunk to ``end`` rows; write its metadata."""
    row, dtype, row_bytes = rows
    with open(folder / path / chunk_key(1 + len(row)), "r+b") as handle:
        handle.truncate(end * row_bytes)
        if durable:
            os.fsync(handle.fileno())
    _array_json(folder / path, (end, *row), dtype, durable=durable)


def _seal_zstd_array(
    folder: Path,
    path: str,
    rows: tuple[tuple[int, ...], np.dtype, int],
    kept: list[dict[str, Any]],
    end: int,
    *,
    durable: bool,
) -> None:
    """Cut a zstd shard array's chunk file after the kept clips' inner chunks and append
    the index of them (``schemas.packed_zstd``); write its metadata."""
    row, dtype, _ = rows
    ranges: dict[int, tuple[int, int]] = {}
    for record in kept:
        first = record["shard_row"] // packed_zstd.CHUNK_ROWS
        for i, (offset, length) in enumerate(record.get("chunks", {}).get(path, ())):
            ranges[first + i] = (int(offset), int(length))
    data_end = max((o + n for o, n in ranges.values()), default=0)
    with open(folder / path / chunk_key(1 + len(row)), "r+b") as handle:
        handle.truncate(data_end)
        handle.seek(data_end)
        handle.write(packed_zstd.index_table(end // packed_zstd.CHUNK_ROWS, ranges))
        if durable:
            os.fsync(handle.fileno())
    codecs = packed_zstd.codecs(row, dtype)
    _array_json(folder / path, (end, *row), dtype, durable=durable, codecs=codecs)


def _whole_records(
    folder: Path, rows: Mapping[str, tuple[tuple[int, ...], np.dtype, int]], *, zstd: bool
) -> tuple[list[dict[str, Any]], int]:
    """The journal's records, up to the first whose rows are not all in the chunk files
    (a host crash may lose what was not fsync'ed), and the row after the last kept. In
    a zstd shard a clip takes whole inner chunks, at the byte ranges its record names."""
    sizes: dict[str, int] = {}
    for path, (row, _, _) in rows.items():
        with contextlib.suppress(FileNotFoundError):
            sizes[path] = os.stat(folder / path / chunk_key(1 + len(row))).st_size
    kept: list[dict[str, Any]] = []
    end = 0
    for record in journal_records(folder):
        start, frames = record.get("shard_row"), record.get("num_frames")
        mask = record.get("shard_arrays")
        if start != end or not isinstance(frames, int) or not isinstance(mask, int):
            break
        if zstd:
            stop = start + packed_zstd.padded(frames)
            ends = {p: max((o + n for o, n in r), default=0) for p, r in _chunks(record).items()}
        else:
            stop = start + frames
            ends = {p: stop * rows[p][2] for p in ARRAY_BIT}
        if any(mask & bit and sizes.get(p, 0) < ends.get(p, 1) for p, bit in ARRAY_BIT.items()):
            break
        kept.append(record)
        end = stop
    return kept, end


def _chunks(record: dict[str, Any]) -> dict[str, list[tuple[int, int]]]:
    """A zstd shard's journal record's inner chunk ranges by array."""
    chunks = record.get("chunks")
    return chunks if isinstance(chunks, dict) else {}


def _tidy_sealed(store: str | Path, name: str, recipe: Recipe) -> None:
    """A sealed shard that a late writer touched again: cut its chunks back to the rows
    it was sealed with and drop a journal written after the seal."""
    folder = shard_folder(store, name)
    if not (folder / JOURNAL_FILE).exists():
        return
    if recipe.layout == "zstd":  # its writer checks the seal before each append
        (folder / JOURNAL_FILE).unlink(missing_ok=True)
        return
    end = int(shard_meta(store, name).get("rows", 0))
    for path, (row, _, row_bytes) in _row_bytes(recipe).items():
        chunk = folder / path / chunk_key(1 + len(row))
        with contextlib.suppress(FileNotFoundError), open(chunk, "r+b") as handle:
            if os.fstat(handle.fileno()).st_size > end * row_bytes:
                handle.truncate(end * row_bytes)
    (folder / JOURNAL_FILE).unlink(missing_ok=True)


def recover_shards(store: str | Path, recipe: Recipe, *, durable: bool = True) -> int:
    """Seal every shard left open (by a killed writer, or by workers whose run ended);
    returns how many were open. Call only while holding the store's lock, with no
    writer of the store running."""
    opened = 0
    for name in list_shards(store):
        folder = shard_folder(store, name)
        opened += not is_sealed(folder)
        seal_shard(store, name, recipe, durable=durable)
    return opened


def _group(attributes: dict[str, Any]) -> dict[str, Any]:
    return {"zarr_format": 3, "node_type": "group", "attributes": attributes}


def _array_json(
    folder: Path,
    shape: tuple[int, ...],
    dtype: np.dtype,
    *,
    durable: bool,
    codecs: list[dict[str, Any]] | None = None,
) -> None:
    """Zarr v3 metadata of a shard array: one uncompressed chunk of its whole shape, so
    plain zarr reads it and the chunk file is the C-ordered array."""
    meta = {
        "zarr_format": 3,
        "node_type": "array",
        "shape": list(shape),
        "data_type": np.dtype(dtype).name,
        "chunk_grid": {"name": "regular", "configuration": {"chunk_shape": list(shape)}},
        "chunk_key_encoding": {"name": "default", "configuration": {"separator": "."}},
        "fill_value": 0,
        "codecs": [{"name": "bytes", "configuration": {"endian": "little"}}],
        "attributes": {},
        "storage_transformers": [],
    }
    if np.dtype(dtype).itemsize == 1:
        meta["codecs"] = [{"name": "bytes"}]
    if codecs is not None:
        meta["codecs"] = codecs
    write_json_atomic(folder / "zarr.json", meta, durable=durable)
