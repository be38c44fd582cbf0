"""A remote store's tables: the manifest (base and fragments) and split tables.

The same tables as :mod:`schemas.table_io` and :mod:`schemas.manifest_store` read from
a local store, read through :class:`schemas.remote.RemoteStore`: each file in one
bounded ``GET`` (:data:`schemas.remote.TABLE_MAX_BYTES`), parsed from memory, validated
against its schema. A store in a bucket is a finished one (synced after writing), so
no compaction runs under the reader and no retry is needed.
"""

from __future__ import annotations

import json
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from schemas.layout import MANIFEST_FILE, SPLIT_PARAMS_KEY, SPLITS_DIR, StoreError, check_name
from schemas.manifest_store import (
    _FRAGMENT_RE,
    COMPACTED_KEY,
    MANIFEST_DIR,
    merge_last_wins,
)
from schemas.parquet_read import read_parquet
from schemas.remote import TABLE_MAX_BYTES, RemoteStore
from schemas.tables import validate_manifest


def _table(store: RemoteStore, key: str, what: str) -> pa.Table:
    """One Parquet file of the store, whole (``FileNotFoundError`` when absent)."""
    data = store.read(key, max_bytes=TABLE_MAX_BYTES, what=what)
    try:
        return read_parquet(pa.BufferReader(data))
    except (OSError, pa.ArrowInvalid) as exc:
        reason = " ".join(str(exc).split())
        raise StoreError(f"cannot read {store.where(key)}: {reason}") from None


def read_manifest(store: RemoteStore) -> pa.Table:
    """The merged manifest: the base, then each fragment above its ``compacted_through``."""
    tables = []
    through = 0
    try:
        base = _table(store, MANIFEST_FILE, "manifest")
    except FileNotFoundError:
        base = None
    if base is not None:
        through = int((base.schema.metadata or {}).get(COMPACTED_KEY, b"0"))
        tables.append(validate_manifest(base, f"manifest of {store.url}"))
    fragments = []
    for name in store.keys_under(MANIFEST_DIR):
        match = _FRAGMENT_RE.match(name)  # nested or dot-named keys never match
        if match is not None and int(match.group(1)) > through:
            fragments.append((int(match.group(1)), name))
    for _, name in sorted(fragments):
        key = f"{MANIFEST_DIR}/{name}"
        fragment = _table(store, key, "manifest fragment")
        tables.append(validate_manifest(fragment, f"manifest fragment {name} of {store.url}"))
    if not tables:
        raise StoreError(f"store {store.url} has no manifest yet (run `mscct-pipeline ingest`)")
    return merge_last_wins(tables)


def list_splits(store: RemoteStore) -> list[str]:
    """The names of the store's split tables."""
    names = (key.removesuffix(".parquet") for key in store.keys_under(SPLITS_DIR))
    return sorted(n for n in names if "/" not in n and not n.endswith(".tmp"))


def split_key(name: str) -> str:
    return f"{SPLITS_DIR}/{check_name(name, 'split name')}.parquet"


def read_split(store: RemoteStore, name: str) -> pa.Table:
    """Split table ``name`` as stored (the caller validates it)."""
    try:
        return _table(store, split_key(name), "split table")
    except FileNotFoundError:
        names = list_splits(store)
        hint = f"available: {', '.join(names)}" if names else "run `mscct-pipeline split` first"
        raise StoreError(f"store {store.url} has no split {name!r} ({hint})") from None


def split_params(store: RemoteStore, name: str) -> dict[str, Any]:
    """The parameters split ``name`` was made with, from its file metadata."""
    try:
        data = store.read(split_key(name), max_bytes=TABLE_MAX_BYTES, what="split table")
        meta = pq.read_schema(pa.BufferReader(data)).metadata or {}
        params = json.loads(meta.get(SPLIT_PARAMS_KEY, b"{}"))
    except (OSError, pa.ArrowInvalid, ValueError, RecursionError) as exc:
        raise StoreError(
            f"cannot read the parameters of split {name!r} in {store.url}: {exc}"
        ) from None
    return params if isinstance(params, dict) else {}
