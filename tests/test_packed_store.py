"""Packed stores (format 4), through the store contract: clips appended to shards read
back as written (schemas, plain zarr, the trainer's reader); a writer killed with
SIGKILL mid-commit loses only clips the manifest never named; repair rebuilds the
manifest from the shards alone; damage and foreign files are refused in one line."""

from __future__ import annotations

import fcntl
import os
import shutil
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
import zarr
from frame_fixtures import _row

import schemas
from pipeline.ingest.manifest_book import repair_manifest
from schemas import manifest_store as ms
from schemas.packed_index import SHARD_ARRAYS, list_shards, shard_records
from schemas.packed_write import ShardWriter, recover_shards
from schemas.store_files import foreign_entries
from schemas.streams import CLIP_ARRAY_TABLE
from trainer.data.reader import ClipReader

RECIPE = schemas.Recipe(crop_size=16)
ROOT = Path(__file__).resolve().parents[1]


def _clip(i: int) -> tuple[dict[str, np.ndarray], dict]:
    """Clip ``i``'s arrays by shard path (frame labels and face_valid on some) and row."""
    rng = np.random.default_rng(i)
    frames = 5 + i % 4
    arrays = {
        "video": rng.integers(0, 255, (frames, 16, 16, 3), dtype=np.uint8),
        "audio": rng.standard_normal((frames, schemas.AUDIO_CHANNELS)).astype(np.float32),
    }
    if i % 2:
        arrays["face_valid"] = (rng.random(frames) > 0.3).astype(np.uint8)
    if i % 3 == 0:
        for name in schemas.FRAME_LABELS:
            arrays[f"labels/{name}"] = (rng.random(frames) > 0.5).astype(np.uint8)
    return arrays, _row(f"c{i:03d}", i, frames, RECIPE)


def _packed(store: Path, clips: int, target: int = 6000) -> list[dict]:
    """A packed store of ``clips`` clips in shards of ``target`` bytes; their records."""
    schemas.create_store(store, RECIPE, packed=True, shard_target_bytes=target)
    writer = ShardWriter(store, RECIPE, 1, target, durable=True)
    records = [writer.append(*_clip(i)) for i in range(clips)]
    writer.close()
    ms.write_fragment(store, schemas.rows_to_table(records, schemas.MANIFEST_SCHEMA), 1)
    return records


def _assert_reads_as_written(store: Path, i: int) -> None:
    arrays, row = _clip(i)
    clip_id = row["clip_id"]
    video, audio = schemas.open_clip(store, clip_id)
    assert np.array_equal(video, arrays["video"]) and np.array_equal(audio, arrays["audio"])
    valid = schemas.read_face_valid(store, clip_id)
    assert np.array_equal(valid, arrays.get("face_valid", np.ones(len(video), np.uint8)) != 0)
    labels = schemas.read_frame_labels(store, clip_id)
    if "labels/fake" in arrays:
        assert labels is not None and all(
            np.array_equal(labels[n], arrays[f"labels/{n}"]) for n in schemas.FRAME_LABELS
        )
    else:
        assert labels is None
    assert schemas.open_stream(store, clip_id, "landmarks") is None
    assert np.isnan(schemas.read_pose(store, clip_id)).all()


def test_every_stream_has_a_shard_bit_and_a_manifest_place() -> None:
    assert {a.path for a in CLIP_ARRAY_TABLE} <= set(SHARD_ARRAYS)
    assert {"shard", "shard_row", "shard_arrays"} <= set(schemas.MANIFEST_SCHEMA.names)


