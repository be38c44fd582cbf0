"""The store contract: round trips through the same helpers both halves use, and refusals."""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest

import schemas
from schemas.layout import STAGING_DIR, clip_dir


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
    key = clip_dir(store, "c1").relative_to(store).as_posix()  # clips/<h0>/<h1>/c1
    np.testing.assert_array_equal(root[f"{key}/video"][...], video)


@pytest.mark.parametrize("layout", ["raw", "zstd"])
def test_a_clip_is_the_files_zarr_itself_writes(tmp_path: Path, layout: str) -> None:
    """write_clip encodes in memory and writes the files itself: the same bytes, file for
    file, as zarr's own folder store makes of the same group (arrays, labels, record)."""
    import zarr

    recipe = schemas.Recipe(crop_size=16, layout=layout, landmarks=True)
    schemas.create_store(tmp_path / "s", recipe)
    video, audio = _tensors(t=60)
    rng = np.random.default_rng(1)
    extra = {
        "face_boxes": rng.random((60, 4), dtype=np.float32),
        "landmarks": rng.random((60, 68, 2)).astype(np.float16),
    }
    labels = {name: (rng.random(60) > 0.5).astype(np.uint8) for name in schemas.FRAME_LABELS}
    record = {"clip_id": "c", "num_frames": 60}
    schemas.write_clip(
        tmp_path / "s", "c", video, audio, record, recipe, extra=extra, frame_labels=labels
    )
    ours = clip_dir(tmp_path / "s", "c")

    theirs = tmp_path / "zarr_itself"
    group = zarr.open_group(str(theirs), mode="w", zarr_format=3)
    frames = schemas.clips.ZSTD_CHUNK_FRAMES
    chunks = {"raw": lambda s: s, "zstd": lambda s: (min(s[0], frames), *s[1:])}[layout]
    # zstd with its content checksum, as the zstd layout writes every chunk now.
    compressors = None if layout == "raw" else zarr.codecs.ZstdCodec(level=3, checksum=True)
    options = {"compressors": compressors, "filters": None, "fill_value": 0,
               "config": {"write_empty_chunks": True}}  # fmt: skip
    for name, data in {"video": video, "audio": audio, **extra}.items():
        group.create_array(name, data=data, chunks=chunks(data.shape), **options)
    label_group = group.create_group("labels")
    for name in schemas.FRAME_LABELS:
        data = labels[name]
        label_group.create_array(name, data=data, chunks=chunks(data.shape), **options)
    group.attrs["record"] = record

    def files(root: Path) -> dict[str, bytes]:
        return {p.relative_to(root).as_posix(): p.read_bytes() for p in root.rglob("*")
                if p.is_file()}  # fmt: skip

    assert files(ours) == files(theirs)
    chunk_files = {"raw": 1, "zstd": 2}[layout]  # 60 frames: one chunk, or two of 50
    arrays = 4 + len(schemas.FRAME_LABELS)
    assert len(files(ours)) == 2 + arrays * (1 + chunk_files)  # + the two groups' zarr.json


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


def test_recipe_holds_every_setting_that_shapes_a_clip() -> None:
    from pipeline.clip import faces, silence, transform

    recipe = schemas.Recipe()
    assert recipe.face_margin == faces.DEFAULT_MARGIN
    assert (recipe.face_smooth, recipe.face_size_smooth) == (
        faces.DEFAULT_SMOOTH,
        faces.SIZE_SMOOTH,
    )
    assert recipe.silence_threshold_db == silence.DEFAULT_THRESHOLD_DB
    assert recipe.silent_clip_db == silence.SILENT_CLIP_DB
    assert recipe.max_seconds == transform.DEFAULT_MAX_SECONDS
    assert recipe.min_frames == transform.MIN_FRAMES
    assert recipe.pipeline_version == schemas.PIPELINE_VERSION >= 2
    hashes = {
        schemas.Recipe(**{name: value}).hash()
        for name, value in [("face_margin", 0.4), ("max_seconds", 30.0), ("min_frames", 3),
                            ("pipeline_version", 99), ("min_face_rate", 0.6)]
    }  # fmt: skip
    assert len(hashes) == 5 and recipe.hash() not in hashes
    assert schemas.Recipe(max_seconds=60).hash() == recipe.hash()  # 60 and 60.0 alike


def test_the_decoder_is_part_of_the_recipe_and_older_stores_keep_their_hash() -> None:
    from schemas.recipe import Recipe

    assert Recipe().decoder == "pyav"
    assert Recipe(decoder="pyav").hash() != Recipe(decoder="ffmpeg").hash()
    with pytest.raises(ValueError, match="decoder must be one of"):
        Recipe(decoder="gstreamer")
    # A store recorded before the field existed was decoded by an ffmpeg process: it
    # reads as such, and its hash is the one computed without the field, as it was.
    before = {k: v for k, v in Recipe(decoder="ffmpeg").to_dict().items() if k != "decoder"}
    old = Recipe.from_dict(json.loads(json.dumps(before)))
    assert old.decoder == "ffmpeg"
    legacy_blob = json.dumps(
        {k: v for k, v in before.items() if k not in ("landmarks", "streams")}, sort_keys=True
    ).encode()
    assert old.hash() == hashlib.sha256(legacy_blob).hexdigest()[:16]


def test_a_rerun_keeps_the_decoder_of_its_store(tmp_path: Path) -> None:
    from pipeline.cli import _resolve_decoder
    from schemas.recipe import Recipe

    store = tmp_path / "store"
    assert _resolve_decoder(None, store) == "pyav"  # no store yet: the default
    schemas.create_store(store, Recipe(decoder="ffmpeg"))
    assert _resolve_decoder(None, store) == "ffmpeg"
    assert _resolve_decoder("pyav", store) == "pyav"  # asked for: the recipe check decides


