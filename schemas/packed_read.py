"""Reading a clip of a packed store (format 4): its rows in its shard's chunk files.

The manifest says where each committed clip lies (:func:`schemas.packed_index.locate`:
shard, first row, frames, arrays held); the recipe gives every array's row shape and
data type. A clip's rows of one array are one contiguous byte range of one chunk file,
so :func:`array_spec` describes it as the chunk file plus a byte offset, mapped
(``np.memmap``, zero copy) by :func:`schemas.readers.load_array`, and the trainer reads a
window's rows with one ``pread`` (:func:`open_packed_chunk`). Links below the store
root are refused as for the other layouts; a chunk file shorter than the clip's rows
is a damaged clip, named with its shard and the fix.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

import numpy as np
import zstandard

from schemas import packed_remote
from schemas.layout import LABELS_DIR, SHARDS_DIR, StoreError, check_name
from schemas.packed_index import (
    Place,
    chunk_key,
    damaged_packed_clip,
    is_sealed,
    journal_records,
    locate,
    shard_meta,
    store_root,
)
from schemas.packed_zstd import CHUNK_ROWS, decode, file_reader, padded, read_index
from schemas.safe_files import file_kind, is_inside
from schemas.store_files import SHARD_NAME_RE
from schemas.store_url import store_url
from schemas.stored_array import ArraySpec
from schemas.streams import LABEL_NAMES, rows_of

_OPEN_FLAGS = os.O_RDONLY | os.O_CLOEXEC | os.O_NONBLOCK
# Per resolved store root: each array's (row shape, little-endian dtype).
_ROWS: dict[str, dict[str, tuple[tuple[int, ...], np.dtype]]] = {}
_LAYOUTS: dict[str, str] = {}  # and its recipe's layout
# Per (resolved store root, shard, array): a sealed zstd shard array's index, as read.
_INDEXES: dict[tuple[str, str, str], np.ndarray] = {}
_MAX_INDEXES = 4096


def _rows(store: str | Path) -> dict[str, tuple[tuple[int, ...], np.dtype]]:
    root = store_root(store)
    rows = _ROWS.get(root)
    if rows is None:
        from schemas.lifecycle import open_store

        recipe = open_store(store).recipe
        rows = {p: (r, np.dtype(d).newbyteorder("<")) for p, (r, d) in rows_of(recipe).items()}
        _ROWS[root] = rows
        _LAYOUTS[root] = recipe.layout
    return rows


def _layout(store: str | Path) -> str:
    _rows(store)
    return _LAYOUTS[store_root(store)]


def place_of(store: str | Path, clip_id: str) -> Place:
    """Where committed clip ``clip_id`` lies; :class:`StoreError` when it is not committed."""
    check_name(clip_id, "clip id")
    place = locate(store, clip_id)
    if place is None:
        raise StoreError(f"clip {clip_id!r} is not in store {store}")
    # The manifest's word becomes a path and offsets: a name that is not a shard's (one
    # that would leave shards/), a negative row or no frames is refused before any use.
    if not SHARD_NAME_RE.match(place.shard) or place.row < 0 or place.frames < 1:
        raise StoreError(
            f"clip {clip_id!r} of store {store}: the manifest places it at shard "
            f"{place.shard!r}, row {place.row}, {place.frames} frames, which no shard holds "
            "(`mscct-pipeline repair` rebuilds the manifest from the shards)"
        )
    return place


def array_spec(store: str | Path, clip_id: str, name: str) -> ArraySpec:
    """The :class:`schemas.readers.ArraySpec` of array ``name`` of a packed clip: its
    chunk file and the byte offset of its first row. Raises :class:`StoreError` when the
    clip is not committed or does not hold ``name``."""
    place = place_of(store, clip_id)
    rows = _rows(store)
    if name not in rows or not place.holds(name):
        raise StoreError(f"clip {clip_id!r} of store {store} holds no {name}")
    row, dtype = rows[name]
    shape = (place.frames, *row)
    raw = _layout(store) == "raw"  # zstd: offset 0 marks the clip of a packed store
    return ArraySpec(
        path=Path(store) / SHARDS_DIR / place.shard / name, shape=shape, dtype=dtype, raw=raw,
        chunk_shape=shape, clip_id=clip_id, store=str(store),
        offset=place.row * int(np.prod(row, dtype=np.int64)) * dtype.itemsize if raw else 0,
        chunk_key=chunk_key(len(shape)),
    )  # fmt: skip


def spec_if_held(store: str | Path, clip_id: str, name: str) -> ArraySpec | None:
    """:func:`array_spec`, or None when the committed clip holds no ``name``."""
    return array_spec(store, clip_id, name) if place_of(store, clip_id).holds(name) else None


def label_specs(store: str | Path, clip_id: str) -> dict[str, ArraySpec] | None:
    """The specs of a packed clip's frame labels by name, or None when it has none."""
    place = place_of(store, clip_id)
    paths = [f"{LABELS_DIR}/{name}" for name in LABEL_NAMES]
    if not any(place.holds(p) for p in paths):
        return None
    if not all(place.holds(p) for p in paths):
        raise damaged_packed_clip(store, clip_id, "it holds some of its frame labels, not all")
    return {n: array_spec(store, clip_id, p) for n, p in zip(LABEL_NAMES, paths, strict=True)}