def test_packed_clips_read_as_written_by_schemas_zarr_and_the_trainer(tmp_path: Path) -> None:
    store = tmp_path / "store"
    records = _packed(store, 8)
    shards = list_shards(store)
    assert len(shards) > 1 and len(shards) < 8  # several clips a shard, several shards
    assert not (store / "clips").exists() and foreign_entries(store) == []
    for i in range(8):
        _assert_reads_as_written(store, i)
    # A sealed shard is a plain Zarr group: the clip's rows at the manifest's offset.
    for record in records:
        group = zarr.open_group(str(store / "shards" / record["shard"]), mode="r")
        rows = slice(record["shard_row"], record["shard_row"] + record["num_frames"])
        assert np.array_equal(group["video"][rows], schemas.open_clip(store, record["clip_id"])[0])
        assert group.attrs["mscct_shard"]["sealed"] is True
    assert [r["clip_id"] for r in schemas.committed_records(store)] == [
        r["clip_id"] for r in records
    ]
    reader = ClipReader(store, RECIPE, "video")
    for i in (0, 5, 7):
        arrays, row = _clip(i)
        frames, audio = reader.window(row["clip_id"], row["num_frames"], 1, 4)
        assert np.array_equal(frames["video"], arrays["video"][1:4]) and audio.shape == (3, 104)


def test_a_packed_store_keeps_its_format(tmp_path: Path) -> None:
    store = tmp_path / "store"
    schemas.create_store(store, RECIPE)  # format 3
    with pytest.raises(schemas.StoreError, match="convert"):
        schemas.create_store(store, RECIPE, packed=True)
    packed = tmp_path / "packed"
    schemas.create_store(packed, RECIPE, packed=True)
    info = schemas.create_store(packed, RECIPE)  # reopened: still packed
    assert info.format_version == 4 and info.clip_layout == "packed"


_KILLED_WRITER = """
import os, signal, sys
sys.path.insert(0, {tests!r})
import schemas
from schemas import manifest_store as ms
from schemas.packed_write import ShardWriter
import test_packed_store as t
store = {store!r}
schemas.create_store(store, t.RECIPE, packed=True, shard_target_bytes=1 << 30)
writer = ShardWriter(store, t.RECIPE, 1, 1 << 30, durable=True)
for i in range(6):
    record = writer.append(*t._clip(i))
    if i < 3:  # committed: the manifest names it
        ms.write_fragment(store, schemas.rows_to_table([record], schemas.MANIFEST_SCHEMA), i + 1)
shard = writer.shard
arrays, _ = t._clip(6)  # torn: rows half written, a journal line cut short
os.pwrite(shard.fds["video"], arrays["video"].tobytes()[:500], shard.rows * 768)
os.write(shard.journal, b'{{"clip_id": "c006", "shard_ro')
os.kill(os.getpid(), signal.SIGKILL)
"""


def test_sigkill_mid_commit_loses_only_the_torn_tail(tmp_path: Path) -> None:
    store = tmp_path / "store"
    code = _KILLED_WRITER.format(tests=str(ROOT / "tests"), store=str(store))
    proc = subprocess.run([sys.executable, "-c", textwrap.dedent(code)], cwd=ROOT, check=False)
    assert proc.returncode == -signal.SIGKILL
    (name,) = list_shards(store)
    assert (store / "shards" / name / "journal.jsonl").exists()  # left open
    for i in range(3):  # committed clips read while the shard is open
        _assert_reads_as_written(store, i)
    video = store / "shards" / name / "video" / "c.0.0.0.0"
    assert recover_shards(store, RECIPE) == 1
    rows = sum(_clip(i)[1]["num_frames"] for i in range(6))
    assert video.stat().st_size == rows * 768  # the torn tail is cut away
    assert [r["clip_id"] for r in shard_records(store, name)] == [f"c{i:03d}" for i in range(6)]
    assert not (store / "shards" / name / "journal.jsonl").exists()
    for i in range(3):
        _assert_reads_as_written(store, i)
    assert zarr.open_group(str(store / "shards" / name), mode="r")["video"].shape[0] == rows
    assert recover_shards(store, RECIPE) == 0  # idempotent