@pytest.mark.parametrize(
    ("field", "value"),
    [("crop_size", "112"), ("trim_silence", "yes"), ("face_stride", True), ("max_seconds", "60")],
)
def test_recipe_field_of_the_wrong_type_is_one_line_naming_it(field: str, value: object) -> None:
    with pytest.raises(schemas.StoreError, match=f"'{field}' must be") as caught:
        schemas.Recipe.from_dict({field: value})
    assert "\n" not in str(caught.value)


def test_store_without_recipe_is_refused(store: Path) -> None:
    meta_path = store / "zarr.json"
    meta = json.loads(meta_path.read_text())
    del meta["attributes"]["mscct"]["recipe"]
    meta_path.write_text(json.dumps(meta))
    with pytest.raises(schemas.StoreError, match="records no recipe"):
        schemas.open_store(store)


def test_old_store_stays_readable_and_a_rerun_says_why_it_recomputes(store: Path) -> None:
    meta_path = store / "zarr.json"
    meta = json.loads(meta_path.read_text())
    old = {k: meta["attributes"]["mscct"]["recipe"][k] for k in (
        "features", "crop_size", "fps", "sample_rate", "face_stride", "trim_silence",
        "audio_dtype", "layout")}  # fmt: skip
    meta["attributes"]["mscct"]["recipe"] = old  # a recipe written by pipeline version 1
    meta_path.write_text(json.dumps(meta))
    info = schemas.open_store(store)
    assert info.recipe.pipeline_version == 1 and info.recipe.crop_size == 16
    with pytest.raises(schemas.StoreError, match="predates pipeline_version 2.*--overwrite"):
        schemas.create_store(store, schemas.Recipe(crop_size=16))


def test_overwrite_deletes_only_a_store_and_only_what_it_wrote(tmp_path: Path) -> None:
    mine = tmp_path / "mine"
    (mine / "photos").mkdir(parents=True)
    (mine / "zarr.json").write_text("")  # a stray zarr.json is not a store marker
    (mine / "thesis.tex").write_text("x")
    foreign = tmp_path / "foreign"
    foreign.mkdir()
    (foreign / "zarr.json").write_text(json.dumps({"zarr_format": 3, "node_type": "group"}))
    for path in (mine, foreign):
        with pytest.raises(schemas.StoreError, match="not a store"):
            schemas.create_store(path, schemas.Recipe(), overwrite=True)
    assert (mine / "thesis.tex").exists() and (mine / "photos").is_dir()
    assert (foreign / "zarr.json").exists()
    store = tmp_path / "store"
    schemas.create_store(store, schemas.Recipe())
    (store / "notes.txt").write_text("mine")
    with pytest.raises(schemas.StoreError, match="notes.txt"):
        schemas.create_store(store, schemas.Recipe(), overwrite=True)
    assert (store / "notes.txt").exists() and schemas.is_store(store)
    (store / "notes.txt").unlink()
    schemas.create_store(store, schemas.Recipe(crop_size=32), overwrite=True)
    assert schemas.open_store(store).recipe.crop_size == 32


def _record_fsyncs(monkeypatch: pytest.MonkeyPatch) -> list[tuple[str, bool]]:
    """Wrap os.fsync: each call appends (path synced, whether it was under .staging)."""
    calls: list[tuple[str, bool]] = []
    real = os.fsync

    def fsync(fd: int) -> None:
        path = os.readlink(f"/proc/self/fd/{fd}")
        calls.append((path, f"/{STAGING_DIR}/" in path))
        real(fd)

    monkeypatch.setattr(os, "fsync", fsync)
    return calls


def test_commits_are_fsynced_before_and_after_the_rename(
    store: Path, recipe: schemas.Recipe, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls = _record_fsyncs(monkeypatch)
    video, audio = _tensors()
    schemas.write_clip(store, "c1", video, audio, {"clip_id": "c1"}, recipe)
    staged = [p for p, in_staging in calls if in_staging]
    assert any(p.endswith("/video/c/0/0/0/0") for p in staged)
    assert any(p.endswith("/audio/c/0/0") for p in staged)
    assert sum(p.endswith("zarr.json") for p in staged) == 3  # group, video, audio
    # After the rename: the clip's shard folder, then the two folders the commit made.
    shard = clip_dir(store, "c1").parent.resolve()
    assert calls[-3:] == [(str(p), False) for p in (shard, shard.parent, shard.parent.parent)]
    calls.clear()
    schemas.write_manifest(
        store, schemas.rows_to_table([_manifest_row("c1")], schemas.MANIFEST_SCHEMA)
    )
    assert calls[-1][0] == str(store.resolve()) and ".manifest.parquet." in calls[-2][0]
    calls.clear()
    split = schemas.rows_to_table(
        [{"clip_id": "c1", "split": "train", "category": "RARV", "identity": "i", "label": 0}],
        schemas.SPLIT_SCHEMA,
    )
    schemas.write_split(store, "s", split, {})
    assert calls[-1][0] == str((store / "splits").resolve())
    calls.clear()
    schemas.write_clip(store, "c2", video, audio, {"clip_id": "c2"}, recipe, durable=False)
    assert calls == []


def test_atomic_write_leaves_the_old_file_on_error(tmp_path: Path) -> None:
    path = tmp_path / "ckpt.pt"
    path.write_text("old")
    with pytest.raises(RuntimeError), schemas.atomic_write(path) as tmp:
        tmp.write_text("half")
        raise RuntimeError("killed")
    assert path.read_text() == "old" and os.listdir(tmp_path) == ["ckpt.pt"]
    with schemas.atomic_write(path) as tmp:
        tmp.write_text("new")
    assert path.read_text() == "new" and os.listdir(tmp_path) == ["ckpt.pt"]
