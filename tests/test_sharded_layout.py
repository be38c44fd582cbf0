"""Store format 3: sharded ``clips/<h0>/<h1>/<clip_id>/``, and older flat stores kept flat."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
from old_schemas import schemas_of_format
from trainer_fixtures import build_store

import schemas
from schemas.layout import (
    CLIP_LAYOUT_KEY,
    LAYOUT_FLAT,
    LAYOUT_SHARDED,
    STAGING_DIR,
    clip_dir,
    clip_layout,
    shard_of,
)
from schemas.readers import raw_chunk_path
from trainer.data.dataset import WindowDataset, split_clips
from trainer.data.reader import ClipReader

RECIPE = schemas.Recipe(crop_size=16)


def _tensors(t: int = 3, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    video = rng.integers(0, 256, (t, 16, 16, 3), dtype=np.uint8)
    audio = rng.standard_normal((t, schemas.AUDIO_CHANNELS)).astype(np.float32)
    return video, audio


def _write(store: Path, clip_id: str, seed: int = 0, *, durable: bool = False) -> np.ndarray:
    video, audio = _tensors(seed=seed)
    record = {"clip_id": clip_id, "seed": seed}
    schemas.write_clip(store, clip_id, video, audio, record, RECIPE, durable=durable)
    return video


def _root_meta(store: Path) -> dict:
    return json.loads((store / "zarr.json").read_text())["attributes"]["mscct"]


# --------------------------------------------------------------------------- new stores


def test_a_new_store_is_format_3_and_sharded(tmp_path: Path) -> None:
    store = tmp_path / "s"
    info = schemas.create_store(store, RECIPE)
    assert schemas.FORMAT_VERSION == 3 and info.format_version == 3
    assert info.clip_layout == LAYOUT_SHARDED
    meta = _root_meta(store)
    assert meta[CLIP_LAYOUT_KEY] == "sharded" and meta["manifest"] == "fragments"
    video = _write(store, "clip00042")
    digest = hashlib.sha256(b"clip00042").hexdigest()
    folder = store / "clips" / digest[:2] / digest[2:4] / "clip00042"
    assert clip_dir(store, "clip00042") == folder and (folder / "zarr.json").is_file()
    assert not (store / "clips" / "clip00042").exists()
    np.testing.assert_array_equal(schemas.open_clip(store, "clip00042")[0], video)
    root = os.path.realpath(store)
    assert raw_chunk_path(root, "clip00042", "video", 4) == f"{folder}/video/c/0/0/0/0"
    assert schemas.read_clip_record(store, "clip00042") == {"clip_id": "clip00042", "seed": 0}


def test_many_clips_round_trip_and_no_folder_is_crowded(tmp_path: Path) -> None:
    store = tmp_path / "s"
    schemas.create_store(store, RECIPE)
    ids = [f"c{i:04d}" for i in range(300)]  # more than 256: a flat clips/ would fail below
    for number, clip_id in enumerate(ids):
        _write(store, clip_id, seed=number)
    per_leaf = Counter(shard_of(c) for c in ids)
    for dirpath, dirnames, filenames in os.walk(store / "clips"):
        depth = len(Path(dirpath).relative_to(store / "clips").parts)
        if depth < 3:  # clips/, clips/h0/, clips/h0/h1/: never more than 256 + a leaf's clips
            assert len(dirnames) + len(filenames) <= 256 + max(per_leaf.values()), dirpath
        if depth == 2:
            assert sorted(dirnames) == sorted(
                c for c in ids if shard_of(c) == Path(dirpath).parts[-2:]
            )
    records = schemas.committed_records(store)
    assert [r["clip_id"] for r in records] == ids  # sorted by clip id, every one
    assert [r["seed"] for r in records] == list(range(300))
    # Redo one (replaced whole), remove two: the listing follows, and shard folders stay.
    _write(store, ids[7], seed=1000)
    for clip_id in ids[:2]:
        schemas.remove_clip(store, clip_id)
        assert not clip_dir(store, clip_id).exists() and clip_dir(store, clip_id).parent.is_dir()
        assert schemas.read_clip_record(store, clip_id) is None
    records = schemas.committed_records(store)
    assert [r["clip_id"] for r in records] == ids[2:]
    assert records[5] == {"clip_id": ids[7], "seed": 1000}
    assert schemas.sweep_staging(store) == 0 and not any((store / STAGING_DIR).iterdir())


def test_hashed_shards_spread_evenly() -> None:
    """Sequential ids land evenly over the 256 first-level folders (the hash, not the
    name, picks the folder), which is what keeps 2 M clips at ~30 per leaf."""
    counts = Counter(shard_of(f"clip{i:07d}")[0] for i in range(25_600))
    assert len(counts) == 256 and min(counts.values()) > 50 and max(counts.values()) < 150


def test_a_commit_into_an_existing_shard_fsyncs_only_its_folder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = tmp_path / "s"
    schemas.create_store(store, RECIPE)
    _write(store, "a")
    twin = next(f"b{i}" for i in range(1_000_000) if shard_of(f"b{i}") == shard_of("a"))
    synced: list[str] = []
    real = os.fsync

    def fsync(fd: int) -> None:
        synced.append(os.readlink(f"/proc/self/fd/{fd}"))
        real(fd)

    monkeypatch.setattr(os, "fsync", fsync)
    _write(store, twin, durable=True)
    after = [p for p in synced if f"/{STAGING_DIR}/" not in p]
    assert after == [str(clip_dir(store, twin).parent.resolve())]


def test_a_misplaced_or_hidden_folder_is_not_a_committed_clip(tmp_path: Path) -> None:
    store = tmp_path / "s"
    schemas.create_store(store, RECIPE)
    _write(store, "good")
    _write(store, "moved")
    wrong = store / "clips" / "00" / "00"
    wrong.mkdir(parents=True, exist_ok=True)
    if shard_of("moved") != ("00", "00"):
        shutil.move(clip_dir(store, "moved"), wrong / "moved")
    shutil.copytree(clip_dir(store, "good"), clip_dir(store, "good").parent / ".good")
    assert [r["clip_id"] for r in schemas.committed_records(store)] == ["good"]


@pytest.mark.parametrize("bad", ["../x", "..", "a/b", "/etc", ".hidden", ""])
def test_a_clip_id_cannot_leave_clips(tmp_path: Path, bad: str) -> None:
    store = tmp_path / "s"
    schemas.create_store(store, RECIPE)
    with pytest.raises(schemas.StoreError, match="invalid clip id"):
        clip_dir(store, bad)
    with pytest.raises(schemas.StoreError, match="invalid clip id"):
        raw_chunk_path(str(store), bad, "video", 4)
    with pytest.raises(schemas.StoreError, match="invalid clip id"):
        _write(store, bad)
    assert sorted(p.name for p in (store / "clips").iterdir()) == ["zarr.json"]
    assert not (tmp_path / "x").exists()


def test_the_layout_is_learnt_afresh_after_overwrite(tmp_path: Path) -> None:
    """The layout is cached per resolved store path: a relative path and a link agree,
    and ``create_store(overwrite=True)`` forgets what was cached."""
    store = tmp_path / "s"
    schemas.create_store(store, RECIPE)
    meta_path = store / "zarr.json"
    meta = json.loads(meta_path.read_text())
    del meta["attributes"]["mscct"][CLIP_LAYOUT_KEY]  # what a version-2 store records
    meta_path.write_text(json.dumps(meta))
    (tmp_path / "link").symlink_to(store)
    assert clip_layout(store) == clip_layout(tmp_path / "link") == LAYOUT_FLAT
    assert clip_dir(store, "c") == store / "clips" / "c"
    schemas.create_store(store, RECIPE, overwrite=True)
    assert clip_layout(tmp_path / "link") == LAYOUT_SHARDED
    assert clip_dir(store, "c") == store / "clips" / "/".join(shard_of("c")) / "c"
    meta["attributes"]["mscct"][CLIP_LAYOUT_KEY] = "tree"
    other = tmp_path / "other"
    shutil.copytree(store, other)
    (other / "zarr.json").write_text(json.dumps(meta))
    with pytest.raises(schemas.StoreError, match="clip layout 'tree'"):
        schemas.open_store(other)
    with pytest.raises(schemas.StoreError, match="clip layout 'tree'"):
        clip_dir(other, "c")


# --------------------------------------------------------------------------- the trainer


def test_the_trainer_reads_a_sharded_store(tmp_path: Path) -> None:
    store = build_store(
        tmp_path / "s", crop_size=16, frames=12, counts=dict.fromkeys(schemas.SPLITS, 1)
    )
    assert schemas.open_store(store).clip_layout == LAYOUT_SHARDED
    assert all(len(p.name) == 2 for p in (store / "clips").iterdir() if p.is_dir())
    train = split_clips(store)["train"]
    item = WindowDataset(store, train, 8, train=False)[0]
    assert tuple(item["video"].shape) == (8, 16, 16, 3)
    assert tuple(item["audio"].shape) == (8, schemas.AUDIO_CHANNELS)
    reader = ClipReader(store, schemas.open_store(store).recipe)
    frames, _ = reader.window(train[0].clip_id, 12, 2, 10)
    video, _ = schemas.open_clip(store, train[0].clip_id)
    np.testing.assert_array_equal(frames["video"], video[2:10])
    chunk = reader.seen[train[0].clip_id].chunks[0]  # type: ignore[index]
    assert chunk.path.startswith(str(clip_dir(os.path.realpath(store), train[0].clip_id)))


# --------------------------------------------------------------------------- old stores

_FLAT_WRITER = """
import sys
import numpy as np
import schemas
assert schemas.__file__.startswith(sys.argv[2]), schemas.__file__
recipe = schemas.Recipe(crop_size=16)
schemas.create_store(sys.argv[1], recipe)
for number, clip_id in enumerate(("old1", "old2")):
    video = np.full((3, 16, 16, 3), number + 1, np.uint8)
    audio = np.ones((3, schemas.AUDIO_CHANNELS), np.float32)
    schemas.write_clip(sys.argv[1], clip_id, video, audio, {"clip_id": clip_id}, recipe)