def test_a_writer_whose_shard_was_sealed_or_deleted_under_it_starts_another(
    tmp_path: Path,
) -> None:
    """A task still appending while the driver seals its worker's shards (a cancelled
    task, or an orphan of a killed driver) must not append to the sealed shard, nor to
    an empty one the seal deleted: each clip lands in a shard that holds it."""
    store = tmp_path / "s.zarr"
    schemas.create_store(store, RECIPE, packed=True, shard_target_bytes=1 << 30)
    writer = ShardWriter(store, RECIPE, 1, 1 << 30, durable=True)
    records = [writer.append(*_clip(0))]
    recover_shards(store, RECIPE)  # the driver seals the shard the writer holds open
    records.append(writer.append(*_clip(1)))
    assert records[1]["shard"] != records[0]["shard"]
    writer.close()
    empty = writer._locked_shard()  # opened, no clip in it yet: a seal deletes it
    fcntl.flock(empty.journal, fcntl.LOCK_UN)
    recover_shards(store, RECIPE)
    assert not empty.folder.exists()
    records.append(writer.append(*_clip(2)))
    writer.close()
    assert all((store / "shards" / r["shard"]).is_dir() for r in records)
    ms.write_fragment(store, schemas.rows_to_table(records, schemas.MANIFEST_SCHEMA), 1)
    for i in range(3):
        _assert_reads_as_written(store, i)


def test_repair_rebuilds_the_manifest_from_the_shards_alone(tmp_path: Path) -> None:
    store = tmp_path / "store"
    _packed(store, 6)
    ms.compact_manifest(store)
    before = schemas.read_manifest(store)
    (store / "manifest.parquet").unlink()
    result = repair_manifest(store)
    assert result.committed == 6 and result.old_unreadable
    assert schemas.read_manifest(store).equals(before)
    # A clip that failed since keeps its older copy in its shard: the failed row wins.
    failed = {**_clip(2)[1], "status": "failed", "num_frames": 0, "error": "gone"}
    ms.write_fragment(store, schemas.rows_to_table([failed], schemas.MANIFEST_SCHEMA), 9)
    repair_manifest(store)
    rows = {r["clip_id"]: r for r in schemas.read_manifest(store).to_pylist()}
    assert rows["c002"]["status"] == "failed" and rows["c001"]["status"] == "ok"


def test_a_damaged_shard_chunk_names_the_clip_its_shard_and_the_fix(tmp_path: Path) -> None:
    store = tmp_path / "store"
    records = _packed(store, 6)
    last = records[-1]
    chunk = store / "shards" / last["shard"] / "audio" / "c.0.0"
    os.truncate(chunk, chunk.stat().st_size - 8)
    with pytest.raises(schemas.StoreError) as caught:
        schemas.open_clip(store, last["clip_id"])
    message = str(caught.value)
    assert last["clip_id"] in message and last["shard"] in message and "repair" in message
    with pytest.raises(schemas.StoreError, match=last["shard"]):
        ClipReader(store, RECIPE, "video").window(last["clip_id"], last["num_frames"], 0, 2)
    # The fix: remove the shard, repair; its clips leave the manifest (an ingest redoes them).
    shutil.rmtree(store / "shards" / last["shard"])
    repair_manifest(store)
    ids = set(schemas.read_manifest(store).column("clip_id").to_pylist())
    assert last["clip_id"] not in ids and records[0]["clip_id"] in ids
    _assert_reads_as_written(store, 0)


def test_foreign_files_and_links_in_shards_are_named_and_refused(tmp_path: Path) -> None:
    store = tmp_path / "store"
    records = _packed(store, 3)
    shard = store / "shards" / records[0]["shard"]
    (shard / "notes.txt").write_text("mine")
    (store / "shards" / "README").write_text("mine")
    assert sorted(foreign_entries(store)) == [
        "shards/README",
        f"shards/{records[0]['shard']}/notes.txt",
    ]
    with pytest.raises(schemas.StoreError, match="holds files a store does not write"):
        schemas.check_store_target(store, overwrite=True)
    outside = tmp_path / "outside"
    shutil.copytree(shard, outside)
    shutil.rmtree(shard)
    shard.symlink_to(outside)
    with pytest.raises(schemas.StoreError, match="not a folder of the store's own"):
        repair_manifest(store)
    assert (outside / "notes.txt").read_text() == "mine"


ZSTD = schemas.Recipe(crop_size=16, layout="zstd")


