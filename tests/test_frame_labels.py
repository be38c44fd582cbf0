"""Per-frame labels: the segment rule, trim and cut, the store's round trip, old stores."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from old_schemas import schemas_of_format

import schemas
from pipeline.clip.frame_labels import clip_frame_labels, segment_frame_labels
from pipeline.datasets import ClipSource
from schemas.layout import STAGING_DIR, clip_dir


def _tensors(t: int, size: int = 16) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(t)
    video = rng.integers(0, 256, (t, size, size, 3), dtype=np.uint8)
    audio = rng.standard_normal((t, schemas.AUDIO_CHANNELS)).astype(np.float32)
    return video, audio


def _labels(t: int) -> dict[str, np.ndarray]:
    fake = np.zeros(t, np.uint8)
    fake[1:3] = 1
    return {"fake": fake, "audio_fake": np.zeros(t, np.uint8), "video_fake": fake.copy()}


@pytest.fixture()
def recipe() -> schemas.Recipe:
    return schemas.Recipe(crop_size=16)


@pytest.fixture()
def store(tmp_path: Path, recipe: schemas.Recipe) -> Path:
    path = tmp_path / "store"
    schemas.create_store(path, recipe)
    return path


# --------------------------------------------------------------------------- the rule


def test_segments_on_frame_boundaries_label_exactly_the_frames_inside() -> None:
    # 25 fps: frame t is [t/25, (t+1)/25). [0.2, 0.4) is frames 5..9 exactly.
    got = segment_frame_labels(((0.2, 0.4),), 20, 25.0)
    assert got.dtype == np.uint8 and got.shape == (20,)
    assert np.flatnonzero(got).tolist() == [5, 6, 7, 8, 9]
    # Two segments, one running past the clip's end.
    got = segment_frame_labels(((0.0, 0.08), (0.68, 5.0)), 20, 25.0)
    assert np.flatnonzero(got).tolist() == [0, 1, 17, 18, 19]
    assert not segment_frame_labels((), 20, 25.0).any()


def test_a_frame_is_fake_when_its_midpoint_is_in_a_segment() -> None:
    # Frame 5 spans [0.20, 0.24), midpoint 0.22.
    assert segment_frame_labels(((0.219, 0.3),), 8, 25.0)[5] == 1
    assert segment_frame_labels(((0.221, 0.3),), 8, 25.0)[5] == 0
    assert segment_frame_labels(((0.1, 0.221),), 8, 25.0)[5] == 1
    assert segment_frame_labels(((0.1, 0.219),), 8, 25.0)[5] == 0
    # A segment shorter than half a frame, off the midpoint, labels nothing.
    assert not segment_frame_labels(((0.201, 0.215),), 8, 25.0).any()


def test_trimmed_frames_shift_the_labels() -> None:
    # 3 leading frames were trimmed: stored frame 0 is source frame 3.
    untrimmed = segment_frame_labels(((0.2, 0.4),), 20, 25.0)
    trimmed = segment_frame_labels(((0.2, 0.4),), 17, 25.0, trimmed_frames=3)
    assert np.flatnonzero(trimmed).tolist() == [2, 3, 4, 5, 6]
    np.testing.assert_array_equal(trimmed, untrimmed[3:])


def test_a_cut_clip_keeps_the_labels_of_its_first_frames() -> None:
    # The length cut drops frames at the end: a segment past it labels nothing.
    full = segment_frame_labels(((0.4, 0.6), (2.0, 3.0)), 75, 25.0)
    cut = segment_frame_labels(((0.4, 0.6), (2.0, 3.0)), 40, 25.0)
    np.testing.assert_array_equal(cut, full[:40])
    assert np.flatnonzero(cut).tolist() == list(range(10, 15))
    # Trim and cut together.
    both = segment_frame_labels(((0.4, 0.6), (2.0, 3.0)), 38, 25.0, trimmed_frames=2)
    np.testing.assert_array_equal(both, full[2:40])


def test_other_frame_rates() -> None:
    # 10 fps: frame t is [t/10, (t+1)/10).
    got = segment_frame_labels(((0.5, 1.0),), 12, 10.0, trimmed_frames=1)
    assert np.flatnonzero(got).tolist() == [4, 5, 6, 7, 8]


def _clip(**segments: object) -> ClipSource:
    return ClipSource(
        clip_id="c",
        path="train/000001.mp4",
        category="FAFV",
        source_type="",
        identity="000001",
        method="lavdf",
        dataset="lavdf",
        **segments,  # type: ignore[arg-type]
    )


def test_clip_labels_come_from_each_modality_s_segments() -> None:
    clip = _clip(
        fake_segments=((0.2, 0.4), (0.6, 0.8)),
        audio_fake_segments=((0.2, 0.4),),
        video_fake_segments=((0.6, 0.8),),
    )
    labels = clip_frame_labels(clip, 25, 25.0, trimmed_frames=1)
    assert labels is not None and set(labels) == set(schemas.FRAME_LABELS)
    assert np.flatnonzero(labels["audio_fake"]).tolist() == [4, 5, 6, 7, 8]
    assert np.flatnonzero(labels["video_fake"]).tolist() == [14, 15, 16, 17, 18]
    np.testing.assert_array_equal(labels["fake"], labels["audio_fake"] | labels["video_fake"])
    assert clip_frame_labels(_clip(), 25, 25.0) is None  # a clip-level dataset: none
    real = clip_frame_labels(
        _clip(fake_segments=(), audio_fake_segments=(), video_fake_segments=()), 25, 25.0
    )
    assert real is not None and not any(a.any() for a in real.values())
    with pytest.raises(ValueError, match="no audio_fake_segments"):
        clip_frame_labels(_clip(fake_segments=((0.0, 1.0),)), 25, 25.0)


# --------------------------------------------------------------------------- the store


@pytest.mark.parametrize("layout", ["raw", "zstd"])
def test_frame_labels_round_trip(tmp_path: Path, layout: str) -> None:
    recipe = schemas.Recipe(crop_size=16, layout=layout)
    store = tmp_path / "store"
    schemas.create_store(store, recipe)
    assert schemas.open_store(store).format_version == schemas.FORMAT_VERSION == 3
    video, audio = _tensors(30)
    labels = _labels(30)
    schemas.write_clip(store, "seg", video, audio, {"clip_id": "seg"}, recipe, frame_labels=labels)
    schemas.write_clip(store, "plain", video, audio, {"clip_id": "plain"}, recipe)
    got = schemas.read_frame_labels(store, "seg")
    assert got is not None and set(got) == set(labels)
    for name, data in labels.items():
        assert got[name].dtype == np.uint8 and got[name].shape == (30,)
        np.testing.assert_array_equal(got[name], data)
    assert (clip_dir(store, "seg") / "labels" / "fake" / "zarr.json").is_file()
    assert schemas.read_frame_labels(store, "plain") is None
    assert not (clip_dir(store, "plain") / "labels").exists()
    with pytest.raises(schemas.StoreError, match="not in store"):
        schemas.read_frame_labels(store, "absent")


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda labels: labels.pop("audio_fake"), "exactly"),
        (lambda labels: labels.update(extra=labels["fake"]), "exactly"),
        (lambda labels: labels.update(fake=np.zeros(4, np.uint8)), r"\(5,\) uint8"),
        (lambda labels: labels.update(fake=np.zeros(5, np.int64)), r"\(5,\) uint8"),
        (lambda labels: labels.update(fake=np.full(5, 2, np.uint8)), "other than 0 and 1"),
    ],
)
def test_bad_frame_labels_are_refused_and_nothing_is_written(
    store: Path, recipe: schemas.Recipe, change: object, message: str
) -> None:
    video, audio = _tensors(5)
    labels = _labels(5)
    change(labels)  # type: ignore[operator]
    with pytest.raises(ValueError, match=message):
        schemas.write_clip(store, "c", video, audio, {}, recipe, frame_labels=labels)
    assert schemas.read_clip_record(store, "c") is None
    assert not clip_dir(store, "c").exists()
    assert not any((store / STAGING_DIR).iterdir())


def test_labels_are_never_visible_without_their_clip(
    store: Path, recipe: schemas.Recipe, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The labels are written inside the clip's staging group: a commit that fails at
    the rename leaves neither, and a successful one shows both at once."""
    import schemas.clips as clips

    seen: list[list[str]] = []

    def failing_rename(src: Path, dst: Path) -> None:
        seen.append(sorted(str(p.relative_to(src)) for p in src.glob("labels/*/zarr.json")))
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(clips, "_replace_dir", failing_rename)
    video, audio = _tensors(5)
    with pytest.raises(OSError, match="No space"):
        schemas.write_clip(store, "c", video, audio, {}, recipe, frame_labels=_labels(5))
    assert seen == [
        ["labels/audio_fake/zarr.json", "labels/fake/zarr.json", "labels/video_fake/zarr.json"]
    ]
    assert not clip_dir(store, "c").exists()
    assert not any((store / STAGING_DIR).iterdir())
    with pytest.raises(schemas.StoreError, match="not in store"):
        schemas.read_frame_labels(store, "c")
    monkeypatch.undo()
    schemas.write_clip(store, "c", video, audio, {}, recipe, frame_labels=_labels(5))
    assert schemas.read_frame_labels(store, "c") is not None


