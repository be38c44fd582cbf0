"""AV-Deepfake1M adapter: metadata arrays, per-clip JSON, the unlabelled test list, bad records."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest

from pipeline.datasets import scan
from pipeline.datasets.common import ScanError
from pipeline.datasets.source import make_clip_id

KINDS = {
    "real": ([], [], []),
    "audio_modified": ([[1.0, 1.5]], [[1.0, 1.5]], []),
    "visual_modified": ([[2.0, 2.5]], [], [[2.0, 2.5]]),
    "both_modified": ([[0.5, 1.0]], [[0.5, 1.0]], [[0.5, 1.0]]),
}


def record(file: str, kind: str = "real", split: str = "train", **extra: Any) -> dict[str, Any]:
    """A record as the release writes it; ``kind`` picks modify_type and matching segments."""
    fake, audio, visual = KINDS.get(kind, KINDS["both_modified"])
    base = {
        "file": file,
        "original": None if kind == "real" else file.rsplit("/", 1)[0] + "/real.mp4",
        "split": split,
        "modify_type": kind,
        "audio_model": "yourtts" if "audio" in kind or "both" in kind else "",
        "fake_segments": fake,
        "audio_fake_segments": audio,
        "visual_fake_segments": visual,
        "video_frames": 100,
        "audio_frames": 64000,
    }
    return base | extra


def release(tmp_path: Path, train: list[Any], val: list[Any] = (), test: list[str] = ()) -> Path:  # type: ignore[assignment]
    """An AV-Deepfake1M root: metadata arrays, an empty file per record under its subset folder."""
    root = tmp_path / "AV-Deepfake1M"
    root.mkdir()
    for subset, records in (("train", train), ("val", val)):
        if records:
            (root / f"{subset}_metadata.json").write_text(json.dumps(list(records)))
        for item in records:
            if isinstance(item, dict) and isinstance(item.get("file"), str):
                touch(root / subset / item["file"])
    if test:
        (root / "test_files.txt").write_text("".join(f"{line}\n" for line in test))
        for line in test:
            touch(root / "test" / line)
    return root


def touch(path: Path) -> None:
    if ".." in path.parts:
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    path.touch()


def test_labels_segments_splits_and_identity(tmp_path: Path) -> None:
    root = release(
        tmp_path,
        train=[
            record("id00012/vid/00130/real.mp4"),
            record("id00012/vid/00130/fake_audio.mp4", "audio_modified"),
            record("id00013/vid/00001/fake_video.mp4", "visual_modified"),
        ],
        val=[record("id00020/v/00002/fake_both.mp4", "both-modified", split="val")],
    )
    result = scan(tmp_path)  # parent folder accepted, tree detected
    assert result.dataset == "avdeepfake1m" and result.root == root.resolve()
    clips = {c.path: c for c in result.clips}
    real = clips["train/id00012/vid/00130/real.mp4"]
    assert (real.category, real.identity, real.method, real.original) == (
        "RARV", "id00012", "real", ""
    )  # fmt: skip
    assert real.fake_segments == real.audio_fake_segments == real.video_fake_segments == ()
    audio = clips["train/id00012/vid/00130/fake_audio.mp4"]
    assert audio.category == "FARV" and audio.method == "audio_modified:yourtts"
    assert audio.audio_fake_segments == ((1.0, 1.5),) and audio.video_fake_segments == ()
    assert audio.original == "train/id00012/vid/00130/real.mp4"
    video = clips["train/id00013/vid/00001/fake_video.mp4"]
    assert video.category == "RAFV" and video.method == "visual_modified"
    assert video.video_fake_segments == ((2.0, 2.5),) and video.audio_fake_segments == ()
    both = clips["val/id00020/v/00002/fake_both.mp4"]
    # The SDK's "both-modified" spelling is the same type, in one canonical spelling.
    assert both.category == "FAFV" and both.source_type == "both_modified"
    assert (both.official_split, both.source_split, both.labelled) == ("val", "val", True)
    assert not (result.missing or result.refused or result.unlisted or result.repaired)


def test_unlabelled_test_files(tmp_path: Path) -> None:
    release(tmp_path, train=[record("id1/v/1/real.mp4")], test=["id00077/x/00001/a.mp4", ""])
    result = scan(tmp_path / "AV-Deepfake1M", "avdeepfake1m")
    test = next(c for c in result.clips if c.path.startswith("test/"))
    assert test.path == "test/id00077/x/00001/a.mp4"
    assert (test.labelled, test.category, test.identity) == (False, "", "id00077")
    assert (test.official_split, test.fake_segments, test.audio_fake_segments) == (
        "test",
        None,
        None,
    )
    assert test.clip_id == make_clip_id("id00077", "", test.path)
    assert "unlabelled" in test.clip_id


def test_files_relative_to_the_root_are_found_too(tmp_path: Path) -> None:
    root = release(tmp_path, train=[record("id1/v/1/real.mp4"), record("id2/v/1/real.mp4")])
    (root / "train" / "id2" / "v" / "1" / "real.mp4").unlink()
    touch(root / "id2" / "v" / "1" / "real.mp4")  # laid out flat, not under train/
    result = scan(root, "avdeepfake1m")
    assert [c.path for c in result.clips] == ["id2/v/1/real.mp4", "train/id1/v/1/real.mp4"]
    (root / "id2" / "v" / "1" / "real.mp4").unlink()
    result = scan(root, "avdeepfake1m")
    # Missing in both places: reported under the release's own tree.
    assert result.missing == ["train_metadata.json[1]: train/id2/v/1/real.mp4"]


def test_per_clip_metadata_folders(tmp_path: Path) -> None:
    root = tmp_path / "AV1M"
    for file, kind in (("id5/v/1/real.mp4", "real"), ("id5/v/1/fake.mp4", "visual_modified")):
        meta = root / "train_metadata" / file.replace(".mp4", ".json")
        meta.parent.mkdir(parents=True, exist_ok=True)
        meta.write_text(json.dumps(record(file, kind)))
        touch(root / "train" / file)
    (root / "train_metadata" / "id5" / "broken.json").write_text("{nope")
    result = scan(root)
    assert sorted(c.category for c in result.clips) == ["RAFV", "RARV"]
    assert len(result.refused) == 1
    assert result.refused[0].startswith("train_metadata/id5/broken.json: not valid JSON")


@pytest.mark.parametrize(
    ("bad", "reason"),
    [
        ({"modify_type": "face_swap"}, "unknown modify_type 'face_swap'"),
        ({"modify_type": None}, "no 'modify_type' field"),
        ({"visual_fake_segments": None}, "no 'visual_fake_segments' field"),
        ({"fake_segments": [[3, 1]]}, "does not end after it starts"),
        ({"audio_fake_segments": [[-0.5, 1]]}, "starts before 0"),
        ({"modify_type": "audio_modified"}, "visual_fake_segments for a clip whose modify_type"),
        ({"file": 7}, "field 'file' is 7, not a string"),
        ({"duration": 2.0, "fake_segments": [[2.0, 3.0]]}, "starts at or after the clip's end"),
    ],
)
def test_bad_records_are_refused_alone(tmp_path: Path, bad: dict[str, Any], reason: str) -> None:
    broken = {k: v for k, v in (record("id9/v/1/x.mp4", "both_modified") | bad).items()}
    broken = {k: v for k, v in broken.items() if v is not None or k == "original"}
    root = release(tmp_path, train=[record("id1/v/1/real.mp4"), broken])
    result = scan(root, "avdeepfake1m")
    assert [c.path for c in result.clips] == ["train/id1/v/1/real.mp4"]
    assert len(result.refused) == 1, result.refused
    assert result.refused[0].startswith("train_metadata.json[1]: ") and reason in result.refused[0]


def test_segment_repairs(tmp_path: Path) -> None:
    segments = [[2.0, 3.0], [0.0, 1.0], [0.5, 1.2]]
    fixed = record(
        "id1/v/1/f.mp4",
        "both_modified",
        fake_segments=[*segments, [3.5, 9.0]],  # the union of the two lists below
        audio_fake_segments=segments,
        visual_fake_segments=[[3.5, 9.0]],
        duration=4.0,
    )
    result = scan(release(tmp_path, train=[fixed]), "avdeepfake1m")
    clip = result.clips[0]
    assert clip.audio_fake_segments == ((0.0, 1.2), (2.0, 3.0))
    assert clip.fake_segments == (*clip.audio_fake_segments, (3.5, 4.0))
    assert clip.video_fake_segments == ((3.5, 4.0),)
    assert len(result.repaired) == 4 and all(
        r.startswith("train_metadata.json[0]: ") for r in result.repaired
    )


def test_escapes_links_duplicates_and_unlisted(tmp_path: Path) -> None:
    outside = tmp_path / "outside.mp4"
    outside.touch()
    root = release(
        tmp_path,
        train=[
            record("id1/v/1/real.mp4"),
            record("../../outside.mp4"),
            record("/etc/hostname"),
            record("id1/v/1/link.mp4"),
            record("id1/v/1/real.mp4"),
            record("id1/v/1/real.mp4", "visual_modified"),
        ],
        test=["../outside.mp4"],
    )
    link = root / "train" / "id1" / "v" / "1" / "link.mp4"
    link.unlink()
    os.symlink(outside, link)
    touch(root / "val" / "id3" / "stray.mp4")
    result = scan(root, "avdeepfake1m")
    assert [c.path for c in result.clips] == ["train/id1/v/1/real.mp4"]
    refused = "\n".join(result.refused)
    assert "train_metadata.json[1]: path ../../outside.mp4 leaves the dataset root" in refused
    # An absolute path is refused as such, never looked up under train/.
    assert "train_metadata.json[2]: path /etc/hostname leaves the dataset root" in refused
    assert "train_metadata.json[3]: path train/id1/v/1/link.mp4 leaves the dataset root" in refused
    assert "train_metadata.json[5]: duplicate record for train/id1/v/1/real.mp4" in refused
    assert "test_files.txt:1: path ../outside.mp4 leaves the dataset root" in refused
    assert len(result.refused) == 5
    assert result.merged == [
        "train_metadata.json[4]: train/id1/v/1/real.mp4 merged with train_metadata.json[0] "
        "(method real)"
    ]
    assert result.unlisted == ["val/id3/stray.mp4"]


def test_broken_array_is_a_scan_error(tmp_path: Path) -> None:
    root = tmp_path / "AV1M"
    root.mkdir()
    text = json.dumps([record("id1/v/1/a.mp4"), record("id1/v/1/b.mp4")])
    (root / "train_metadata.json").write_text(text[:-5])
    with pytest.raises(ScanError, match=r"train_metadata.json: not valid JSON after record 0"):
        scan(root)


def test_benchmark_metadata_is_what_the_adapter_takes(tmp_path: Path) -> None:
    from benchmarks.bench_scan import write_metadata

    root = tmp_path / "AV1M"
    root.mkdir()
    write_metadata(root / "train_metadata.json", 8)
    for item in json.loads((root / "train_metadata.json").read_text()):
        touch(root / "train" / item["file"])
    result = scan(root)
    categories = sorted(c.category for c in result.clips)
    assert categories == sorted(["FAFV", "FARV", "RAFV", "RARV"] * 2)
    assert not (result.missing or result.refused or result.repaired)
