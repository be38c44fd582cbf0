"""The csv adapter: a user's own labels, per-modality rules, segments, confinement, bad rows."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from pipeline.datasets import scan
from pipeline.datasets.common import ScanError


def dataset(tmp_path: Path, text: str, files: tuple[str, ...] = ()) -> Path:
    """A root with ``labels.csv`` holding ``text`` and an empty file per name in ``files``."""
    root = tmp_path / "mine"
    root.mkdir()
    (root / "labels.csv").write_text(text)
    for name in files:
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).touch()
    return root


def test_labels_identity_split_and_segments(tmp_path: Path) -> None:
    root = dataset(
        tmp_path,
        "path,label,audio_label,video_label,identity,split,fake_segments\n"
        "alice/a.mp4,0,,,,train,\n"
        'alice/b.mp4,1,1,0,,dev,"[[1.5, 2.0], [0.0, 0.5]]"\n'
        "c.mp4,fake,,0,bob,test,\n"
        "d.mp4,1,1,1,carol,,\n",
        ("alice/a.mp4", "alice/b.mp4", "c.mp4", "d.mp4"),
    )
    result = scan(root, "csv")
    assert result.dataset == "csv" and result.root == root.resolve()
    clips = {c.path: c for c in result.clips}
    a, b, c, d = (clips[p] for p in ("alice/a.mp4", "alice/b.mp4", "c.mp4", "d.mp4"))
    assert (a.category, a.identity, a.official_split, a.fake_segments) == (
        "RARV",
        "alice",
        "train",
        None,
    )
    assert (b.category, b.official_split, b.source_split) == ("FARV", "val", "dev")
    assert b.fake_segments == b.audio_fake_segments == ((0.0, 0.5), (1.5, 2.0))
    assert b.video_fake_segments == ()
    # video_label 0 on a fake row: the audio is the fake modality.
    assert (c.category, c.identity, c.official_split) == ("FARV", "bob", "test")
    assert d.category == "FAFV" and d.fake_segments is None and d.official_split == ""
    assert result.repaired == [
        "labels.csv:3: fake_segments unsorted or overlapping; sorted and merged into 2"
    ]


def test_root_may_name_the_csv_itself(tmp_path: Path) -> None:
    root = tmp_path / "data"
    root.mkdir()
    (root / "x.mp4").touch()
    (root / "my_labels.csv").write_text("label,path\n0,x.mp4\n")
    result = scan(root / "my_labels.csv", "csv")
    assert result.root == root.resolve() and [c.path for c in result.clips] == ["x.mp4"]


@pytest.mark.parametrize(
    ("row", "reason"),
    [
        ("bad.mp4,1,,", "label 1 (fake) without audio_label or video_label"),
        ("bad.mp4,1,1,", "one modality fake and the other not given"),
        ("bad.mp4,0,1,", "label 0 (real) but a per-modality label says fake"),
        ("bad.mp4,1,0,0", "audio_label and video_label are both 0"),
        ("bad.mp4,maybe,,", "label 'maybe' is not 0, 1, real or fake"),
        ("bad.mp4,,,", "the label is empty"),
        ("bad.mp4,1,1,0,,holdout,", "unknown split 'holdout'"),
        ('bad.mp4,1,1,0,,,"[[2,1]]"', "does not end after it starts"),
        ('bad.mp4,1,1,0,,,"[[1,2]"', "fake_segments is not JSON"),
        ('bad.mp4,0,,,,,"[[1,2]]"', "fake_segments for a row labelled real"),
    ],
)
def test_bad_rows_are_refused_alone(tmp_path: Path, row: str, reason: str) -> None:
    header = "path,label,audio_label,video_label,identity,split,fake_segments\n"
    root = dataset(tmp_path, f"{header}good.mp4,0,,\n{row}\n", ("good.mp4", "bad.mp4"))
    result = scan(root, "csv")
    assert [c.path for c in result.clips] == ["good.mp4"]
    assert len(result.refused) == 1 and result.refused[0].startswith("labels.csv:3: ")
    assert reason in result.refused[0], result.refused


def test_paths_are_confined_and_duplicates_handled(tmp_path: Path) -> None:
    outside = tmp_path / "outside.mp4"
    outside.touch()
    root = dataset(
        tmp_path,
        "path,label,audio_label,video_label\n"
        "a.mp4,0,,\n../outside.mp4,0,,\n/etc/hostname,0,,\nlink.mp4,0,,\n"
        "gone.mp4,0,,\na.mp4,0,0,0\na.mp4,1,1,0\n",
        ("a.mp4", "stray.mp4"),
    )
    os.symlink(outside, root / "link.mp4")
    result = scan(root, "csv")
    assert [c.path for c in result.clips] == ["a.mp4"]
    assert result.missing == ["labels.csv:6: gone.mp4"]
    assert result.merged == ["labels.csv:7: a.mp4 merged with labels.csv:2 (method real)"]
    refused = "\n".join(result.refused)
    for line, path in ((3, "../outside.mp4"), (4, "/etc/hostname"), (5, "link.mp4")):
        assert f"labels.csv:{line}: path {path} leaves the dataset root" in refused
    assert "labels.csv:8: duplicate record for a.mp4 with other labels" in refused
    assert len(result.refused) == 4 and result.unlisted == ["stray.mp4"]


@pytest.mark.parametrize(
    ("header", "message"),
    [
        ("path,label,audio_lable\n", "unknown column"),
        ("path,audio_label\n", "no label column"),
        ("path,label,label\n", "a column named twice"),
    ],
)
def test_bad_header_is_a_scan_error(tmp_path: Path, header: str, message: str) -> None:
    with pytest.raises(ScanError, match=message):
        scan(dataset(tmp_path, header), "csv")


def test_a_folder_without_labels_csv_or_a_csv_link_out(tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    with pytest.raises(ScanError, match="holds no labels.csv"):
        scan(tmp_path / "empty", "csv")
    outside = tmp_path / "elsewhere.csv"
    outside.write_text("path,label\n")
    os.symlink(outside, tmp_path / "empty" / "labels.csv")
    with pytest.raises(ScanError, match="a link to a file outside the dataset root"):
        scan(tmp_path / "empty", "csv")