def test_labels_through_a_link_are_refused(store: Path, recipe: schemas.Recipe) -> None:
    video, audio = _tensors(5)
    schemas.write_clip(store, "c", video, audio, {}, recipe, frame_labels=_labels(5))
    labels = clip_dir(store, "c") / "labels"
    outside = store.parent / "outside_labels"
    shutil.move(labels, outside)
    labels.symlink_to(outside)
    with pytest.raises(schemas.StoreError, match="links outside"):
        schemas.read_frame_labels(store, "c")


def test_a_hand_made_version_1_store_opens_and_reads(store: Path, recipe: schemas.Recipe) -> None:
    video, audio = _tensors(5)
    schemas.write_clip(store, "c", video, audio, {"clip_id": "c"}, recipe)
    meta_path = store / "zarr.json"
    meta = json.loads(meta_path.read_text())
    meta["attributes"]["mscct"]["format_version"] = 1
    meta_path.write_text(json.dumps(meta))
    assert schemas.open_store(store).format_version == 1
    assert schemas.read_frame_labels(store, "c") is None
    np.testing.assert_array_equal(schemas.open_clip(store, "c")[0], video)
    # Opening it to add clips keeps its marker: everything a version-1 reader reads is valid.
    schemas.create_store(store, recipe)
    assert schemas.open_store(store).format_version == 1


