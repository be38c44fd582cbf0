"""The driver's manifest while an ingest runs, and its rebuild from ``clips/``.

:class:`ManifestBook` decides which clips a rerun skips and records every finished
clip; :func:`repair_manifest` rebuilds the manifest from the committed clips.

Every per-clip cost is independent of how many clips the store holds: a flush appends
one fragment holding the rows finished since the last flush
(:mod:`schemas.manifest_store`), and the resume decision reads the manifest once,
keeping per clip only what the decision compares, then one ``stat`` of the source and
one ``isdir`` of the clip's folder. ``--verify`` reads every committed clip record
and fingerprints the sources, as before. A store of format 1 or 2 (one
``manifest.parquet``) keeps having its manifest rewritten whole at every flush.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

import schemas
from pipeline.datasets import ClipSource
from pipeline.ingest.clip_record import base_record  # the one place a record is built
from pipeline.ingest.fingerprint import source_fingerprint, source_stat
from schemas import STATUS_FAILED, STATUS_OK
from schemas import manifest_store as ms
from schemas.lock import store_lock
from schemas.packed_write import recover_shards

#: The record fields a clip's labels live in; a change of any of them redoes the clip.
LABEL_FIELDS = (
    "category",
    "audio_label",
    "video_label",
    "label",
    "labelled",
    "fake_segments",
    "audio_fake_segments",
    "video_fake_segments",
)

#: The manifest columns a resume decision reads.
RESUME_COLUMNS = ("clip_id", "recipe_hash", "status", "source_size", "source_mtime_ns")

#: What the book keeps of a clip for the resume decision: ``(recipe_hash, source_size,
#: source_mtime_ns, ok, label_mask, label_digest)``. The recipe hash is interned (one
#: string shared by every clip) and the labels are kept as a 64-bit digest of the
#: fields present (``label_mask``, a bit per :data:`LABEL_FIELDS` entry), so a clip
#: costs about 300 bytes with its dict entry and id, against some kilobytes for a
#: whole record.
ResumeState = tuple[str, int | None, int | None, bool, int, int]

_ALL_LABELS = (1 << len(LABEL_FIELDS)) - 1
_LABELLED_BIT = 1 << LABEL_FIELDS.index("labelled")
#: Batches in which the manifest is turned into resume state (bounds the transient memory).
_BATCH_ROWS = 65536


def _labels_unchanged(record: dict[str, Any], clip: ClipSource) -> bool:
    """Whether the labels a committed record holds are those the scan gives ``clip`` now
    (fields the record lacks, written before they existed, are not compared)."""
    now = base_record(clip, "", "")
    return all(record[key] == now[key] for key in LABEL_FIELDS if key in record)


def _frozen(value: Any) -> Any:
    """A label value made hashable (segment lists become tuples)."""
    if isinstance(value, list):
        return tuple(_frozen(v) for v in value)
    return value


def _label_digest(values: Sequence[Any], mask: int) -> int:
    """A digest of the label values (in :data:`LABEL_FIELDS` order) whose bit is set in
    ``mask``. Python's tuple hash: the book lives in one process, so it needs no salt
    kept stable across runs."""
    return hash(tuple(_frozen(v) for i, v in enumerate(values) if mask >> i & 1))


def _labels_of(row: Mapping[str, Any]) -> list[Any]:
    return [row.get(k) for k in LABEL_FIELDS]


def _clip_label_digest(clip: ClipSource, mask: int) -> int:
    return _label_digest(_labels_of(base_record(clip, "", "")), mask)


def _state_of(row: Mapping[str, Any], mask: int) -> ResumeState:
    return (
        sys.intern(str(row.get("recipe_hash") or "")),
        row.get("source_size"),
        row.get("source_mtime_ns"),
        row.get("status") == STATUS_OK,
        mask,
        _label_digest(_labels_of(row), mask),
    )


def _record_mask(record: Mapping[str, Any]) -> int:
    """The label fields a committed record has (older records lack later ones)."""
    return sum(1 << i for i, k in enumerate(LABEL_FIELDS) if k in record)


def resume_state(table: pa.Table) -> dict[str, ResumeState]:
    """Per clip id, what :meth:`ManifestBook.is_current` compares, from a manifest table.

    A null ``labelled`` (a row written before the field existed) is not compared, as
    a record lacking the field is not.
    """
    state: dict[str, ResumeState] = {}
    names = [*RESUME_COLUMNS, *LABEL_FIELDS]
    labelled_at = LABEL_FIELDS.index("labelled")
    for batch in table.select(names).to_batches(max_chunksize=_BATCH_ROWS):
        columns = [batch.column(name).to_pylist() for name in names]
        for clip_id, recipe_hash, status, size, mtime_ns, *labels in zip(*columns, strict=True):
            mask = _ALL_LABELS if labels[labelled_at] is not None else _ALL_LABELS & ~_LABELLED_BIT
            digest = _label_digest(labels, mask)
            ok = status == STATUS_OK
            state[clip_id] = (sys.intern(recipe_hash), size, mtime_ns, ok, mask, digest)
    return state


def rebuilt_manifest(
    committed: list[dict[str, Any]], before: pa.Table | None, *, packed: bool = False
) -> tuple[pa.Table, int]:
    """The manifest ``clips/`` says: every committed record as its ok row, plus the
    failed rows of ``before`` (the old manifest, when readable) of clips not committed.
    Returns the table and how many failed rows were kept.

    In a packed store a clip that failed after it was committed keeps its older copy in
    its shard (shards are never rewritten), so there the old manifest's failed rows win
    over the shards' copies."""
    table = schemas.rows_to_table(committed, schemas.MANIFEST_SCHEMA)
    if before is None:
        return ms.merge_last_wins([table]), 0
    ids = table.column("clip_id")
    failed = pc.equal(before.column("status"), STATUS_FAILED)
    if packed:
        kept = before.filter(failed)
        return ms.merge_last_wins([table, kept]), kept.num_rows
    keep = pc.and_(failed, pc.invert(pc.is_in(before.column("clip_id"), value_set=ids)))
    kept = before.filter(keep)
    return ms.merge_last_wins([kept, table]), kept.num_rows


