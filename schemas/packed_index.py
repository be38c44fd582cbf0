"""A packed store's shards (format 4): their names, what each holds, where a clip lies.

Layout of a packed store (``"clip_layout": "packed"`` in the root metadata)::

    shards/<name>/         one Zarr v3 group per shard, written by one writer only;
                           <name> = r<run:06d>-<writer:8 hex>-<k:05d>
      zarr.json            written last, when the shard is sealed:
                           attributes.mscct_shard = {sealed, clips, rows, writer}
      <array>/             one array per stored stream (video, audio, face_boxes, landmarks,
                           mouth, face_valid, pose; labels/fake, labels/audio_fake, ...)
        zarr.json          written when sealed: shape (R, *row), one chunk of that shape
        c.0.0…             the chunk: every clip's rows, appended; clip i's rows are
                           [shard_row, shard_row + num_frames), contiguous
      index/               written when sealed: a (n,) uint8 array whose chunk file is a
        zarr.json, c.0     Parquet table, one manifest row per clip the shard holds
      journal.jsonl        while the shard is open: one JSON line per clip appended, each
                           written and fsync'ed after the clip's rows are

A shard's arrays share the row axis: a clip that lacks an array (no frame labels, no
``face_valid``) leaves a hole of zeros there, and its manifest row's ``shard_arrays``
(a bit per :data:`SHARD_ARRAYS` entry) says which it holds. Shards are never
rewritten: a clip redone later lands in a newer shard (a higher run number), and the
manifest names the copy in use; :func:`packed_records` takes a clip's latest copy.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq

from schemas.layout import (
    MANIFEST_FILE,
    SHARDS_DIR,
    StoreError,
    damaged_shard_clip,
    read_json,
)
from schemas.parquet_read import read_parquet
from schemas.safe_files import RefusedFile, open_inside
from schemas.store_files import INDEX_ARRAY, JOURNAL_FILE, SHARD_NAME_RE
from schemas.store_url import store_url
from schemas.streams import CLIP_ARRAY_TABLE

#: The arrays a shard can hold, in the order of the bits of ``shard_arrays`` (bit i =
#: entry i). Fixed: a new stream is appended, never inserted, so stored masks keep
#: their meaning (``tests/test_packed_store.py`` checks that the stream table's
#: arrays are all here).
SHARD_ARRAYS: tuple[str, ...] = (
    "video",
    "audio",
    "face_boxes",
    "landmarks",
    "mouth",
    "face_valid",
    "pose",
    "labels/fake",
    "labels/audio_fake",
    "labels/video_fake",
)
ARRAY_BIT: dict[str, int] = {path: 1 << i for i, path in enumerate(SHARD_ARRAYS)}
assert {a.path for a in CLIP_ARRAY_TABLE} <= set(SHARD_ARRAYS), "a stream has no shard bit"

#: The group attribute of a sealed shard.
SHARD_KEY = "mscct_shard"


def shard_name(run: int, writer: str, k: int) -> str:
    """The folder name of a writer's ``k``-th shard in ingest (or convert) run ``run``."""
    return f"r{run:06d}-{writer}-{k:05d}"


def chunk_key(ndim: int) -> str:
    """The key of an ``ndim``-dimensional shard array's one chunk: ``c.0.0…``."""
    return "c." + ".".join("0" * ndim)


def shard_folder(store: str | Path, name: str) -> Path:
    if not SHARD_NAME_RE.match(name):
        raise StoreError(f"store {store}: {name!r} is not a shard name")
    return Path(store) / SHARDS_DIR / name


def is_sealed(folder: Path) -> bool:
    return (folder / "zarr.json").is_file()


def list_shards(store: str | Path) -> list[str]:
    """The names of the store's shards, oldest run first; a link among them is refused."""
    root = Path(store) / SHARDS_DIR
    try:
        listing = os.scandir(root)
    except FileNotFoundError:
        return []
    names = []
    with listing:
        for entry in listing:
            if not SHARD_NAME_RE.match(entry.name):
                continue
            if entry.is_symlink() or not entry.is_dir(follow_symlinks=False):
                raise StoreError(
                    f"{entry.path} is not a folder of the store's own; refused (remove it)"
                )
            names.append(entry.name)
    return sorted(names)


def next_run(store: str | Path) -> int:
    """A run number above every shard's: a new writer's shards sort after all others."""
    runs = [int(m.group(1)) for n in list_shards(store) if (m := SHARD_NAME_RE.match(n))]
    return max(runs, default=0) + 1


def journal_records(folder: Path) -> list[dict[str, Any]]:
    """The records an open shard's journal holds, up to its first incomplete line (a
    writer killed mid-line leaves one)."""
    try:
        data = (folder / JOURNAL_FILE).read_bytes()
    except FileNotFoundError:
        return []
    records = []
    for line in data.split(b"\n")[:-1]:  # the part after the last newline is torn
        try:
            record = json.loads(line)
        except ValueError:
            break
        if not isinstance(record, dict) or not isinstance(record.get("clip_id"), str):
            break
        records.append(record)
    return records


def index_records(store: str | Path, folder: Path) -> list[dict[str, Any]]:
    """The manifest rows a sealed shard's index holds, in row order."""
    try:
        with open_inside(folder / INDEX_ARRAY / chunk_key(1), store, what="shard index") as f:
            data = f.read()
        rows: list[dict[str, Any]] = read_parquet(io.BytesIO(data)).to_pylist()
    except FileNotFoundError:
        raise StoreError(f"shard {folder} is sealed but has no index; remove it") from None
    except (RefusedFile, OSError, ValueError) as exc:
        raise StoreError(f"cannot read the index of shard {folder}: {exc}") from None
    return rows


