"""Resume from the manifest: what a rerun skips is decided without opening clip metadata.

The book-level tests commit tiny real clips (``schemas.write_clip``); the ingest-level
ones run the real CLI on hard-linked copies of the synthetic clips.
"""

from __future__ import annotations

import json
import os
import signal
import time
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
from cli_helpers import ingest_json, start_ingest
from store_checks import assert_every_clip_once

import schemas
from pipeline.datasets import ClipSource
from pipeline.ingest.driver import base_record
from pipeline.ingest.manifest_book import ManifestBook
from schemas import manifest_store as ms

RECIPE = schemas.Recipe(crop_size=16)
HEADER = "source,target1,target2,method,category,type,race,gender,path,\n"


def _commit(store: Path, source: Path, name: str) -> tuple[ClipSource, dict]:
    """A tiny real clip committed from ``source`` (its record as a task makes it)."""
    clip = ClipSource(name, source.name, "RARV", "RealVideo-RealAudio", "id00001", "real")
    info = source.stat()
    record = base_record(clip, "f" * 16, RECIPE.hash())
    record.update(
        status="ok", num_frames=2, source_size=info.st_size, source_mtime_ns=info.st_mtime_ns
    )
    video = np.zeros((2, 16, 16, 3), np.uint8)
    schemas.write_clip(
        store, name, video, np.zeros((2, 104), np.float32), record, RECIPE, durable=False
    )
    return clip, record


def _source(tmp_path: Path, name: str = "a.mp4") -> Path:
    path = tmp_path / name
    path.write_bytes(b"not really a video, only its size and mtime count")
    return path


def test_the_decision_comes_from_the_manifest_and_verify_reads_the_clip(tmp_path: Path) -> None:
    store = tmp_path / "store"
    schemas.create_store(store, RECIPE)
    source = _source(tmp_path)
    book = ManifestBook(store, RECIPE.hash(), durable=False)
    clip, record = _commit(store, source, "c1")
    book.add(record)
    book.flush(final=True)
    assert ms.fragment_paths(store) == []  # the final flush compacted
    # The clip's metadata is gone; its folder is not: the manifest alone decides.
    meta = schemas.layout.clip_dir(store, "c1") / "zarr.json"
    meta.rename(meta.with_name("zarr.json.away"))
    rerun = ManifestBook(store, RECIPE.hash(), durable=False)
    assert rerun.is_current(clip, source)
    assert not rerun.is_current(clip, source, verify=True)  # the record is read, and missing
    os.utime(source, ns=(1, 1))
    assert not rerun.is_current(clip, source)  # another mtime: redo


def test_a_missing_clip_folder_or_changed_labels_redo_the_clip(tmp_path: Path) -> None:
    store = tmp_path / "store"
    schemas.create_store(store, RECIPE)
    source = _source(tmp_path)
    book = ManifestBook(store, RECIPE.hash(), durable=False)
    for name in ("c1", "c2"):
        book.add(_commit(store, source, name)[1])
    book.flush()
    assert len(ms.fragment_paths(store)) == 1  # a periodic flush appends one fragment
    book.flush(final=True)
    clip = ClipSource("c1", source.name, "RARV", "RealVideo-RealAudio", "id00001", "real")
    relabelled = ClipSource("c2", source.name, "FAFV", "FakeVideo-FakeAudio", "id00001", "x")
    schemas.remove_clip(store, "c1", durable=False)
    rerun = ManifestBook(store, RECIPE.hash(), durable=False)
    assert not rerun.is_current(clip, source)
    assert not rerun.is_current(relabelled, source)
    assert not ManifestBook(store, "another-recipe", durable=False).is_current(relabelled, source)


def _make_old_store(store: Path) -> None:
    """Turn a new store into what format 2 wrote: flat clips/, one manifest.parquet."""
    meta_path = store / "zarr.json"
    meta = json.loads(meta_path.read_text())
    mscct = meta["attributes"]["mscct"]
    mscct.pop("manifest", None)
    mscct.pop("clip_layout", None)
    mscct["format_version"] = 2
    meta_path.write_text(json.dumps(meta))
    schemas.layout.forget_layout(store)