class ManifestBook:
    """The driver's view of the manifest while a run goes on.

    ok rows come from committed clip records only (a task's record is committed
    with its clip before the task returns it); failed rows from this run's failures,
    plus older failures of clips this run did not touch. Holds the rows added since
    the last flush and, per clip, the compact :data:`ResumeState`.
    """

    def __init__(self, store: Path, recipe_hash: str, *, durable: bool = True) -> None:
        self.store = store
        self.recipe_hash = sys.intern(recipe_hash)
        self.durable = durable
        self.mode = schemas.manifest_mode(store)
        # A packed store's clips are committed once the manifest names them: no folder
        # to look for, and a clip written but never named is redone (in a new shard).
        self.packed = schemas.is_packed(store)
        self.unreadable = False  # the manifest on disk could not be read (see repair)
        self.pending: dict[str, dict[str, Any]] = {}  # rows added since the last flush
        self.ok_added = 0
        self.failed_added = 0
        self._records: dict[str, dict[str, Any]] | None = None  # loaded by --verify only
        self._full: pa.Table | None = None  # single-file store: the whole table as written
        self._replace: pa.Table | None = None  # a table rebuilt from clips/, to write whole
        if self.mode == ms.MODE_FRAGMENTS:
            ms.sweep_fragment_leftovers(store)  # we hold the lock: leftovers are dead
        written = self._read_written()
        if written is not None and _has_resume_columns(written):
            self._state = resume_state(written)
        else:  # an older store's manifest, or none readable: the clip records, once
            written = self._from_records(written)
        self._exists = written is not None
        if self.mode == ms.MODE_SINGLE:
            self._full = written
        self._next_seq = ms.next_seq(store) if self.mode == ms.MODE_FRAGMENTS else 0

    def _read_written(self) -> pa.Table | None:
        try:
            return schemas.read_manifest(self.store)
        except schemas.StoreError:
            self.unreadable = any(
                (self.store / name).exists()
                for name in (schemas.layout.MANIFEST_FILE, ms.MANIFEST_DIR)
            )
            return None

    def _from_records(self, written: pa.Table | None) -> pa.Table | None:
        """Resume state from every committed record (today's full read), and the manifest
        those records make, written at the next flush."""
        records = schemas.committed_records(self.store)
        if written is None and not records and not self.unreadable:
            self._state = {}
            return None  # a new store
        table, _ = rebuilt_manifest(records, written, packed=self.packed)
        self._state = {r["clip_id"]: _state_of(r, _record_mask(r)) for r in records}
        for row in table.filter(pc.equal(table.column("status"), STATUS_FAILED)).to_pylist():
            self._state[row["clip_id"]] = _state_of(row, _ALL_LABELS)
        if self.mode == ms.MODE_FRAGMENTS or written is None:
            self._replace = table
        elif not table.equals(written):
            self._full, self._replace = written, table
        return written if self._replace is None else table

    @property
    def session(self) -> list[dict[str, str]]:
        """One ``{"status": ...}`` per clip added this run (shared dicts: 8 bytes a clip)."""
        return [_OK] * self.ok_added + [_FAILED] * self.failed_added

    def is_current(self, clip: ClipSource, source: Path, *, verify: bool = False) -> bool:
        """Whether the committed clip was made from ``source`` as it is now, same recipe,
        with the labels the scan gives it now.

        From the manifest: compares its recipe hash, labels, the source's size and mtime
        (``stat``, no byte read), and checks that the clip's folder exists; no clip
        metadata is opened. With ``verify``: compares the committed clip record itself
        and the content fingerprint (reads the source). A missing or non-regular source
        is never current: its task fails it with the reason.
        """
        if verify:
            return self._verified(clip, source)
        state = self._state.get(clip.clip_id)
        if state is None:
            return self._adopted(clip, source)
        recipe_hash, size, mtime_ns, ok, mask, digest = state
        if not ok or recipe_hash != self.recipe_hash:
            return False
        if _clip_label_digest(clip, mask) != digest:
            return False  # its stored frame labels (and manifest row) would be stale
        try:
            info = source_stat(source)
        except OSError:  # NotRegularFile included
            return False
        if (size, mtime_ns) != (info.st_size, info.st_mtime_ns):
            return False
        return self.packed or os.path.isdir(schemas.layout.clip_dir(self.store, clip.clip_id))

    def _adopted(self, clip: ClipSource, source: Path) -> bool:
        """Whether a clip the manifest does not list was committed, current, after its
        last flush (a driver killed between the commit and the flush); if so its row joins
        the next fragment. One ``isdir`` for a clip that is not there, which is every clip
        still to do; clip metadata is opened only for the few committed so."""
        if self.packed or not os.path.isdir(schemas.layout.clip_dir(self.store, clip.clip_id)):
            return False
        record = schemas.read_clip_record(self.store, clip.clip_id)
        if record is None or not self._record_current(record, clip, source, fingerprint=False):
            return False
        self.pending[clip.clip_id] = record
        self._state[clip.clip_id] = _state_of(record, _record_mask(record))
        return True

    def _verified(self, clip: ClipSource, source: Path) -> bool:
        """:meth:`is_current` from the committed record and the content fingerprint."""
        if self._records is None:
            self._records = {r["clip_id"]: r for r in schemas.committed_records(self.store)}
        record = self._records.get(clip.clip_id)
        return record is not None and self._record_current(record, clip, source, fingerprint=True)

    def _record_current(
        self, record: dict[str, Any], clip: ClipSource, source: Path, *, fingerprint: bool
    ) -> bool:
        """A committed record's recipe, labels and source size/mtime (and, with
        ``fingerprint``, content) agree with the run's recipe and ``source`` now."""
        if record.get("recipe_hash") != self.recipe_hash or not _labels_unchanged(record, clip):
            return False
        try:
            info = source_stat(source)
            recorded = (record.get("source_size"), record.get("source_mtime_ns"))
            if recorded != (info.st_size, info.st_mtime_ns):
                return False
            return not fingerprint or source_fingerprint(source) == record.get("source_fingerprint")
        except OSError:  # NotRegularFile included
            return False

    def add(self, record: dict[str, Any]) -> None:
        """Record a finished clip (its row goes out with the next flush)."""
        clip_id = record["clip_id"]
        ok = record["status"] == STATUS_OK
        if not ok:  # a clip that failed now must not stay visible from an older commit
            schemas.remove_clip(self.store, clip_id, durable=self.durable)
        self.pending[clip_id] = record
        self._state[clip_id] = _state_of(record, _record_mask(record))
        if self._records is not None:
            self._records.pop(clip_id, None)
            if ok:
                self._records[clip_id] = record
        self.ok_added += ok
        self.failed_added += not ok

    def amend(self, clip_id: str, **fields: Any) -> bool:
        """Change fields no resume decision reads (``method``) in a committed clip's row:
        the row not flushed yet, else one made from its committed record (a failed clip's
        row is left as it is: its retry writes the new value). True if a row changed."""
        record = self.pending.get(clip_id)
        if record is None and (
            self.packed or os.path.isdir(schemas.layout.clip_dir(self.store, clip_id))
        ):
            record = schemas.read_clip_record(self.store, clip_id)
        if record is None or all(record.get(k) == v for k, v in fields.items()):
            return False
        self.pending[clip_id] = {**record, **fields}
        return True

    def flush(self, *, final: bool = False) -> pa.Table:
        """Write the rows added since the last flush; the ``final`` flush also compacts.

        A fragments store gets one fragment (cost: the rows since the last flush); a
        single-file store has its manifest rewritten whole, and only if its content
        changed. A no-op rerun changes no byte. Returns the whole manifest after the
        ``final`` flush, else the rows written. A periodic flush that cannot write (disk
        full) is retried at the next one, since committed clips are safe without it;
        the ``final`` one raises ``StoreError``.
        """
        rows = [self.pending[k] for k in sorted(self.pending)]
        table = schemas.rows_to_table(rows, schemas.MANIFEST_SCHEMA)
        try:
            written = self._write(table, final=final)
        except schemas.StoreError:
            if final:
                raise
            return table
        self.pending.clear()
        return written

    def _write(self, table: pa.Table, *, final: bool) -> pa.Table:
        if self.mode == ms.MODE_SINGLE:
            return self._write_single(table)
        if self._replace is not None:
            whole = ms.merge_last_wins([self._replace, table])
            ms.replace_manifest(self.store, whole, durable=self.durable)
            self._replace, self._exists = None, True
        elif table.num_rows:
            ms.write_fragment(self.store, table, self._next_seq, durable=self.durable)
            self._next_seq += 1
            self._exists = True
        if not final:
            return table
        if not self._exists:  # a run that committed nothing still leaves a manifest
            ms.replace_manifest(self.store, table, durable=self.durable)
            self._exists = True
        return ms.compact_manifest(self.store, durable=self.durable)

    def _write_single(self, table: pa.Table) -> pa.Table:
        """Today's path for format 1 and 2 stores: the whole table, rewritten."""
        base = self._replace if self._replace is not None else self._full
        whole = ms.merge_last_wins([t for t in (base, table) if t is not None])
        if self._full is None or self._replace is not None or not whole.equals(self._full):
            schemas.write_manifest(self.store, whole, durable=self.durable)
        self._full, self._replace = whole, None
        return whole