def _long_clip(i: int) -> tuple[dict[str, np.ndarray], dict]:
    """A clip of 30 to 130 frames: one to three inner chunks of a zstd shard."""
    rng = np.random.default_rng(100 + i)
    frames = 30 + 37 * i
    arrays = {
        "video": rng.integers(0, 255, (frames, 16, 16, 3), dtype=np.uint8),
        "audio": rng.standard_normal((frames, schemas.AUDIO_CHANNELS)).astype(np.float32),
        "face_valid": (rng.random(frames) > 0.3).astype(np.uint8),
    }
    return arrays, _row(f"z{i:03d}", i, frames, ZSTD)


def test_zstd_packed_clips_read_as_written_and_a_torn_tail_is_cut(tmp_path: Path) -> None:
    store = tmp_path / "store"
    schemas.create_store(store, ZSTD, packed=True, shard_target_bytes=200_000)
    writer = ShardWriter(store, ZSTD, 1, 200_000, durable=True)
    records = [writer.append(*_long_clip(i)) for i in range(4)]
    assert all(r["shard_row"] % 50 == 0 for r in records)  # clips start on a chunk
    ms.write_fragment(store, schemas.rows_to_table(records, schemas.MANIFEST_SCHEMA), 1)
    reader = ClipReader(store, ZSTD, "video")

    def check() -> None:
        for i, record in enumerate(records):
            arrays, _ = _long_clip(i)
            video, audio = schemas.open_clip(store, record["clip_id"])
            assert np.array_equal(video, arrays["video"]) and np.array_equal(audio, arrays["audio"])
            valid = schemas.read_face_valid(store, record["clip_id"])
            assert np.array_equal(valid, arrays["face_valid"] != 0)
            start = max(0, len(video) - 60)  # across a chunk boundary where the clip has one
            frames, _ = reader.window(record["clip_id"], len(video), start, len(video))
            assert np.array_equal(frames["video"], arrays["video"][start:])

    check()  # the last shard still open: chunk ranges from its journal
    shard = writer.shard
    assert shard is not None
    fd = shard.fds["video"]  # a kill mid-append: bytes past the last clip
    os.pwrite(fd, b"torn", os.fstat(fd).st_size)
    os.write(shard.journal, b'{"clip_id": "z9')
    shard.close()
    writer.shard = None
    assert recover_shards(store, ZSTD) >= 1
    reader = ClipReader(store, ZSTD, "video")  # the index of the sealed shard now
    check()
    for record in records:  # plain zarr reads the sealed shards (sharding codec)
        group = zarr.open_group(str(store / "shards" / record["shard"]), mode="r")
        rows = slice(record["shard_row"], record["shard_row"] + record["num_frames"])
        assert np.array_equal(group["video"][rows], schemas.open_clip(store, record["clip_id"])[0])
    chunk = store / "shards" / records[0]["shard"] / "video" / "c.0.0.0.0"
    data = bytearray(chunk.read_bytes())
    data[40] ^= 0xFF  # a flipped byte in the first clip's first inner chunk
    chunk.write_bytes(bytes(data))
    with pytest.raises(schemas.StoreError, match=records[0]["shard"]):
        schemas.open_clip(store, records[0]["clip_id"])


def test_a_manifest_placing_a_clip_outside_the_shards_is_refused(tmp_path: Path) -> None:
    store = tmp_path / "store"
    records = _packed(store, 2)
    hostile = {**records[0], "shard": "../../outside"}
    ms.write_fragment(store, schemas.rows_to_table([hostile], schemas.MANIFEST_SCHEMA), 5)
    with pytest.raises(schemas.StoreError, match="no shard holds"):
        schemas.open_clip(store, records[0]["clip_id"])
    negative = {**records[0], "shard_row": -5}
    ms.write_fragment(store, schemas.rows_to_table([negative], schemas.MANIFEST_SCHEMA), 6)
    with pytest.raises(schemas.StoreError, match="no shard holds"):
        ClipReader(store, RECIPE, "video").window(records[0]["clip_id"], 5, 0, 2)
    _assert_reads_as_written(store, 1)