def chunk_ranges(store: str | Path, clip_id: str, name: str) -> list[tuple[int, int]]:
    """The byte ranges of a zstd packed clip's inner chunks of array ``name``, in order:
    from its sealed shard's index (read once per process), or its open shard's journal."""
    place = place_of(store, clip_id)
    spec = array_spec(store, clip_id, name)
    first, count = place.row // CHUNK_ROWS, padded(place.frames) // CHUNK_ROWS
    folder = Path(store) / SHARDS_DIR / place.shard
    remote = store_url(store) is not None
    if not remote and not is_sealed(folder):
        for record in journal_records(folder):
            if record["clip_id"] == clip_id and record.get("shard_row") == place.row:
                return [(int(o), int(n)) for o, n in record.get("chunks", {}).get(name, ())]
        raise damaged_packed_clip(store, clip_id, "its open shard's journal does not hold it")
    key = (store_root(store), place.shard, name)
    table = _INDEXES.get(key)
    if table is None:
        meta = (packed_remote.shard_meta if remote else shard_meta)(store, place.shard)
        total = int(meta.get("rows", 0)) // CHUNK_ROWS
        try:
            if remote:
                table = packed_remote.sealed_index(store, spec.chunk_file, total)
            else:
                table = read_index(spec.chunk_file, total)
        except (OSError, ValueError) as exc:
            raise damaged_packed_clip(
                store, clip_id, f"its {name} index is unreadable ({exc})"
            ) from None
        if len(_INDEXES) >= _MAX_INDEXES:
            _INDEXES.pop(next(iter(_INDEXES)))
        _INDEXES[key] = table
    chosen = table[first : first + count]
    if len(chosen) != count or (chosen == np.iinfo(np.uint64).max).any():
        raise damaged_packed_clip(store, clip_id, f"its {name} index lacks its chunks")
    return [(int(o), int(n)) for o, n in chosen]


def load_zstd(spec: ArraySpec) -> np.ndarray:
    """A zstd packed clip's whole array, decoded from its inner chunks."""
    name = spec.path.relative_to(Path(spec.store) / SHARDS_DIR).as_posix().split("/", 1)[1]
    ranges = chunk_ranges(spec.store, spec.clip_id, name)
    if store_url(spec.store) is not None:
        read = packed_remote.range_reader(spec.store, spec.chunk_file)
    else:
        read = file_reader(spec.chunk_file)
    try:
        return decode(read, ranges, spec.shape, spec.dtype)
    except (OSError, ValueError, zstandard.ZstdError) as exc:
        problem = f"its {name} cannot be decoded ({exc})"
        raise damaged_packed_clip(spec.store, spec.clip_id, problem) from None


def open_packed_chunk(
    store_root: str, clip_id: str, name: str, frames: int
) -> tuple[int, str, int]:
    """Open the chunk file holding array ``name`` of a packed clip read-only:
    ``(descriptor, path, byte offset of its first row)``, for readers that ``pread``.

    ``store_root`` is resolved already (``os.path.realpath``, once per reader). The
    clip must have ``frames`` frames (the manifest's count the caller read); the file
    must be a regular file reached without a link and hold the clip's rows.

    Raises:
        StoreError: the clip is not committed or holds no ``name``, the path runs
            through a link, or the file is not a regular file or too short.
    """
    spec = array_spec(store_root, clip_id, name)
    if spec.shape[0] != frames:
        problem = f"its shard holds {spec.shape[0]} frames, the manifest says {frames}"
        raise damaged_packed_clip(store_root, clip_id, problem)
    path = os.fspath(spec.chunk_file)
    try:
        fd = os.open(path, _OPEN_FLAGS)
    except FileNotFoundError:
        raise damaged_packed_clip(
            store_root, clip_id, f"its {name} chunk file is missing"
        ) from None
    try:
        opened = _opened_path(fd)
        if opened != path:  # one readlink when nothing on the way is a link
            if not is_inside(opened or os.path.realpath(path), store_root):
                raise StoreError(f"clip {clip_id!r} of store {store_root} links outside the store")
            _refuse_links(store_root, clip_id, path)
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            problem = f"its {name} chunk file is {file_kind(info.st_mode)}, not a regular file"
            raise damaged_packed_clip(store_root, clip_id, problem)
        offset = int(spec.offset or 0)
        needed = offset + int(np.prod(spec.shape, dtype=np.int64)) * spec.dtype.itemsize
        if info.st_size < needed:
            problem = (
                f"its {name} chunk file holds {info.st_size:,} bytes, its rows end at {needed:,}"
            )
            raise damaged_packed_clip(store_root, clip_id, problem)
    except BaseException:
        os.close(fd)
        raise
    return fd, path, offset


def _opened_path(fd: int) -> str | None:
    try:
        return os.readlink(f"/proc/self/fd/{fd}")
    except OSError:
        return None


def _refuse_links(store_root: str, clip_id: str, path: str) -> None:
    """Refuse a chunk path with a link below the store root (one ``lstat`` a component)."""
    relative = os.path.relpath(path, store_root)
    current = store_root
    for part in relative.split(os.sep):
        current = os.path.join(current, part)
        if stat.S_ISLNK(os.lstat(current).st_mode):
            raise StoreError(f"clip {clip_id!r} of store {store_root} links outside the store")
