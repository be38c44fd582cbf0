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

Writers hold the store's lock (``schemas.lock``); readers take no lock.
"""

from __future__ import annotations

import contextlib
import os
import re
import stat
import uuid
from pathlib import Path
from typing import BinaryIO

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from schemas.durable import atomic_write, fsync_path
from schemas.layout import MANIFEST_FILE, StoreError, os_reason
from schemas.lifecycle import open_store
from schemas.parquet_read import read_parquet
from schemas.safe_files import RefusedFile, file_kind, open_inside
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
    """``(seq, path)`` of every fragment in ``manifest.d/``, by ``seq`` (dot files skipped).

    Raises :class:`StoreError` (one line naming it) for an entry named like a fragment
    that is not a regular file (a FIFO would hang its reader, a directory or a link is
    not something a store writes): readers, ``compact`` and ``repair`` all refuse it.
    """
    folder = _fragment_folder(store)
    try:
        listing = os.scandir(folder)
    except FileNotFoundError:
        return []
    found = []
    with listing:
        for entry in listing:
            match = _FRAGMENT_RE.match(entry.name)
            if match is None:
                continue
            if not entry.is_file(follow_symlinks=False):
                kind = file_kind(entry.stat(follow_symlinks=False).st_mode)
                raise StoreError(_not_a_fragment(store, entry.name, kind))
            found.append((int(match.group(1)), folder / entry.name))
    return sorted(found)


def _fragment_folder(store: str | Path) -> Path:
    """``manifest.d/``, refused when it is a link (or anything but a folder): its
    fragments would be read, and folded ones deleted, wherever it leads."""
    folder = Path(store) / MANIFEST_DIR
    try:
        mode = os.lstat(folder).st_mode
    except FileNotFoundError:
        return folder
    if not stat.S_ISDIR(mode):
        raise StoreError(
            f"store {store}: {MANIFEST_DIR} is {file_kind(mode)}, not a folder of the store's "
            "own; refused (remove it; `mscct-pipeline repair` rebuilds the manifest)"
        )
    return folder


def _not_a_fragment(store: str | Path, name: str, kind: str) -> str:
    return (
        f"store {store}: {MANIFEST_DIR}/{name} is {kind}, not a manifest fragment; never "
        "read (a store writes only regular files there: remove it; `mscct-pipeline repair` "
        "rebuilds the manifest from the committed clips)"
    )


def open_table(store: str | Path, path: Path, what: str) -> BinaryIO:
    """Open one of the store's tables for reading, inside the store (see
    :func:`schemas.safe_files.open_inside`): a link, a FIFO, a directory or a path
    leading out of the store is a one-line :class:`StoreError`, never read."""
    try:
        return open_inside(path, store, what=what)
    except RefusedFile as exc:
        raise StoreError(f"{exc} (a store's tables are regular files inside it)") from None


def compacted_through(store: str | Path) -> int:
    """The ``compacted_through`` the store's base file records (0 when it records none).

    Raises ``FileNotFoundError`` when there is no base, :class:`StoreError` when it is
    refused, and pyarrow's error when it is not Parquet.
    """
    with open_table(store, Path(store) / MANIFEST_FILE, "manifest") as handle:
        metadata = pq.read_schema(handle).metadata or {}
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
        # The base as it is now, even if replaced later.
        with open_table(store, base_path, "manifest") as handle:
            opened = _identity(os.fstat(handle.fileno()))
            base = _read_parquet(handle, base_path)
        through = int((base.schema.metadata or {}).get(COMPACTED_KEY, b"0"))
        tables.append(validate_manifest(base, f"manifest of {store}"))
    except FileNotFoundError:
        pass
    for seq, path in fragment_paths(store):
        if seq > through:
            # FileNotFoundError: folded meanwhile, retry.
            with open_table(store, path, "manifest fragment") as handle:
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
        reason = " ".join(str(exc).split())  # pyarrow's text may span lines
        raise StoreError(
            f"cannot read {path}: {reason} (`mscct-pipeline repair` rebuilds the manifest "
            "from the committed clips)"
        ) from None


def next_seq(store: str | Path) -> int:
    """The sequence number the next fragment gets (above every fragment and the base's)."""
    store = Path(store)
    through = 0
    with contextlib.suppress(FileNotFoundError, OSError, pa.ArrowInvalid):
        through = compacted_through(store)
    seqs = [seq for seq, _ in fragment_paths(store)]
    return max([through, *seqs]) + 1


def write_fragment(store: str | Path, table: pa.Table, seq: int, *, durable: bool = True) -> Path:
    """Validate ``table`` and add it as fragment ``seq`` (atomic; durable with ``durable``).

    Call only while holding the store's lock. Raises :class:`StoreError` (one line)
    when it cannot be written; nothing partial stays visible then.
    """
    table = validate_manifest(table, "manifest fragment")
    folder = _fragment_folder(store)
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
    already folded into the base. Call only while holding the store's lock.

    Only regular files are deleted: anything else named so is not a store's and is left
    for the readers to refuse (:func:`fragment_paths`). A base that cannot be read
    counts as folding nothing, so only temporary files go then.
    """
    store = Path(store)
    folder = _fragment_folder(store)
    removed = 0
    through = 0
    with contextlib.suppress(OSError, pa.ArrowInvalid, StoreError):
        through = compacted_through(store)
    try:
        listing = os.scandir(folder)
    except FileNotFoundError:
        return 0
    with listing:
        for entry in listing:
            match = _FRAGMENT_RE.match(entry.name)
            stale = match is not None and int(match.group(1)) <= through
            temporary = entry.name.startswith(".") and entry.name.endswith(".tmp")
            if (stale or temporary) and entry.is_file(follow_symlinks=False):
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(entry.path)
                removed += 1
    return removed


def _cannot_write(store: str | Path, exc: OSError) -> str:
    return (
        f"cannot write the manifest of store {store}: {os_reason(exc)} (the committed "
        "clips are safe; `mscct-pipeline repair` rebuilds the manifest once it can be written)"
    )
