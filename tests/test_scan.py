"""Scanning a FakeAVCeleb tree: meta_data.csv quirks, folder inference, confinement."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from pipeline.datasets.common import ScanError
from pipeline.datasets.fakeavceleb import infer_method, scan_dataset

HEADER = "source,target1,target2,method,category,type,race,gender,path,\n"


def _touch(root: Path, rel: str) -> None:
    path = root / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"not really a video")


def _dataset(tmp_path: Path, rows: list[str], files: list[str]) -> Path:
    root = tmp_path / "FakeAVCeleb_v1.2"
    root.mkdir()
    for rel in files:
        _touch(root, rel)
    (root / "meta_data.csv").write_text(HEADER + "".join(r + "\n" for r in rows))
    return root


A_DIR = "RealVideo-RealAudio/African/men/id00076"
D_DIR = "FakeVideo-FakeAudio/Asian_East/women/id00166"


def test_csv_quirks_labels_and_parent_root(tmp_path: Path) -> None:
    root = _dataset(
        tmp_path,
        [
            f"id00076,-,-,real,A,RealVideo-RealAudio,African,men,00109.mp4,FakeAVCeleb/{A_DIR}",
            f"id00166,id00478,-,fsgan-wav2lip,D,FakeVideo-FakeAudio,Asian_East,women,00109_10_id00476_wavtolip.mp4,FakeAVCeleb/{D_DIR}",
        ],
        [f"{A_DIR}/00109.mp4", f"{D_DIR}/00109_10_id00476_wavtolip.mp4", f"{A_DIR}/extra.mp4"],
    )
    result = scan_dataset(tmp_path)  # the parent of FakeAVCeleb_v1.2 is accepted too
    assert result.used_csv and result.root == root.resolve()
    by_cat = {c.category: c for c in result.clips}
    assert set(by_cat) == {"RARV", "FAFV"}
    assert by_cat["RARV"].path == f"{A_DIR}/00109.mp4"
    assert by_cat["RARV"].identity == "id00076" and by_cat["RARV"].method == "real"
    assert by_cat["FAFV"].method == "fsgan-wav2lip" and by_cat["FAFV"].target1 == "id00478"
    assert result.unlisted == [f"{A_DIR}/extra.mp4"]
    assert len({c.clip_id for c in result.clips}) == 2


def test_missing_escaping_and_inconsistent_rows_are_reported(tmp_path: Path) -> None:
    (tmp_path / "secret.mp4").write_bytes(b"x")
    _dataset(
        tmp_path,
        [
            f"id00076,-,-,real,A,RealVideo-RealAudio,African,men,gone.mp4,FakeAVCeleb/{A_DIR}",
            "id00076,-,-,real,A,RealVideo-RealAudio,African,men,secret.mp4,FakeAVCeleb/../..",
            f"id00076,-,-,real,B,RealVideo-RealAudio,African,men,00109.mp4,FakeAVCeleb/{A_DIR}",
            "id00076,-,-,real,A,RealVideo-RealAudio,African,men,passwd,/etc",
            "too,few,fields",
        ],
        [f"{A_DIR}/00109.mp4"],
    )
    result = scan_dataset(tmp_path)
    assert result.clips == []
    assert len(result.missing) == 1 and "gone.mp4" in result.missing[0]
    reasons = " | ".join(result.refused)
    assert "leaves the dataset root" in reasons
    assert "disagrees with type" in reasons
    assert "expected 10 fields" in reasons
    assert len(result.refused) == 4


def test_symlink_out_of_the_root_is_refused(tmp_path: Path) -> None:
    outside = tmp_path / "outside.mp4"
    outside.write_bytes(b"x")
    root = _dataset(
        tmp_path,
        [f"id00076,-,-,real,A,RealVideo-RealAudio,African,men,link.mp4,FakeAVCeleb/{A_DIR}"],
        [],
    )
    (root / A_DIR).mkdir(parents=True)
    os.symlink(outside, root / A_DIR / "link.mp4")
    result = scan_dataset(root)
    assert result.clips == [] and "leaves the dataset root" in result.refused[0]


def test_both_race_spellings_are_found(tmp_path: Path) -> None:
    spaced = "RealVideo-FakeAudio/Asian (East)/men/id00001/00001_fake.mp4"
    _dataset(
        tmp_path,
        [
            "id00001,-,-,rtvc,B,RealVideo-FakeAudio,Asian_East,men,00001_fake.mp4,FakeAVCeleb/RealVideo-FakeAudio/Asian_East/men/id00001"
        ],
        [spaced],
    )
    result = scan_dataset(tmp_path)
    assert [c.path for c in result.clips] == [spaced]
    assert result.clips[0].race == "Asian_East" and result.respelled == 1


def test_wrong_header_is_refused_with_a_clear_message(tmp_path: Path) -> None:
    root = tmp_path / "FakeAVCeleb_v1.2"
    root.mkdir()
    (root / "meta_data.csv").write_text("name,label\nx.mp4,1\n")
    with pytest.raises(ScanError, match="unexpected header"):
        scan_dataset(root)


def test_tree_without_csv_is_inferred_from_folders(tmp_path: Path) -> None:
    root = tmp_path / "FakeAVCeleb_v1.2"
    files = [
        f"{A_DIR}/00109.mp4",
        "FakeVideo-RealAudio/Caucasian (American)/women/id00200/00109_id00076_wavtolip.mp4",
        "FakeVideo-FakeAudio/African/men/id00300/00200_faceswap-wav2lip.mp4",
        "stray/file.mp4",
    ]
    for rel in files:
        _touch(root, rel)
    result = scan_dataset(root)
    assert not result.used_csv
    assert [(c.category, c.identity, c.method) for c in result.clips] == [
        ("FAFV", "id00300", "faceswap-wav2lip"),
        ("RAFV", "id00200", "wav2lip"),
        ("RARV", "id00076", "real"),
    ]
    assert result.clips[1].race == "Caucasian (American)"
    assert result.unlisted == ["stray/file.mp4"]


def test_not_a_dataset(tmp_path: Path) -> None:
    with pytest.raises(ScanError, match="does not look like FakeAVCeleb"):
        scan_dataset(tmp_path)
    with pytest.raises(ScanError, match="not a directory"):
        scan_dataset(tmp_path / "nope")


def test_infer_method() -> None:
    assert infer_method("RARV", "x.mp4") == "real"
    assert infer_method("FARV", "x_fake.mp4") == "rtvc"
    assert infer_method("RAFV", "00109_10_id00476_wavtolip.mp4") == "wav2lip"
    assert infer_method("FAFV", "a_fsgan-wav2lip.mp4") == "fsgan-wav2lip"
    assert infer_method("RAFV", "a.mp4") == "unknown"


def test_duplicate_rows_of_the_release_are_merged(tmp_path: Path) -> None:
    """The release lists some files once per method: one clip recording both methods."""
    name = "00109_id00478_wavtolip.mp4"
    row = (
        f"id00166,id00478,-,{{}},D,FakeVideo-FakeAudio,Asian_East,women,{name},FakeAVCeleb/{D_DIR}"
    )
    _dataset(
        tmp_path,
        [row.format("faceswap-wav2lip"), row.format("wav2lip"), row.format("wav2lip")],
        [f"{D_DIR}/{name}"],
    )
    result = scan_dataset(tmp_path)
    assert [c.method for c in result.clips] == ["faceswap-wav2lip+wav2lip"]
    assert result.clips[0].target1 == "id00478"
    assert result.refused == [] and result.missing == []
    assert len(result.merged) == 2
    assert result.merged[0].startswith("meta_data.csv:3: ") and "line 2" in result.merged[0]


def test_duplicate_row_with_other_labels_is_refused(tmp_path: Path) -> None:
    name = "00109_id00478_wavtolip.mp4"
    first = f"id00166,-,-,wav2lip,D,FakeVideo-FakeAudio,Asian_East,women,{name},FakeAVCeleb/{D_DIR}"
    other_person = first.replace("id00166,", "id00999,", 1)
    other_race = first.replace(",Asian_East,", ",African,")
    _dataset(tmp_path, [first, other_person, other_race], [f"{D_DIR}/{name}"])
    result = scan_dataset(tmp_path)
    assert [(c.identity, c.race, c.method) for c in result.clips] == [
        ("id00166", "Asian_East", "wav2lip")
    ]
    assert result.merged == []
    assert [r.split(": ")[0] for r in result.refused] == ["meta_data.csv:3", "meta_data.csv:4"]
    assert all("other labels than line 2" in r for r in result.refused)
