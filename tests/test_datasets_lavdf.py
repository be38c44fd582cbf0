"""LAV-DF adapter: labels and segments from metadata.json, its quirks and bad records."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest

from pipeline.datasets import scan
from pipeline.datasets.common import ScanError


def record(file: str, audio: bool = False, video: bool = False, **extra: Any) -> dict[str, Any]:
    """A LAV-DF record as the release writes it (a real clip unless a modality is modified)."""
    periods = extra.pop("fake_periods", [[1.0, 2.0]] if audio or video else [])
    base = {
        "file": file,
        "split": file.split("/")[0],
        "modify_video": video,
        "modify_audio": audio,
        "n_fakes": len(periods),
        "fake_periods": periods,
        "duration": 4.0,
        "original": "train/000001.mp4" if audio or video else None,
        "video_frames": 100,
        "audio_frames": 64000,
        "audio_channels": 1,
    }
    return base | extra


def lavdf(tmp_path: Path, records: list[Any], name: str = "metadata.json") -> Path:
    """A LAV-DF root holding ``records`` and an empty file for every record's ``file``."""
    root = tmp_path / "LAV-DF"
    root.mkdir()
    (root / name).write_text(json.dumps(records))
    for item in records:
        if isinstance(item, dict) and isinstance(item.get("file"), str):
            path = root / item["file"]
            if ".." not in item["file"] and not item["file"].startswith("/"):
                path.parent.mkdir(parents=True, exist_ok=True)
                path.touch()
    return root


def test_labels_segments_and_splits(tmp_path: Path) -> None:
    root = lavdf(
        tmp_path,
        [
            record("train/000001.mp4"),
            record("train/000002.mp4", audio=True, fake_periods=[[0.5, 1.25]]),
            record("dev/000003.mp4", video=True),
            record("test/000004.mp4", audio=True, video=True, fake_periods=[[0, 1], [2, 3]]),
        ],
    )
    result = scan(tmp_path)  # the parent of LAV-DF/ is found too
    assert result.dataset == "lavdf" and result.root == root.resolve()
    clips = {c.path: c for c in result.clips}
    real = clips["train/000001.mp4"]
    assert (real.category, real.dataset, real.labelled) == ("RARV", "lavdf", True)
    assert real.fake_segments == real.audio_fake_segments == real.video_fake_segments == ()
    assert real.identity == "000001" and real.original == ""
    audio = clips["train/000002.mp4"]
    assert audio.category == "FARV" and audio.method == "audio_modified"
    assert audio.fake_segments == audio.audio_fake_segments == ((0.5, 1.25),)
    assert audio.video_fake_segments == ()
    # A fake is grouped with the real clip it was made from.
    assert audio.identity == "000001" and audio.original == "train/000001.mp4"
    video = clips["dev/000003.mp4"]
    assert (video.category, video.official_split, video.source_split) == ("RAFV", "val", "dev")
    assert video.audio_fake_segments == () and video.video_fake_segments == ((1.0, 2.0),)
    both = clips["test/000004.mp4"]
    assert both.category == "FAFV" and both.official_split == "test"
    assert both.audio_fake_segments == both.video_fake_segments == ((0.0, 1.0), (2.0, 3.0))
    assert not (result.missing or result.refused or result.unlisted or result.repaired)


def test_min_metadata_is_read_when_the_full_one_is_absent(tmp_path: Path) -> None:
    lavdf(tmp_path, [record("train/000001.mp4")], name="metadata.min.json")
    result = scan(tmp_path / "LAV-DF", "lavdf")
    assert [c.path for c in result.clips] == ["train/000001.mp4"]


def test_segment_repairs_are_reported(tmp_path: Path) -> None:
    root = lavdf(
        tmp_path,
        [
            record("train/a.mp4", audio=True, fake_periods=[[2.0, 3.0], [0.5, 1.0], [0.8, 1.5]]),
            record("train/b.mp4", video=True, fake_periods=[[3.0, 9.0]]),  # past duration 4 s
            record("train/c.mp4", video=True, fake_periods=[[1, 2]], n_fakes=3),
        ],
    )
    result = scan(root, "lavdf")
    clips = {c.path: c for c in result.clips}
    assert clips["train/a.mp4"].fake_segments == ((0.5, 1.5), (2.0, 3.0))
    assert clips["train/b.mp4"].fake_segments == ((3.0, 4.0),)
    repaired = "\n".join(result.repaired)
    assert "metadata.json[0]: fake_periods unsorted or overlapping" in repaired
    assert "metadata.json[1]: fake_periods segment [3, 9] cut at the duration 4 s" in repaired
    assert "metadata.json[2]: n_fakes 3 but 1 fake_periods" in repaired
    assert len(result.repaired) == 3 and not result.refused


