"""The store contract: round trips through the same helpers both halves use, and refusals."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest

import schemas
from schemas.store import STAGING_DIR


def _manifest_row(clip_id: str, category: str = "RARV", status: str = "ok") -> dict:
    labels = schemas.labels_for(category)
    return {
        "clip_id": clip_id,
        "path": f"RealVideo-RealAudio/African/men/id00001/{clip_id}.mp4",
        "category": category,
        "audio_label": labels.audio,
        "video_label": labels.video,
        "label": labels.overall,
        "identity": "id00001",
        "method": "real",
        "num_frames": 3 if status == "ok" else 0,
        "source_fingerprint": "f",
        "recipe_hash": "r",
        "status": status,
        "error": "" if status == "ok" else "no face detected",
    }


@pytest.fixture()
def recipe() -> schemas.Recipe:
    return schemas.Recipe(crop_size=16)


@pytest.fixture()
def store(tmp_path: Path, recipe: schemas.Recipe) -> Path:
    path = tmp_path / "store"
    schemas.create_store(path, recipe)
    return path


def _tensors(t: int = 3, size: int = 16, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    video = rng.integers(0, 256, (t, size, size, 3), dtype=np.uint8)
    audio = rng.standard_normal((t, schemas.AUDIO_CHANNELS)).astype(np.float32)
    return video, audio


def test_labels_follow_fakeavceleb() -> None:
    assert schemas.labels_for("A") == schemas.Labels(audio=0, video=0, overall=0, pair=1)
    assert schemas.labels_for("FARV") == schemas.Labels(audio=1, video=0, overall=1, pair=0)
    assert schemas.labels_for("C") == schemas.Labels(audio=0, video=1, overall=1, pair=0)
    assert schemas.labels_for("FAFV") == schemas.Labels(audio=1, video=1, overall=1, pair=0)
    with pytest.raises(ValueError, match="unknown category"):
        schemas.labels_for("E")


def test_clip_round_trip_is_zero_copy(store: Path, recipe: schemas.Recipe) -> None:
    video, audio = _tensors(t=5)
    schemas.write_clip(store, "clip_a", video, audio, {"clip_id": "clip_a"}, recipe)
    got_video, got_audio = schemas.open_clip(store, "clip_a")
    assert isinstance(got_video, np.memmap) and isinstance(got_audio, np.memmap)
    assert not got_video.flags.writeable
    np.testing.assert_array_equal(got_video, video)
    np.testing.assert_array_equal(got_audio, audio)
    assert got_audio.dtype == np.float32 and got_video.dtype == np.uint8
    assert schemas.read_clip_record(store, "clip_a") == {"clip_id": "clip_a"}


def test_all_zero_clip_is_still_on_disk(store: Path, recipe: schemas.Recipe) -> None:
    # Zarr skips chunks equal to the fill value unless told otherwise; memmap needs the file.
    video = np.zeros((2, 16, 16, 3), np.uint8)
    audio = np.zeros((2, schemas.AUDIO_CHANNELS), np.float32)
    schemas.write_clip(store, "zeros", video, audio, {}, recipe)
    got_video, _ = schemas.open_clip(store, "zeros")
    assert isinstance(got_video, np.memmap) and got_video.shape == video.shape


def test_compressed_layout_reads_the_same(tmp_path: Path) -> None:
    recipe = schemas.Recipe(crop_size=16, layout="zstd")
    schemas.create_store(tmp_path / "z", recipe)
    video, audio = _tensors(t=30)
    schemas.write_clip(tmp_path / "z", "c", video, audio, {}, recipe)
    got_video, got_audio = schemas.open_clip(tmp_path / "z", "c")
    assert not isinstance(got_video, np.memmap)
    np.testing.assert_array_equal(got_video, video)
    np.testing.assert_array_equal(got_audio, audio)


def test_store_is_a_plain_zarr_group(store: Path, recipe: schemas.Recipe) -> None:
    import zarr

    video, audio = _tensors()
    schemas.write_clip(store, "c1", video, audio, {"clip_id": "c1"}, recipe)
    root = zarr.open_group(str(store), mode="r")
    assert root.attrs["mscct"]["format_version"] == schemas.FORMAT_VERSION
    np.testing.assert_array_equal(root["clips/c1/video"][...], video)


def test_rewriting_a_clip_replaces_it_whole(store: Path, recipe: schemas.Recipe) -> None:
    schemas.write_clip(store, "c", *_tensors(t=3, seed=1), {"v": 1}, recipe)
    video, audio = _tensors(t=7, seed=2)
    schemas.write_clip(store, "c", video, audio, {"v": 2}, recipe)
    got_video, _ = schemas.open_clip(store, "c")
    np.testing.assert_array_equal(got_video, video)
    assert schemas.committed_records(store) == [{"v": 2}]
    assert list((store / STAGING_DIR).iterdir()) == []


def test_failed_write_leaves_nothing_visible(store: Path, recipe: schemas.Recipe) -> None:
    video, audio = _tensors(t=3)
    with pytest.raises(ValueError, match="share T"):
        schemas.write_clip(store, "bad", video, audio[:2], {}, recipe)
    assert schemas.read_clip_record(store, "bad") is None
    assert list((store / STAGING_DIR).iterdir()) == []
    with pytest.raises(schemas.StoreError, match="not in store"):
        schemas.open_clip(store, "bad")


def test_clip_ids_cannot_escape_the_store(store: Path, recipe: schemas.Recipe) -> None:
    for bad in ("../x", "a/b", ".hidden", ""):
        with pytest.raises(schemas.StoreError, match="invalid clip id"):
            schemas.write_clip(store, bad, *_tensors(), {}, recipe)


def test_manifest_round_trip_and_validation(store: Path) -> None:
    rows = [_manifest_row("a"), _manifest_row("b", "FAFV", status="failed")]
    schemas.write_manifest(store, schemas.rows_to_table(rows, schemas.MANIFEST_SCHEMA))
    table = schemas.read_manifest(store)
    assert table.column("clip_id").to_pylist() == ["a", "b"]
    assert table.column("label").to_pylist() == [0, 1]

    missing = schemas.rows_to_table(rows, schemas.MANIFEST_SCHEMA).drop_columns(["identity"])
    with pytest.raises(schemas.SchemaError, match="missing column.*identity"):
        schemas.write_manifest(store, missing)
    wrong = schemas.rows_to_table(rows, schemas.MANIFEST_SCHEMA)
    wrong = wrong.set_column(
        wrong.schema.get_field_index("num_frames"),
        "num_frames",
        pa.array(["3", "0"]),
    )
    with pytest.raises(schemas.SchemaError, match="'num_frames' has type string"):
        schemas.write_manifest(store, wrong)


def test_split_round_trip_names_and_overwrite(store: Path) -> None:
    table = pa.table(
        {
            "clip_id": ["a", "b"],
            "split": ["train", "test"],
            "category": ["RARV", "FARV"],
            "identity": ["id1", "id2"],
            "label": pa.array([0, 1], pa.int8()),
        }
    )
    schemas.write_split(store, "default", table, {"seed": 3})
    schemas.write_split(store, "fold0", table, {"seed": 4})
    assert schemas.read_split(store).column("split").to_pylist() == ["train", "test"]
    assert schemas.split_params(store, "fold0") == {"seed": 4}
    assert schemas.list_splits(store) == ["default", "fold0"]
    with pytest.raises(schemas.StoreError, match="already exists"):
        schemas.write_split(store, "default", table, {})
    with pytest.raises(schemas.StoreError, match="no split 'nope'.*default, fold0"):
        schemas.read_split(store, "nope")
    bad = table.set_column(1, "split", pa.array(["train", "holdout"]))
    with pytest.raises(schemas.SchemaError, match="holdout"):
        schemas.write_split(store, "x", bad, {})


def test_other_format_version_is_refused(store: Path) -> None:
    meta_path = store / "zarr.json"
    meta = json.loads(meta_path.read_text())
    meta["attributes"]["mscct"]["format_version"] = 99
    meta_path.write_text(json.dumps(meta))
    with pytest.raises(schemas.StoreError, match="format version 99"):
        schemas.open_store(store)
    with pytest.raises(schemas.StoreError, match="format version 99"):
        schemas.read_manifest(store)


def test_other_recipe_is_refused(store: Path) -> None:
    other = schemas.Recipe(crop_size=16, features="fbank")
    with pytest.raises(schemas.StoreError, match="features: 'mfcc' != 'fbank'"):
        schemas.open_store(store, recipe=other)
    with pytest.raises(schemas.StoreError, match="another recipe.*--overwrite"):
        schemas.create_store(store, other)
    schemas.create_store(store, other, overwrite=True)
    assert schemas.open_store(store).recipe == other


def test_non_store_directories_are_never_deleted(tmp_path: Path) -> None:
    precious = tmp_path / "data"
    precious.mkdir()
    (precious / "keep.txt").write_text("x")
    with pytest.raises(schemas.StoreError, match="not a store"):
        schemas.create_store(precious, schemas.Recipe(), overwrite=True)
    assert (precious / "keep.txt").exists()
    with pytest.raises(schemas.StoreError, match="no store"):
        schemas.open_store(tmp_path / "absent")


def test_store_fingerprint_tracks_content(store: Path) -> None:
    schemas.write_manifest(
        store, schemas.rows_to_table([_manifest_row("a")], schemas.MANIFEST_SCHEMA)
    )
    first = schemas.store_fingerprint(store)
    assert first == schemas.store_fingerprint(store)
    rows = [_manifest_row("a"), _manifest_row("b")]
    schemas.write_manifest(store, schemas.rows_to_table(rows, schemas.MANIFEST_SCHEMA))
    assert schemas.store_fingerprint(store) != first