def shard_records(store: str | Path, name: str) -> list[dict[str, Any]]:
    """What shard ``name`` holds: its index when sealed, else its journal."""
    folder = shard_folder(store, name)
    return index_records(store, folder) if is_sealed(folder) else journal_records(folder)


def shard_meta(store: str | Path, name: str) -> dict[str, Any]:
    """A sealed shard's ``attributes.mscct_shard``."""
    meta = read_json(shard_folder(store, name) / "zarr.json", store)
    found = (meta.get("attributes") or {}).get(SHARD_KEY)
    if not isinstance(found, dict):
        raise StoreError(f"shard {name} of store {store} has no {SHARD_KEY} attributes")
    return found


def packed_records(store: str | Path) -> list[dict[str, Any]]:
    """Every clip's latest copy across the shards (later run, then later row, wins),
    as its manifest row naming that copy, sorted by clip id: what ``repair`` rebuilds."""
    latest: dict[str, dict[str, Any]] = {}
    for name in list_shards(store):
        for record in shard_records(store, name):
            latest[record["clip_id"]] = record
    return [latest[k] for k in sorted(latest)]


@dataclass(frozen=True, slots=True)
class Place:
    """Where a committed clip lies in a packed store."""

    shard: str
    row: int
    frames: int
    arrays: int  # bits of SHARD_ARRAYS

    def holds(self, path: str) -> bool:
        return bool(self.arrays & ARRAY_BIT[path])


# Per resolved store root: (the manifest's identity when read, clip id -> Place). A
# reader looks clips up per training item: a dict look-up once the map is built.
_PLACES: dict[str, tuple[Any, dict[str, Place]]] = {}


def store_root(store: str | Path) -> str:
    """The key of a store in this process's caches: its URL, or its resolved path."""
    url = store_url(store)
    return url if url is not None else os.path.realpath(os.fspath(store))


def _manifest_identity(root: str) -> Any:
    """What changes when the manifest does: the base's inode, size and mtime, and the
    names of the fragments."""
    try:
        info = os.stat(os.path.join(root, MANIFEST_FILE))
        base: Any = (info.st_ino, info.st_size, info.st_mtime_ns)
    except FileNotFoundError:
        base = None
    with contextlib.suppress(FileNotFoundError):
        return base, tuple(sorted(os.listdir(os.path.join(root, "manifest.d"))))
    return base, ()


def _build_places(store: str | Path) -> dict[str, Place]:
    from schemas.table_io import read_manifest  # imports this package's readers

    try:
        table = read_manifest(store)
    except StoreError:
        return {}
    columns = ["clip_id", "status", "shard", "shard_row", "num_frames", "shard_arrays"]
    places = {}
    for batch in table.select(columns).to_batches(max_chunksize=65536):
        for clip_id, status, shard, row, frames, arrays in zip(
            *(batch.column(c).to_pylist() for c in columns), strict=True
        ):
            if status == "ok" and shard is not None and row is not None:
                # One string per shard, not per clip: about 210 bytes a clip in all.
                places[clip_id] = Place(sys.intern(shard), int(row), int(frames), int(arrays or 0))
    return places


def locate(store: str | Path, clip_id: str) -> Place | None:
    """Where the manifest says committed clip ``clip_id`` lies; None when it names no
    such clip. The manifest is read once per process and store, and again when a clip
    is not found and the manifest changed since."""
    root = store_root(store)
    cached = _PLACES.get(root)
    if cached is not None:
        place = cached[1].get(clip_id)
        if place is not None:
            return place
    # A store in a bucket is read as it is (it must not change while read): once.
    identity = None if store_url(store) is not None else _manifest_identity(root)
    if cached is None or cached[0] != identity:
        cached = (identity, _build_places(root))
        _PLACES[root] = cached
    return cached[1].get(clip_id)


def forget_places(store: str | Path) -> None:
    """Drop the cached clip places of ``store`` (its manifest was rewritten)."""
    _PLACES.pop(store_root(store), None)


def damaged_packed_clip(store: str | Path, clip_id: str, problem: str) -> StoreError:
    """The damaged-clip error of a packed store's clip, naming its shard's folder."""
    shard = "its shard (the manifest's shard column)"
    with contextlib.suppress(StoreError, OSError):
        place = locate(store, clip_id)
        if place is not None:
            shard = str(Path(store) / SHARDS_DIR / place.shard)
    return damaged_shard_clip(store, clip_id, shard, problem)


def packed_record(store: str | Path, clip_id: str) -> dict[str, Any] | None:
    """The record committed for ``clip_id`` in the shard the manifest names, or None."""
    place = locate(store, clip_id)
    if place is None:
        return None
    for record in shard_records(store, place.shard):
        if record["clip_id"] == clip_id and record.get("shard_row") == place.row:
            return record
    return None


def index_bytes(records: list[dict[str, Any]]) -> bytes:
    """A sealed shard's index: its records as one Parquet table, in bytes."""
    from schemas.tables import MANIFEST_SCHEMA, rows_to_table

    buffer = io.BytesIO()
    pq.write_table(rows_to_table(records, MANIFEST_SCHEMA), buffer)
    return buffer.getvalue()