_OLD_WRITER = """
import sys
import numpy as np
import schemas
assert schemas.__file__.startswith(sys.argv[2]), schemas.__file__
recipe = schemas.Recipe(crop_size=16)
schemas.create_store(sys.argv[1], recipe)
video = np.arange(5 * 16 * 16 * 3, dtype=np.uint64).astype(np.uint8).reshape(5, 16, 16, 3)
audio = np.ones((5, schemas.AUDIO_CHANNELS), np.float32)
labels = schemas.labels_for("FARV")
row = {
    "clip_id": "old", "path": "a/old.mp4", "category": "FARV", "audio_label": labels.audio,
    "video_label": labels.video, "label": labels.overall, "identity": "id00001",
    "method": "rtvc", "num_frames": 5, "source_fingerprint": "f",
    "recipe_hash": recipe.hash(), "status": "ok", "error": "",
}
schemas.write_clip(sys.argv[1], "old", video, audio, row, recipe)
schemas.write_manifest(sys.argv[1], schemas.rows_to_table([row], schemas.MANIFEST_SCHEMA))
"""


def test_a_store_written_in_format_1_reads(tmp_path: Path) -> None:
    old = schemas_of_format(1, tmp_path / "old_code")
    store = tmp_path / "store"
    subprocess.run(
        [sys.executable, "-c", _OLD_WRITER, str(store), str(old)],
        env={**os.environ, "PYTHONPATH": str(old)},
        cwd=tmp_path,
        check=True,
    )
    info = schemas.open_store(store)
    assert info.format_version == 1
    manifest = schemas.read_manifest(store).to_pylist()
    assert [r["clip_id"] for r in manifest] == ["old"]
    row = manifest[0]
    assert (row["audio_label"], row["video_label"], row["label"]) == (1, 0, 1)
    for column in ("dataset", "labelled", "official_split", "fake_segments"):
        assert row[column] is None
    assert schemas.read_frame_labels(store, "old") is None
    video, audio = schemas.open_clip(store, "old")
    assert video.shape == (5, 16, 16, 3) and float(audio.sum()) == 5 * schemas.AUDIO_CHANNELS
    assert schemas.committed_records(store)[0]["category"] == "FARV"


def test_the_rule_is_the_stores_and_needs_no_pipeline() -> None:
    """The frame-label rule is part of the store's contract: ``schemas`` owns it, and a
    reader of the store (the trainer) can apply it without importing the pipeline."""
    code = (
        "import sys; from schemas.frame_label_rule import segment_frame_labels as rule;"
        "labels = rule([(0.04, 0.12)], 5, 25.0);"
        "assert labels.tolist() == [0, 1, 1, 0, 0], labels;"
        "assert not any(m == 'pipeline' or m.startswith('pipeline.') for m in sys.modules)"
    )
    subprocess.run([sys.executable, "-c", code], check=True)
    from schemas.frame_label_rule import segment_frame_labels as rule

    assert segment_frame_labels is rule
