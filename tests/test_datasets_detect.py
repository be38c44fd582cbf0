"""Which adapter a root gets: detection of each tree, one level down, and its clear failures."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from pipeline.datasets import DATASETS, detect, scan
from pipeline.datasets.common import ScanError


def lavdf_root(root: Path) -> Path:
    root.mkdir(parents=True)
    (root / "metadata.json").write_text(
        json.dumps(
            [
                {
                    "file": "train/1.mp4",
                    "modify_video": False,
                    "modify_audio": False,
                    "fake_periods": [],
                    "split": "train",
                }
            ]
        )
    )
    return root


def test_each_layout_is_detected(tmp_path: Path) -> None:
    assert DATASETS == ("fakeavceleb", "lavdf", "avdeepfake1m", "csv")
    (tmp_path / "fav" / "RealVideo-RealAudio").mkdir(parents=True)
    assert detect(tmp_path / "fav") == "fakeavceleb"
    assert detect(lavdf_root(tmp_path / "lav")) == "lavdf"
    for marker in ("train_metadata.json", "val_metadata.json", "test_files.txt"):
        root = tmp_path / f"av1m-{marker}"
        root.mkdir()
        (root / marker).write_text("[]" if marker.endswith(".json") else "")
        assert detect(root) == "avdeepfake1m"
    (tmp_path / "av1m-folder" / "val_metadata").mkdir(parents=True)
    assert detect(tmp_path / "av1m-folder") == "avdeepfake1m"


def test_one_level_down_and_scan_follows(tmp_path: Path) -> None:
    lavdf_root(tmp_path / "out" / "LAV-DF")
    assert detect(tmp_path / "out") == "lavdf"
    assert scan(tmp_path / "out").root == (tmp_path / "out" / "LAV-DF").resolve()


def test_a_metadata_json_of_another_kind_is_not_lavdf(tmp_path: Path) -> None:
    root = tmp_path / "other"
    root.mkdir()
    (root / "metadata.json").write_text(json.dumps([{"filename": "a.mp4", "label": "FAKE"}]))
    with pytest.raises(ScanError, match="cannot tell the dataset at .*looked for FakeAVCeleb"):
        detect(root)


def test_unknown_and_ambiguous_layouts_fail_in_one_line(tmp_path: Path) -> None:
    (tmp_path / "nothing").mkdir()
    with pytest.raises(ScanError) as caught:
        detect(tmp_path / "nothing")
    message = str(caught.value)
    assert "\n" not in message
    for wanted in ("meta_data.csv", "metadata.min.json", "train_metadata.json", "test_files.txt"):
        assert wanted in message
    both = lavdf_root(tmp_path / "both")
    (both / "test_files.txt").write_text("")
    with pytest.raises(ScanError, match=r"matches several trees \(lavdf, avdeepfake1m\)"):
        scan(both)
    lavdf_root(tmp_path / "two" / "a")
    lavdf_root(tmp_path / "two" / "b")
    with pytest.raises(ScanError, match=r"several trees \(lavdf \(a\), lavdf \(b\)\)"):
        detect(tmp_path / "two")


def test_csv_is_never_guessed(tmp_path: Path) -> None:
    root = tmp_path / "mine"
    root.mkdir()
    (root / "labels.csv").write_text("path,label\n")
    with pytest.raises(ScanError, match="it holds labels.csv: pass --dataset csv"):
        scan(root)
    with pytest.raises(ScanError, match="is a CSV file; pass --dataset csv"):
        scan(root / "labels.csv")
    assert scan(root, "csv").clips == []


def test_unknown_dataset_name(tmp_path: Path) -> None:
    with pytest.raises(ScanError, match="unknown dataset 'dfdc'; expected one of fakeavceleb"):
        scan(tmp_path, "dfdc")


def test_ingest_cli_names_the_dataset_or_fails_in_one_line(tmp_path: Path) -> None:
    from tests.cli_helpers import run_cli

    (tmp_path / "nothing").mkdir()
    store = tmp_path / "store"
    for extra, message in (
        ((), "cannot tell the dataset at"),
        (("--dataset", "dfdc"), "unknown dataset 'dfdc'"),
        (("--dataset", "csv"), "holds no labels.csv"),
    ):
        proc = run_cli(
            "mscct-pipeline", "ingest", tmp_path / "nothing", "--store", store, *extra, check=False
        )
        assert proc.returncode == 2, proc.stderr
        # The error is one line (a progress bar may have been drawn before it).
        errors = [line for line in proc.stderr.splitlines() if line.startswith("error: ")]
        assert len(errors) == 1 and message in errors[0], proc.stderr


def test_scan_notes_print_repaired_rows(capsys: pytest.CaptureFixture[str]) -> None:
    from pipeline.cli import _print_scan_notes
    from pipeline.datasets import ScanResult

    result = ScanResult(root=Path("."), clips=[], used_csv=True, dataset="lavdf")
    result.repaired = ["metadata.json[3]: fake_periods segment [3, 9] cut at the duration 4 s"]
    _print_scan_notes(result)
    printed = capsys.readouterr().err
    assert "1 rows repaired" in printed
    assert "metadata.json[3]: fake_periods segment [3, 9] cut at the duration 4 s" in printed