def test_an_old_single_file_store_reads_and_resumes(tmp_path: Path) -> None:
    store = tmp_path / "store"
    schemas.create_store(store, RECIPE)
    _make_old_store(store)
    assert schemas.manifest_mode(store) == "single"
    source = _source(tmp_path)
    clip, record = _commit(store, source, "c1")
    assert (store / "clips" / "c1" / "zarr.json").exists()  # flat, as format 2
    old = schemas.rows_to_table([record], schemas.MANIFEST_SCHEMA)
    old = old.drop_columns(["source_size", "source_mtime_ns"])  # a format-2 manifest
    pq.write_table(old, store / "manifest.parquet")
    assert schemas.read_manifest(store).column("source_size").null_count == 1

    book = ManifestBook(store, RECIPE.hash(), durable=False)  # falls back to the records
    assert book.is_current(clip, source)
    book.flush(final=True)  # written once more, whole, with the new columns
    assert not (store / "manifest.d").exists()
    table = pq.read_table(store / "manifest.parquet")
    assert table.column("source_size").to_pylist() == [source.stat().st_size]
    before = (store / "manifest.parquet").read_bytes()
    again = ManifestBook(store, RECIPE.hash(), durable=False)
    assert again.is_current(clip, source)
    other = _commit(store, _source(tmp_path, "b.mp4"), "c2")[1]
    again.add(other)
    again.flush()  # a single-file store: the whole file, rewritten
    assert not (store / "manifest.d").exists()
    assert (store / "manifest.parquet").read_bytes() != before
    assert schemas.read_manifest(store).column("clip_id").to_pylist() == ["c1", "c2"]


# --------------------------------------------------------------------------- real ingests


def _linked_tree(synth_root: Path, dest: Path, copies: int) -> Path:
    """A FakeAVCeleb tree of ``copies`` hard links of each of the first 2 synthetic clips."""
    root = dest / "FakeAVCeleb_v1.2"
    rows = (synth_root / "meta_data.csv").read_text().splitlines()[1:3]
    lines = []
    for line in rows:
        fields = line.split(",")
        folder = Path(*fields[9].split("/")[1:])
        (root / folder).mkdir(parents=True, exist_ok=True)
        for k in range(copies):
            name = f"k{k:03d}_{fields[8]}"
            os.link(synth_root / folder / fields[8], root / folder / name)
            lines.append(",".join([*fields[:8], name, fields[9]]))
    (root / "meta_data.csv").write_text(HEADER + "".join(k + "\n" for k in lines))
    return root


def test_a_rerun_skips_a_clip_whose_metadata_is_gone_unless_verify(
    synth_root: Path, tmp_path: Path
) -> None:
    root = _linked_tree(synth_root, tmp_path / "data", copies=1)
    store = tmp_path / "store"
    ingest_json(root, "--store", store)
    clip_id = schemas.read_manifest(store).column("clip_id")[0].as_py()
    meta = schemas.layout.clip_dir(store, clip_id) / "zarr.json"
    meta.rename(meta.with_name("zarr.json.away"))
    _, trusted = ingest_json(root, "--store", store)
    assert trusted["submitted"] == 0 and trusted["skipped"] == 2
    _, verified = ingest_json(root, "--store", store, "--verify")
    assert verified["submitted"] == 1 and verified["skipped"] == 1
    assert schemas.read_clip_record(store, clip_id) is not None


def test_a_resumed_ingest_after_sigkill_commits_every_clip_once(
    synth_root: Path, tmp_path: Path
) -> None:
    """SIGKILL at about half-way, while fragments are being appended, then a rerun.

    24 clips (12 links of each of 2 synthetic clips), not thousands: on a shared
    2-core machine that is what keeps the test short while the killed run still
    leaves several fragments behind.
    """
    total = 24
    root = _linked_tree(synth_root, tmp_path / "data", copies=total // 2)
    store = tmp_path / "store"
    proc = start_ingest(root, store, "--workers", "1")
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline and proc.poll() is None:
        # Killed once several fragments are down: some clips are in the manifest, and
        # (between two flushes) some are committed but not yet in it.
        if len(ms.fragment_paths(store)) >= 2:
            break
        time.sleep(0.2)
    assert proc.poll() is None, "ingest finished before it could be killed"
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    fragments = ms.fragment_paths(store)
    assert len(fragments) >= 2
    committed = {r["clip_id"] for r in schemas.committed_records(store)}
    seen = schemas.read_manifest(store)  # reads, naming only committed clips
    assert set(seen.column("clip_id").to_pylist()) <= committed

    _, summary = ingest_json(root, "--store", store)
    # Every clip committed before the kill is kept, those the manifest missed included
    # (a worker may still commit one after the driver's death: hence >=).
    assert summary["skipped"] >= len(committed)
    assert summary["submitted"] + summary["skipped"] == total and summary["failed"] == 0
    assert_every_clip_once(store, total)
    assert ms.fragment_paths(store) == []  # the rerun compacted
