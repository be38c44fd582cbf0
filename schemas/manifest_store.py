"""The manifest on disk: one compacted base file plus append-only fragments.

Layout (format 3; ``"manifest": "fragments"`` in the root metadata)::

    manifest.parquet                       the compacted base (may be absent)
    manifest.d/<seq:012d>-<hex8>.parquet   fragments, each the rows of one flush

A fragment is written under a dot-prefixed name in ``manifest.d/`` and renamed into
place, so a reader sees a fragment whole or not at all (dot files are never read).
A row in a later fragment (higher ``seq``) replaces the row of the same clip id in
the base or an earlier fragment. The base's file metadata records
``compacted_through``, the highest ``seq`` folded into it; readers skip fragments at
or below it. Compaction therefore writes the base atomically, then deletes the
folded fragments: a crash between the two leaves fragments that are ignored.

A store without the key (formats 1 and 2) keeps one ``manifest.parquet`` replaced
whole at every write (:func:`manifest_mode` says ``"single"``).

Writers hold the store's lock (``pipeline.lock``); readers take no lock.
"""

from __future__ import annotations

import contextlib
import os
import re
import uuid
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from schemas.durable import atomic_write, fsync_path
from schemas.layout import MANIFEST_FILE, StoreError, os_reason
from schemas.lifecycle import open_store
from schemas.parquet_read import read_parquet
from schemas.tables import MANIFEST_SCHEMA, validate_manifest

#: The folder of the fragments, beside ``manifest.parquet``.
MANIFEST_DIR = "manifest.d"
#: The root metadata key and its two values.
MANIFEST_KEY = "manifest"
MODE_SINGLE = "single"
MODE_FRAGMENTS = "fragments"
#: The base file's metadata key: the highest fragment sequence number folded into it.
COMPACTED_KEY = b"mscct.compacted_through"

_FRAGMENT_RE = re.compile(r"^(\d{12})-([0-9a-f]{8})\.parquet$")
#: A reader retries this often when a compaction deletes fragments under it.
_READ_ATTEMPTS = 20


def manifest_mode(store: str | Path) -> str:
    """``"fragments"`` (format 3 stores) or ``"single"`` (a store without the key)."""
    mode = open_store(store).extra.get(MANIFEST_KEY, MODE_SINGLE)
    if mode not in (MODE_SINGLE, MODE_FRAGMENTS):
        raise StoreError(
            f"store {store} has manifest kind {mode!r}; this software reads single, fragments"
        )
    return str(mode)


def fragment_paths(store: str | Path) -> list[tuple[int, Path]]:
    """``(seq, path)`` of every fragment in ``manifest.d/``, by ``seq`` (dot files skipped)."""
    folder = Path(store) / MANIFEST_DIR
    try:
        names = os.listdir(folder)
    except FileNotFoundError:
        return []
    found = [(int(m.group(1)), folder / n) for n in names if (m := _FRAGMENT_RE.match(n))]
    return sorted(found)


def compacted_through(path: Path) -> int:
    """The ``compacted_through`` a base file records (0 when it records none)."""
    metadata = pq.read_schema(path).metadata or {}
    return int(metadata.get(COMPACTED_KEY, b"0"))


def merge_last_wins(tables: list[pa.Table]) -> pa.Table:
    """One row per clip id, the row of the latest table holding it, sorted by clip id.

    Vectorised: the tables are concatenated, sorted by ``(clip_id, position desc)`` and
    the first row of each clip id kept. Each table must already be validated.
    """
    tables = [pa.Table.from_arrays(t.columns, schema=MANIFEST_SCHEMA) for t in tables]
    if len(tables) == 1:
        return _sorted_unique(tables[0])
    return _sorted_unique(pa.concat_tables(tables))


def _sorted_unique(table: pa.Table) -> pa.Table:
    """``table`` by clip id, keeping of each clip id its last row."""
    if table.num_rows == 0:
        return table
    position = pa.array(range(table.num_rows), pa.int64())
    order = pc.sort_indices(
        pa.table({"clip_id": table.column("clip_id"), "pos": position}),
        sort_keys=[("clip_id", "ascending"), ("pos", "descending")],
    )
    ordered = table.take(order)
    ids = ordered.column("clip_id").combine_chunks()
    first = pc.not_equal(ids.slice(1), ids.slice(0, len(ids) - 1))
    keep = pa.concat_arrays([pa.array([True]), first.cast(pa.bool_())])
    return ordered.filter(keep)


def read_merged(store: str | Path) -> pa.Table:
    """The base and every live fragment as one validated table (see the module doc).

    Raises :class:`StoreError` when there is no manifest or a file cannot be read. The
    table is a state the manifest had: when a compaction replaced the base or deleted a
    fragment while it was read, the read starts again.
    """
    store = Path(store)
    for _ in range(_READ_ATTEMPTS):
        with contextlib.suppress(_Changed, FileNotFoundError):
            return _read_once(store)
    raise StoreError(f"cannot read the manifest of {store}: it kept changing while read")


class _Changed(Exception):
    """The base was replaced while the fragments were read."""


def _identity(stat: os.stat_result | None) -> tuple[int, int] | None:
    return None if stat is None else (stat.st_ino, stat.st_mtime_ns)


