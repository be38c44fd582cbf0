"""Reading and writing a store's tables: the manifest, the split tables, the fingerprint.

Every table is validated against its schema (:mod:`schemas.tables`) on the way in
and out, and replaced atomically. How the manifest lies on disk (a base file and
fragments) is :mod:`schemas.manifest_store`'s business.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from schemas import remote_tables
from schemas.durable import atomic_write
from schemas.layout import (
    SPLIT_PARAMS_KEY,
    SPLITS_DIR,
    StoreError,
    check_name,
    os_reason,
)
from schemas.lifecycle import check_folders, open_store
from schemas.manifest_store import open_table, read_merged, replace_manifest
from schemas.parquet_read import read_parquet
from schemas.remote import remote_store
from schemas.store_url import store_url
from schemas.tables import (
    SPLIT_SCHEMA,
    STATUS_OK,
    SchemaError,
    validate_table,
)


def write_manifest(store: str | Path, table: pa.Table, *, durable: bool = True) -> None:
    """Validate ``table`` and make it the whole manifest, atomically (durably with ``durable``).

    In a fragments store the base is replaced and every fragment folded away
    (:func:`schemas.manifest_store.replace_manifest`). Raises :class:`StoreError` (one
    line) when the file cannot be written (disk full, no free inodes, read-only):
    committed clips stay, and ``mscct-pipeline repair`` rebuilds the manifest from them.
    """
    replace_manifest(store, table, durable=durable)


def read_manifest(store: str | Path) -> pa.Table:
    """The store's manifest: one row per clip, sorted by clip id, schema ``MANIFEST_SCHEMA``.

    The base file and the fragments written since its last compaction, read as one
    table (a later row of a clip replaces an earlier one); see :mod:`schemas.manifest_store`.
    """
    open_store(store)
    if store_url(store) is not None:
        return remote_tables.read_manifest(remote_store(store))
    return read_merged(store)


def write_split(
    store: str | Path,
    name: str,
    table: pa.Table,
    params: dict[str, Any],
    *,
    overwrite: bool = False,
) -> Path:
    """Store a split table under ``splits/<name>.parquet`` with its parameters."""
    open_store(store)
    check_folders(store)  # splits/ must be the store's own folder, not a link out
    path = Path(store) / SPLITS_DIR / f"{check_name(name, 'split name')}.parquet"
    if os.path.lexists(path) and not overwrite:
        raise StoreError(
            f"split {name!r} already exists in {store}; pass --overwrite to replace it"
        )
    table = validate_table(table, SPLIT_SCHEMA, f"split {name!r}")
    bad = set(table.column("split").to_pylist()) - {"train", "val", "test"}
    if bad:
        raise SchemaError(f"split {name!r}: unknown part(s) {sorted(bad)}")
    meta = {SPLIT_PARAMS_KEY: json.dumps(params, sort_keys=True).encode()}
    try:
        path.parent.mkdir(exist_ok=True)
        _write_parquet_atomic(path, table.replace_schema_metadata(meta))
    except OSError as exc:
        raise StoreError(f"cannot write split {name!r} to {store}: {os_reason(exc)}") from None
    return path


def read_split(store: str | Path, name: str = "default") -> pa.Table:
    """The split table ``name``: columns ``clip_id``, ``split`` (train/val/test), ..."""
    open_store(store)
    if store_url(store) is not None:
        table = remote_tables.read_split(remote_store(store), name)
        return validate_table(table, SPLIT_SCHEMA, f"split {name!r}")
    path = Path(store) / SPLITS_DIR / f"{check_name(name, 'split name')}.parquet"
    if not path.exists():
        names = list_splits(store)
        hint = f"available: {', '.join(names)}" if names else "run `mscct-pipeline split` first"
        raise StoreError(f"store {store} has no split {name!r} ({hint})")
    return validate_table(_read_parquet(store, path), SPLIT_SCHEMA, f"split {name!r}")


def split_params(store: str | Path, name: str = "default") -> dict[str, Any]:
    """The parameters a split was made with, as ``write_split`` recorded them."""
    if store_url(store) is not None:
        return remote_tables.split_params(remote_store(store), name)
    path = Path(store) / SPLITS_DIR / f"{check_name(name, 'split name')}.parquet"
    try:
        with open_table(store, path, "split table") as handle:
            meta = pq.read_schema(handle).metadata or {}
        return json.loads(meta.get(SPLIT_PARAMS_KEY, b"{}"))
    except (OSError, pa.ArrowInvalid, ValueError, RecursionError) as exc:
        raise StoreError(
            f"cannot read the parameters of split {name!r} in {store}: {exc}"
        ) from None


def list_splits(store: str | Path) -> list[str]:
    if store_url(store) is not None:
        return remote_tables.list_splits(remote_store(store))
    root = Path(store) / SPLITS_DIR
    return sorted(p.stem for p in root.glob("*.parquet")) if root.exists() else []


def store_fingerprint(store: str | Path) -> str:
    """Hash of the recipe and of every ok clip's id and source fingerprint.

    Two stores with the same fingerprint hold the same clips made the same way;
    training runs record it so that results can be traced to their data.
    """
    info = open_store(store)
    manifest = read_manifest(store).filter(pc.field("status") == STATUS_OK)
    pairs = sorted(
        zip(
            manifest.column("clip_id").to_pylist(),
            manifest.column("source_fingerprint").to_pylist(),
            strict=True,
        )
    )
    digest = hashlib.sha256(info.recipe.hash().encode())
    for clip_id, fingerprint in pairs:
        digest.update(f"{clip_id}\t{fingerprint}\n".encode())
    return digest.hexdigest()[:16]


def _read_parquet(store: str | Path, path: Path) -> pa.Table:
    """A table of the store, read inside it (a link or FIFO is refused unread)."""
    try:
        with open_table(store, path, "split table") as handle:
            return read_parquet(handle)  # synchronous: see schemas.parquet_read
    except (OSError, pa.ArrowInvalid) as exc:
        raise StoreError(f"cannot read {path}: {exc}") from None


def _write_parquet_atomic(path: Path, table: pa.Table, *, durable: bool = True) -> None:
    """Replace ``path`` with ``table`` as Parquet, through :func:`schemas.durable.atomic_write`."""
    with atomic_write(path, durable=durable) as tmp:
        pq.write_table(table, tmp)