_OK = {"status": STATUS_OK}
_FAILED = {"status": STATUS_FAILED}


def _has_resume_columns(table: pa.Table) -> bool:
    """Whether every ok row records its source's size and mtime (format 3 manifests)."""
    ok = pc.equal(table.column("status"), STATUS_OK)
    missing = pc.or_(
        pc.is_null(table.column("source_size")), pc.is_null(table.column("source_mtime_ns"))
    )
    return not pc.any(pc.and_(ok, missing)).as_py()


@dataclass
class RepairResult:
    committed: int  # ok rows, one per committed clip
    failed_kept: int  # failed rows kept from the old manifest
    rewritten: bool  # False when the manifest already said exactly this
    old_unreadable: bool  # the old manifest was missing or unreadable (its failed rows are lost)


def repair_manifest(store: Path) -> RepairResult:
    """Rebuild the manifest from the records committed in ``clips/``, as one compacted base.

    The ok rows are exactly the committed records (what an ingest would write);
    failed rows are kept from the old manifest when it is readable, else lost
    (a rerun of ingest retries those clips anyway). Takes the store's write lock.
    """
    store = store.resolve()
    schemas.open_store(store)
    with store_lock(store):
        schemas.check_folders(store)  # nothing swept or written through a link out
        schemas.sweep_staging(store)
        ms.sweep_fragment_leftovers(store)
        packed = schemas.is_packed(store)
        if packed:  # shards a killed writer left open: sealed, their torn tails cut
            recover_shards(store, schemas.open_store(store).recipe)
        try:
            before: pa.Table | None = schemas.read_manifest(store)
        except schemas.StoreError:
            before = None
        records = schemas.committed_records(store)
        table, failed_kept = rebuilt_manifest(records, before, packed=packed)
        rewritten = before is None or not table.equals(before) or bool(ms.fragment_paths(store))
        if rewritten:
            schemas.write_manifest(store, table)
    return RepairResult(
        committed=len(records),
        failed_kept=failed_kept,
        rewritten=rewritten,
        old_unreadable=before is None,
    )


def compact_store(store: Path) -> int:
    """Fold a store's manifest fragments into its base under the store's lock; returns
    how many fragments were folded (0: already compact, or a single-file store)."""
    store = store.resolve()
    schemas.open_store(store)
    with store_lock(store):
        schemas.check_folders(store)
        ms.sweep_fragment_leftovers(store)
        folded = len(ms.fragment_paths(store))
        if folded:
            ms.compact_manifest(store)
        return folded
