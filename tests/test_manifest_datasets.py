"""Ingest of segment-labelled and unlabelled clips: manifest columns and frame labels.

Real media (``pipeline.synth``), real ffmpeg and dlib, a real local Ray, through
``run_ingest``. The clips are the synthetic FakeAVCeleb files laid out as a LAV-DF
release (a hand-written ``metadata.json``) or listed as a scan would list them.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pytest

import schemas
from pipeline import datasets
from pipeline.datasets import ClipSource, ScanResult, make_clip_id
from pipeline.ingest.driver import IngestOptions, run_ingest
from pipeline.ingest.manifest_book import repair_manifest
from pipeline.ingest.selection import select_clips
from pipeline.ingest.summary import summarize
from pipeline.synth import SynthSummary, make_dataset
from schemas.layout import clip_dir

#: Silence trim and a 2 s cut on 2-4 s clips: the labels must line up after both.
RECIPE = schemas.Recipe(crop_size=48, trim_silence=True, max_seconds=2.0)
FPS = 25.0


@pytest.fixture(scope="module")
def media(tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    """Four real synthetic clips (one identity, one clip of each FakeAVCeleb category)."""
    summary: SynthSummary = make_dataset(
        tmp_path_factory.mktemp("synth") / "data", per_category=1, identities=1, seed=3
    )
    return sorted(summary.root.rglob("*.mp4"))


def _expected(segments: list[list[float]] | None, num_frames: int, trimmed: int) -> np.ndarray:
    """The store's rule, written out frame by frame: 1 where the frame's midpoint
    ``(t + trimmed + 0.5) / fps`` lies in a segment ``[start, end)``."""
    out = np.zeros(num_frames, np.uint8)
    for t in range(num_frames):
        midpoint = (t + trimmed + 0.5) / FPS
        out[t] = any(start <= midpoint < end for start, end in segments or [])
    return out


def _check_frame_labels(store: Path, row: dict) -> None:
    labels = schemas.read_frame_labels(store, row["clip_id"])
    if row["fake_segments"] is None:
        assert labels is None
        return
    assert labels is not None
    for name, column in (
        ("fake", "fake_segments"),
        ("audio_fake", "audio_fake_segments"),
        ("video_fake", "video_fake_segments"),
    ):
        want = _expected(row[column], row["num_frames"], row["trimmed_frames"])
        np.testing.assert_array_equal(labels[name], want, err_msg=f"{row['path']} {name}")


# --------------------------------------------------------------------------- LAV-DF layout

#: file -> (split, modify_audio, modify_video, fake_periods)
LAVDF_CLIPS = {
    "train/000000.mp4": ("train", False, False, []),
    "train/000001.mp4": ("train", True, False, [[0.4, 0.8]]),
    "dev/000002.mp4": ("dev", False, True, [[0.2, 0.6], [1.2, 1.56]]),
    "test/000003.mp4": ("test", True, True, [[0.52, 3.0]]),  # runs past the 2 s cut
}


def _lavdf_root(media: list[Path], dest: Path) -> Path:
    root = dest / "LAV-DF"
    records = []
    for source, (name, (split, audio, video, periods)) in zip(
        media, LAVDF_CLIPS.items(), strict=True
    ):
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(source, root / name)
        records.append(
            {
                "file": name,
                "split": split,
                "modify_video": video,
                "modify_audio": audio,
                "n_fakes": len(periods),
                "fake_periods": periods,
                "duration": 3.0,
                "original": None if not periods else "train/000000.mp4",
                "video_frames": 75,
                "audio_frames": 48000,
                "audio_channels": 1,
            }
        )
    (root / "metadata.json").write_text(json.dumps(records))
    return root


def test_lavdf_ingest_stores_the_segments_and_their_frame_labels(
    media: list[Path], tmp_path: Path
) -> None:
    root = _lavdf_root(media, tmp_path / "data")
    store = tmp_path / "store"
    result = run_ingest(root, IngestOptions(store=store, recipe=RECIPE, workers=2, dataset="lavdf"))
    assert result.ok == 4 and result.failed == 0, [r["error"] for r in result.manifest.to_pylist()]
    rows = {r["path"]: r for r in schemas.read_manifest(store).to_pylist()}
    assert set(rows) == set(LAVDF_CLIPS)
    categories = {(False, False): "RARV", (True, False): "FARV", (False, True): "RAFV"}
    for name, (split, audio, video, periods) in LAVDF_CLIPS.items():
        row = rows[name]
        assert row["dataset"] == "lavdf" and row["labelled"] is True
        assert row["category"] == categories.get((audio, video), "FAFV")
        assert (row["audio_label"], row["video_label"]) == (int(audio), int(video))
        assert row["label"] == int(audio or video)
        assert row["source_split"] == split
        assert row["official_split"] == {"dev": "val"}.get(split, split)
        assert row["fake_segments"] == periods
        assert row["audio_fake_segments"] == (periods if audio else [])
        assert row["video_fake_segments"] == (periods if video else [])
        _check_frame_labels(store, row)
    assert any(r["trimmed_frames"] > 0 for r in rows.values())
    assert any(r["cut"] for r in rows.values())
    # The rule labels something in every fake clip here, and nothing in the real one.
    assert not schemas.read_frame_labels(store, rows["train/000000.mp4"]["clip_id"])["fake"].any()  # type: ignore[index]
    assert schemas.read_frame_labels(store, rows["test/000003.mp4"]["clip_id"])["fake"].any()  # type: ignore[index]


# --------------------------------------------------------------------------- any adapter


def _clip(path: str, category: str, **fields: object) -> ClipSource:
    identity = "id" + path.split("/")[-1].split(".")[0]
    return ClipSource(
        clip_id=make_clip_id(identity, category, path),
        path=path,
        category=category,
        source_type="",
        identity=identity,
        method="",
        **fields,  # type: ignore[arg-type]
    )


def _scan_of(media: list[Path], dest: Path) -> ScanResult:
    """An AV-Deepfake1M-like scan: segment-labelled clips, an unlabelled test clip, and a
    clip-level one, over copies of the synthetic files."""
    clips = [
        _clip(
            "val/a.mp4", "FARV", dataset="avdeepfake1m", official_split="val",
            source_split="val", original="val/b.mp4", fake_segments=((0.3, 0.9),),
            audio_fake_segments=((0.3, 0.9),), video_fake_segments=(),
        ),
        _clip(
            "val/b.mp4", "RARV", dataset="avdeepfake1m", official_split="val",
            source_split="val", fake_segments=(), audio_fake_segments=(),
            video_fake_segments=(),
        ),
        _clip(
            "test/c.mp4", "", dataset="avdeepfake1m", labelled=False, official_split="test",
            source_split="test",
        ),
        _clip("other/d.mp4", "FAFV"),
    ]  # fmt: skip
    for source, clip in zip(media, clips, strict=True):
        (dest / clip.path).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(source, dest / clip.path)
    return ScanResult(root=dest, clips=clips, used_csv=True, dataset="avdeepfake1m")


def test_unlabelled_and_segment_clips_are_ingested_and_resume(
    media: list[Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    scan = _scan_of(media, tmp_path / "data")
    asked: list[str | None] = []

    def fake_scan(root: object, dataset: str | None = None, sink: Any = None) -> ScanResult:
        asked.append(dataset)
        if sink is not None:  # as an adapter does: each clip handed over as it is found
            sink.opened(scan.root)
            for clip in scan.clips:
                sink.found(clip)
        return scan

    # The adapter is the one part not under test here: the ingest takes its clips as given.
    monkeypatch.setattr(datasets, "scan", fake_scan)
    store = tmp_path / "store"
    options = IngestOptions(store=store, recipe=RECIPE, workers=2, dataset="avdeepfake1m")
    result = run_ingest(scan.root, options)
    assert asked == ["avdeepfake1m"]
    assert result.ok == 4, [r["error"] for r in result.manifest.to_pylist()]
    rows = {r["path"]: r for r in schemas.read_manifest(store).to_pylist()}
    unlabelled = rows["test/c.mp4"]
    assert unlabelled["labelled"] is False and unlabelled["category"] == ""
    assert (unlabelled["audio_label"], unlabelled["video_label"], unlabelled["label"]) == (
        None,
        None,
        None,
    )
    assert unlabelled["fake_segments"] is None and unlabelled["num_frames"] > 0
    assert schemas.read_frame_labels(store, unlabelled["clip_id"]) is None
    fake = rows["val/a.mp4"]
    assert (fake["dataset"], fake["original"], fake["official_split"]) == (
        "avdeepfake1m",
        "val/b.mp4",
        "val",
    )
    assert fake["fake_segments"] == [[0.3, 0.9]] and fake["video_fake_segments"] == []
    clip_level = rows["other/d.mp4"]
    assert clip_level["dataset"] == "fakeavceleb" and clip_level["labelled"] is True
    for row in rows.values():
        _check_frame_labels(store, row)
    assert schemas.read_frame_labels(store, fake["clip_id"])["audio_fake"].any()  # type: ignore[index]
    summary = summarize(schemas.read_manifest(store))
    assert summary["unlabelled"].ok == 1 and summary["total"].ok == 4
    assert list(summary) == ["RARV", "FARV", "RAFV", "FAFV", "unlabelled", "total"]

    # New segments for a clip redo it (its stored frame labels would be stale), only it.
    moved = scan.clips[0]
    scan.clips[0] = ClipSource(
        **{
            **{name: getattr(moved, name) for name in ClipSource.__slots__},
            "fake_segments": ((0.0, 0.4),),
            "audio_fake_segments": ((0.0, 0.4),),
        }
    )
    redo = run_ingest(scan.root, options)
    assert redo.submitted == 1 and redo.ok == 1
    row = next(r for r in schemas.read_manifest(store).to_pylist() if r["path"] == "val/a.mp4")
    assert row["fake_segments"] == [[0.0, 0.4]]
    _check_frame_labels(store, row)

    # The manifest rebuilt from clips/ keeps every new column.
    before = schemas.read_manifest(store)
    (store / "manifest.parquet").unlink()
    assert repair_manifest(store).committed == 4
    assert schemas.read_manifest(store).equals(before)

    # A rerun does nothing; so does one over clips committed before the new record fields.
    assert run_ingest(scan.root, options).submitted == 0
    _strip_new_fields(store)
    again = run_ingest(scan.root, options)
    assert again.submitted == 0 and again.skipped == 4
    old_rows = {r["path"]: r for r in schemas.read_manifest(store).to_pylist()}
    assert old_rows["other/d.mp4"]["dataset"] is None  # an older record: null, not guessed
    assert old_rows["test/c.mp4"]["labelled"] is False  # kept where the record was written


def _strip_new_fields(store: Path) -> None:
    """Make the store's clip-level records, and the manifest made from them, look written
    before the dataset fields existed (clips with segments or without labels keep them:
    no older store could hold one)."""
    new = (
        "dataset",
        "official_split",
        "source_split",
        "original",
        "fake_segments",
        "audio_fake_segments",
        "video_fake_segments",
    )
    for clip_id in [r["clip_id"] for r in schemas.committed_records(store)]:
        meta_path = clip_dir(store, clip_id) / "zarr.json"
        meta = json.loads(meta_path.read_text())
        record = meta["attributes"]["record"]
        if record["labelled"] and record["fake_segments"] is None:
            for key in (*new, "labelled"):
                record.pop(key)
        meta_path.write_text(json.dumps(meta))
    repair_manifest(store)  # an older store's manifest holds what its records hold


def test_select_clips_takes_unlabelled_clips_in_the_round_robin() -> None:
    clips = [_clip(f"x/{i}.mp4", c) for i, c in enumerate(["RARV", "RARV", "", "", "FAFV"])]
    scan = ScanResult(root=Path("."), clips=clips, used_csv=True)
    assert [c.category for c in select_clips(scan, (), 3)] == ["RARV", "FAFV", ""]
    assert [c.category for c in select_clips(scan, (), None)] == ["RARV", "FAFV", "", "RARV", ""]
    assert [c.category for c in select_clips(scan, ("RARV",), None)] == ["RARV", "RARV"]


# --------------------------------------------------------------------------- the manifest


def _row(clip_id: str, **changes: object) -> dict:
    row = {
        "clip_id": clip_id,
        "path": f"{clip_id}.mp4",
        "category": "FARV",
        "audio_label": 1,
        "video_label": 0,
        "label": 1,
        "identity": "i",
        "method": "m",
        "num_frames": 3,
        "source_fingerprint": "f",
        "recipe_hash": "r",
        "status": "ok",
        "dataset": "lavdf",
        "labelled": True,
        "fake_segments": [[0.0, 1.0]],
    }
    row.update(changes)
    return row


def _table(*rows: dict) -> pa.Table:
    return schemas.rows_to_table(list(rows), schemas.MANIFEST_SCHEMA)


UNLABELLED = {"category": "", "audio_label": None, "video_label": None, "label": None}


def test_manifest_columns_round_trip(tmp_path: Path) -> None:
    store = tmp_path / "s"
    schemas.create_store(store, schemas.Recipe(crop_size=16))
    table = _table(
        _row("a"),
        _row("b", labelled=False, **UNLABELLED, fake_segments=None),
        _row("c", labelled=None, dataset=None, fake_segments=[]),  # an older row
    )
    schemas.write_manifest(store, table)
    got = schemas.read_manifest(store)
    assert got.schema.field("fake_segments").type == schemas.SEGMENTS_TYPE
    assert got.column("fake_segments").to_pylist() == [[[0.0, 1.0]], None, []]
    assert got.column("label").to_pylist() == [1, None, 1]


@pytest.mark.parametrize(
    ("row", "problem"),
    [
        (_row("x", label=None), "is labelled but its label is null"),
        (_row("x", labelled=None, audio_label=None), "is labelled but its audio_label is null"),
        (
            _row("x", labelled=False, **{**UNLABELLED, "video_label": 0}),
            "is not labelled but has a video_label",
        ),
        (
            _row("x", labelled=False, **{**UNLABELLED, "category": "FARV"}),
            "is not labelled but has a category",
        ),
        (_row("x", category=""), "is labelled but has no category"),
    ],
)
def test_manifest_label_rule_is_enforced(tmp_path: Path, row: dict, problem: str) -> None:
    store = tmp_path / "s"
    schemas.create_store(store, schemas.Recipe(crop_size=16))
    with pytest.raises(schemas.SchemaError, match=f"clip x {problem}"):
        schemas.write_manifest(store, _table(_row("ok"), row))
    assert not (store / "manifest.parquet").exists()
