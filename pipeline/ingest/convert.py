"""``mscct-pipeline convert --to packed``: rewrite a store's clips into shards (format 4).

The clips are read through ``schemas`` (any readable format) and appended, in clip-id
order, to shards of one writer (:class:`schemas.packed_write.ShardWriter`); every few
hundred clips their rows, naming shard and rows, go to the target's manifest as one
fragment. A kill loses at most the clips after the last fragment: a rerun seals the
shards left open (cutting their torn tails), skips every clip the target's manifest
already places in a shard, and goes on.

With ``--out`` the packed store is a new one beside the old, which is only read (its
failed rows and splits are copied when the clips are done). Without it the store is
converted in place: the shards are written into it while it is still of its old format
(its readers see the clip folders, and the manifest rows gain their shard), then its
root metadata becomes format 4 (one atomic write) and ``clips/`` is deleted; a rerun
after a kill at any step finishes the job. In place needs a manifest of fragments
(format 3); a format 1 or 2 store is converted with ``--out``.
"""

from __future__ import annotations

import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

import schemas
from schemas import manifest_store as ms
from schemas.durable import write_json_atomic
from schemas.layout import (
    CLIPS_DIR,
    DEFAULT_SHARD_TARGET,
    LABELS_DIR,
    SHARD_TARGET_KEY,
    SPLITS_DIR,
    forget_layout,
)
from schemas.lifecycle import packed_meta
from schemas.lock import store_lock
from schemas.packed_index import (
    SHARD_ARRAYS,
    forget_places,
    list_shards,
    next_run,
)
from schemas.packed_write import ShardWriter, recover_shards
from schemas.streams import LABEL_NAMES

#: Clips per manifest fragment written while converting: what a kill can cost again.
FRAGMENT_CLIPS = 256


@dataclass
class ConvertResult:
    converted: int  # clips written into shards by this run
    already: int  # clips the target's manifest already placed in a shard
    shards: int  # shards of the target at the end
    target: Path


def convert_store(
    source: Path,
    out: Path | None = None,
    *,
    shard_bytes: int | None = None,
    durable: bool = True,
    on_clip: Callable[[str], None] | None = None,
) -> ConvertResult:
    """Convert ``source`` into a packed store at ``out`` (default: in place)."""
    source = source.resolve()
    target = source if out is None else out.resolve()
    info = schemas.open_store(source)
    if target != source:
        with store_lock(source), store_lock(target):
            schemas.check_folders(source)
            schemas.create_store(target, info.recipe, packed=True, shard_target_bytes=shard_bytes)
            return _convert(source, target, info.recipe, shard_bytes, durable, on_clip)
    if info.clip_layout != "packed" and schemas.manifest_mode(source) != ms.MODE_FRAGMENTS:
        raise schemas.StoreError(
            f"store {source} is of format {info.format_version}: convert it with --out into a "
            "new store (in place needs a format 3 store)"
        )
    with store_lock(source):
        schemas.check_folders(source)
        result = _convert(source, source, info.recipe, shard_bytes, durable, on_clip)
        _become_packed(source, info.recipe, shard_bytes, durable)
    return result


def _convert(
    source: Path,
    target: Path,
    recipe: schemas.Recipe,
    shard_bytes: int | None,
    durable: bool,
    on_clip: Callable[[str], None] | None,
) -> ConvertResult:
    """Write every ok clip of ``source`` the target does not place yet into shards."""
    recover_shards(target, recipe, durable=durable)
    placed = _placed(target)
    rows = schemas.read_manifest(source)
    ok = rows.filter(pc.equal(rows.column("status"), schemas.STATUS_OK))
    todo = [r for r in ok.to_pylist() if r["clip_id"] not in placed]
    target_bytes = shard_bytes or _target_bytes(target)
    writer = ShardWriter(target, recipe, next_run(target), target_bytes, durable=durable)
    pending: list[dict[str, Any]] = []
    try:
        for row in todo:
            pending.append(writer.append(_clip_arrays(source, row["clip_id"]), row))
            if on_clip is not None:
                on_clip(row["clip_id"])
            if len(pending) >= FRAGMENT_CLIPS:
                _add_rows(target, pending, durable)
    finally:
        writer.close()
    _add_rows(target, pending, durable)
    if target != source:
        _copy_failed_and_splits(source, target, rows, durable)
    ms.compact_manifest(target, durable=durable)
    forget_places(target)
    return ConvertResult(len(todo), len(placed), len(list_shards(target)), target)


def _target_bytes(target: Path) -> int:
    extra = schemas.open_store(target).extra
    return int(extra.get(SHARD_TARGET_KEY, DEFAULT_SHARD_TARGET))


def _placed(target: Path) -> set[str]:
    """The clips whose ok row in the target's manifest names a shard."""
    try:
        table = schemas.read_manifest(target)
    except schemas.StoreError:
        return set()
    ok = pc.and_(
        pc.equal(table.column("status"), schemas.STATUS_OK), pc.is_valid(table.column("shard"))
    )
    shards = set(list_shards(target))
    placed = table.filter(ok).select(["clip_id", "shard"]).to_pylist()
    return {r["clip_id"] for r in placed if r["shard"] in shards}


def _clip_arrays(source: Path, clip_id: str) -> dict[str, np.ndarray]:
    """Every array a clip of ``source`` holds, by its shard path."""
    arrays: dict[str, np.ndarray] = {}
    for path in SHARD_ARRAYS:
        if not path.startswith(f"{LABELS_DIR}/"):
            data = schemas.open_stream(source, clip_id, path)
            if data is not None:
                arrays[path] = np.asarray(data)
    labels = schemas.read_frame_labels(source, clip_id) or {}
    for name in LABEL_NAMES if labels else ():
        arrays[f"{LABELS_DIR}/{name}"] = labels[name]
    return arrays


def _add_rows(target: Path, pending: list[dict[str, Any]], durable: bool) -> None:
    """Write ``pending`` as one manifest fragment of the target, then empty it."""
    if pending:
        table = schemas.rows_to_table(pending, schemas.MANIFEST_SCHEMA)
        ms.write_fragment(target, table, ms.next_seq(target), durable=durable)
        pending.clear()


def _copy_failed_and_splits(source: Path, target: Path, rows: pa.Table, durable: bool) -> None:
    """The source's failed rows and split files, into a separate target."""
    failed = rows.filter(pc.equal(rows.column("status"), schemas.STATUS_FAILED))
    if failed.num_rows:
        _add_rows(target, failed.to_pylist(), durable)
    for split in sorted((source / SPLITS_DIR).glob("*.parquet")):
        copy = target / SPLITS_DIR / split.name
        if not copy.exists():
            with schemas.atomic_write(copy, durable=durable) as tmp:
                shutil.copyfile(split, tmp)


def _become_packed(
    store: Path, recipe: schemas.Recipe, shard_bytes: int | None, durable: bool
) -> None:
    """Make a store converted in place one of format 4 (its root metadata, atomically),
    then delete its clip folders."""
    if not schemas.is_packed(store):
        meta = schemas.open_store(store)
        target = shard_bytes or int(meta.extra.get(SHARD_TARGET_KEY, DEFAULT_SHARD_TARGET))
        root = {"zarr_format": 3, "node_type": "group", "attributes": {}}
        root["attributes"] = {"mscct": packed_meta(recipe, target)}
        write_json_atomic(store / "zarr.json", root, durable=durable)
        forget_layout(store)
    shutil.rmtree(store / CLIPS_DIR, ignore_errors=True)