"""

_FLAT_READER = """
import sys
import schemas
print(",".join(r["clip_id"] for r in schemas.committed_records(sys.argv[1])))
print(int(schemas.open_clip(sys.argv[1], "new")[0][0, 0, 0, 0]))
"""


def _run_old(code: str, old: Path, *args: object) -> str:
    return subprocess.run(
        [sys.executable, "-c", code, *map(str, args)],
        env={**os.environ, "PYTHONPATH": str(old)},
        cwd=old.parent,
        capture_output=True,
        text=True,
        check=True,
    ).stdout


def test_a_format_2_store_reads_and_resumes_flat(tmp_path: Path) -> None:
    old = schemas_of_format(2, tmp_path / "old_code")
    store = tmp_path / "store"
    _run_old(_FLAT_WRITER, old, store, old)
    root_before = (store / "zarr.json").read_bytes()
    info = schemas.open_store(store)
    assert info.format_version == 2 and info.clip_layout == LAYOUT_FLAT
    assert clip_dir(store, "old1") == store / "clips" / "old1"
    assert int(schemas.open_clip(store, "old2")[0][0, 0, 0, 0]) == 2
    assert schemas.read_frame_labels(store, "old1") is None
    assert [r["clip_id"] for r in schemas.committed_records(store)] == ["old1", "old2"]
    reader = ClipReader(store, info.recipe)
    frames, _ = reader.window("old1", 3, 0, 3)
    assert int(frames["video"].max()) == 1
    # A resume keeps the store as it is: format 2, flat, root metadata untouched. Its
    # recipe predates the decoder field: its clips came from an ffmpeg process.
    resumed = schemas.Recipe(crop_size=16, decoder="ffmpeg")
    assert info.recipe == resumed
    assert schemas.create_store(store, resumed).format_version == 2
    schemas.write_clip(
        store,
        "new",
        np.full((3, 16, 16, 3), 9, np.uint8),
        _tensors()[1],
        {"clip_id": "new"},
        resumed,
    )
    schemas.remove_clip(store, "old2")
    assert (store / "zarr.json").read_bytes() == root_before
    assert sorted(p.name for p in (store / "clips").iterdir()) == ["new", "old1", "zarr.json"]
    assert [r["clip_id"] for r in schemas.committed_records(store)] == ["new", "old1"]
    # ... and the software that made it still reads everything in it.
    assert _run_old(_FLAT_READER, old, store).split() == ["new,old1", "9"]