@pytest.mark.parametrize(
    ("bad", "reason"),
    [
        ({"modify_video": None}, "no 'modify_video' field"),
        ({"modify_audio": "yes"}, "field 'modify_audio' is 'yes', not true/false"),
        ({"fake_periods": [[-1, 2]]}, "starts before 0"),
        ({"fake_periods": [[2, 2]]}, "does not end after it starts"),
        ({"fake_periods": [[5, 6]]}, "starts at or after the clip's end (4 s)"),
        ({"fake_periods": [[1, "x"]]}, "not a number"),
        ({"fake_periods": "[[1, 2]]"}, "not a list"),
        ({"modify_video": False, "fake_periods": [[1, 2]]}, "a real clip"),
        ({"duration": 0}, "not a positive number"),
        ({"original": "../../etc/passwd"}, "'original' (../../etc/passwd) leaves"),
    ],
)
def test_bad_records_are_refused_alone(tmp_path: Path, bad: dict[str, Any], reason: str) -> None:
    broken = record("train/bad.mp4", video=True) | bad
    broken = {k: v for k, v in broken.items() if v is not None or k == "original"}
    root = lavdf(tmp_path, [record("train/good.mp4"), broken])
    result = scan(root, "lavdf")
    assert [c.path for c in result.clips] == ["train/good.mp4"]
    assert len(result.refused) == 1, result.refused
    assert result.refused[0].startswith("metadata.json[1]: ") and reason in result.refused[0]
    # The file of a refused record is not silently dropped either: it is unlisted.
    assert result.unlisted == ["train/bad.mp4"]


def test_a_record_that_is_not_an_object_is_refused(tmp_path: Path) -> None:
    root = lavdf(tmp_path, [record("train/good.mp4"), ["train/x.mp4"]])
    result = scan(root, "lavdf")
    assert len(result.clips) == 1 and "metadata.json[1]: not a JSON object" in result.refused[0]


def test_missing_files_escapes_and_links_out(tmp_path: Path) -> None:
    outside = tmp_path / "secret.mp4"
    outside.touch()
    root = lavdf(
        tmp_path,
        [
            record("train/good.mp4"),
            record("../secret.mp4"),
            record("/etc/hostname"),
            record("train/link.mp4"),
            record("train/gone.mp4"),
        ],
    )
    (root / "train" / "link.mp4").unlink()
    os.symlink(outside, root / "train" / "link.mp4")
    (root / "train" / "gone.mp4").unlink()
    result = scan(root, "lavdf")
    assert [c.path for c in result.clips] == ["train/good.mp4"]
    assert result.missing == ["metadata.json[4]: train/gone.mp4"]
    refused = "\n".join(result.refused)
    assert "metadata.json[1]: path ../secret.mp4 leaves the dataset root" in refused
    assert "metadata.json[2]: path /etc/hostname leaves the dataset root" in refused
    assert "metadata.json[3]: path train/link.mp4 leaves the dataset root" in refused
    assert len(result.refused) == 3  # the link is reported once, not again by the walk


def test_duplicates_merge_or_are_refused(tmp_path: Path) -> None:
    root = lavdf(
        tmp_path,
        [
            record("train/a.mp4", audio=True),
            record("train/a.mp4", audio=True),
            record("train/a.mp4", video=True),
        ],
    )
    result = scan(root, "lavdf")
    assert len(result.clips) == 1 and result.clips[0].category == "FARV"
    assert result.merged == [
        "metadata.json[1]: train/a.mp4 merged with metadata.json[0] (method audio_modified)"
    ]
    assert result.refused == [
        "metadata.json[2]: duplicate record for train/a.mp4 with other labels than "
        "metadata.json[0]; refused"
    ]


def test_unlisted_media_are_reported(tmp_path: Path) -> None:
    root = lavdf(tmp_path, [record("train/a.mp4")])
    (root / "train" / "extra.mp4").touch()
    assert scan(root, "lavdf").unlisted == ["train/extra.mp4"]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ('{"file": "train/a.mp4"}', "expected a JSON array"),
        ("", "the file is empty"),
        ('[{"file": "train/a.mp4", "modify_video": false}, {"fi', "not valid JSON after record 0"),
    ],
)
def test_broken_metadata_is_a_scan_error(tmp_path: Path, text: str, message: str) -> None:
    root = tmp_path / "LAV-DF"
    root.mkdir()
    (root / "metadata.json").write_text(text)
    with pytest.raises(ScanError, match=message):
        scan(root, "lavdf")


def test_metadata_linked_from_outside_is_never_read(tmp_path: Path) -> None:
    outside = tmp_path / "elsewhere.json"
    outside.write_text(json.dumps([record("train/a.mp4")]))
    root = tmp_path / "LAV-DF"
    root.mkdir()
    os.symlink(outside, root / "metadata.json")
    with pytest.raises(ScanError, match="a link to a file outside the dataset root"):
        scan(root, "lavdf")