def _read_once(store: Path) -> pa.Table:
    base_path = store / MANIFEST_FILE
    tables: list[pa.Table] = []
    through, opened = 0, None
    try:
        with open(base_path, "rb") as handle:  # the base as it is now, even if replaced later
            opened = _identity(os.fstat(handle.fileno()))
            base = _read_parquet(handle, base_path)
        through = int((base.schema.metadata or {}).get(COMPACTED_KEY, b"0"))
        tables.append(validate_manifest(base, f"manifest of {store}"))
    except FileNotFoundError:
        pass
    for seq, path in fragment_paths(store):
        if seq > through:
            with open(path, "rb") as handle:  # FileNotFoundError: folded meanwhile, retry
                fragment = _read_parquet(handle, path)
            tables.append(validate_manifest(fragment, f"manifest fragment {path.name} of {store}"))
    try:
        now = _identity(os.stat(base_path))
    except FileNotFoundError:
        now = None
    if now != opened:
        raise _Changed  # a compaction ran meanwhile: these fragments may not match this base
    if not tables:
        raise StoreError(f"store {store} has no manifest yet (run `mscct-pipeline ingest`)")
    return merge_last_wins(tables)


def _read_parquet(handle: object, path: Path) -> pa.Table:
    try:
        return read_parquet(handle)  # synchronous: see schemas.parquet_read
    except (OSError, pa.ArrowInvalid) as exc:
        raise StoreError(f"cannot read {path}: {exc}") from exc


def next_seq(store: str | Path) -> int:
    """The sequence number the next fragment gets (above every fragment and the base's)."""
    store = Path(store)
    through = 0
    with contextlib.suppress(FileNotFoundError, OSError, pa.ArrowInvalid):
        through = compacted_through(store / MANIFEST_FILE)
    seqs = [seq for seq, _ in fragment_paths(store)]
    return max([through, *seqs]) + 1


def write_fragment(store: str | Path, table: pa.Table, seq: int, *, durable: bool = True) -> Path:
    """Validate ``table`` and add it as fragment ``seq`` (atomic; durable with ``durable``).

    Call only while holding the store's lock. Raises :class:`StoreError` (one line)
    when it cannot be written; nothing partial stays visible then.
    """
    table = validate_manifest(table, "manifest fragment")
    folder = Path(store) / MANIFEST_DIR
    path = folder / f"{seq:012d}-{uuid.uuid4().hex[:8]}.parquet"
    try:
        folder.mkdir(exist_ok=True)
        with atomic_write(path, durable=durable) as tmp:
            pq.write_table(table, tmp)
    except OSError as exc:
        raise StoreError(_cannot_write(store, exc)) from None
    return path


def replace_manifest(store: str | Path, table: pa.Table, *, durable: bool = True) -> None:
    """Make ``table`` the whole manifest: the base replaced, every fragment folded away.

    In a single-file store this is one atomic replacement of ``manifest.parquet``. In a
    fragments store the base is written recording the highest fragment ``seq`` present
    (so those fragments stop counting at once), the fragments are deleted, and the base
    is written once more recording 0, so that a settled base depends only on its rows
    (``repair`` then writes the very same file). A crash at any step leaves a manifest
    that reads as ``table`` or as the manifest before.
    """
    table = validate_manifest(table, "manifest").replace_schema_metadata(None)
    store = Path(store)
    try:
        folded = fragment_paths(store)
        through = max([0, *(seq for seq, _ in folded)])
        if through:
            _write_base(store, table, through, durable=durable)
            for _, path in folded:
                path.unlink(missing_ok=True)
            if durable:
                fsync_path(store / MANIFEST_DIR, directory=True)
        _write_base(store, table, 0, durable=durable)
    except OSError as exc:
        raise StoreError(_cannot_write(store, exc)) from None


def _write_base(store: Path, table: pa.Table, through: int, *, durable: bool) -> None:
    if through:
        table = table.replace_schema_metadata({COMPACTED_KEY: str(through).encode()})
    with atomic_write(store / MANIFEST_FILE, durable=durable) as tmp:
        pq.write_table(table, tmp)


def compact_manifest(store: str | Path, *, durable: bool = True) -> pa.Table:
    """Fold every fragment into the base (atomic, idempotent); return the manifest.

    Call only while holding the store's lock. With no fragment to fold nothing is
    written. Stale fragments (folded by a compaction that was killed before deleting
    them) and temporary files of killed writers are deleted.
    """
    store = Path(store)
    sweep_fragment_leftovers(store)
    table = read_merged(store)
    if fragment_paths(store):
        replace_manifest(store, table, durable=durable)
    return table


def sweep_fragment_leftovers(store: str | Path) -> int:
    """Delete what killed writers left in ``manifest.d/``: temporary files, and fragments
    already folded into the base. Call only while holding the store's lock."""
    store = Path(store)
    folder = store / MANIFEST_DIR
    removed = 0
    through = 0
    with contextlib.suppress(FileNotFoundError, OSError, pa.ArrowInvalid):
        through = compacted_through(store / MANIFEST_FILE)
    try:
        names = os.listdir(folder)
    except FileNotFoundError:
        return 0
    for name in names:
        match = _FRAGMENT_RE.match(name)
        stale = match is not None and int(match.group(1)) <= through
        if stale or (name.startswith(".") and name.endswith(".tmp")):
            (folder / name).unlink(missing_ok=True)
            removed += 1
    return removed


def _cannot_write(store: str | Path, exc: OSError) -> str:
    return (
        f"cannot write the manifest of store {store}: {os_reason(exc)} (the committed "
        "clips are safe; `mscct-pipeline repair` rebuilds the manifest once it can be written)"
    )
