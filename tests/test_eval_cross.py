"""``mscct-train eval --all`` on another dataset's store: recipe checks, per-dataset and frame metrics."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from cli_helpers import call_main
from frame_fixtures import build_segment_store
from trainer_fixtures import build_store

from trainer.cli import main
from trainer.evaluate.localisation import load_evaluation

pytestmark = pytest.mark.slow

COUNTS = {"train": 2, "val": 1, "test": 1}
FAST = ["--set", "epochs=1", "--set", "windows_per_clip=1", "--set", "batch_size=4"]
FAST += ["--set", "window=8"]


def _cli(args: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    capsys.readouterr()
    code = call_main(main, args)
    captured = capsys.readouterr()
    return code, captured.out, captured.err.strip()


def _one_line_error(capsys: pytest.CaptureFixture[str], args: list[str]) -> str:
    code, _, err = _cli(args, capsys)
    assert code == 2, err
    # Notes may come first (e.g. another store's fingerprint); the error is one line.
    errors = [line for line in err.splitlines() if not line.startswith("note: ")]
    assert len(errors) == 1 and "Traceback" not in err, err
    return errors[0]


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A FakeAVCeleb-like store (24 px crops) and the best checkpoint of one epoch on it."""
    base = tmp_path_factory.mktemp("cross")
    store = build_store(base / "store", crop_size=24, frames=16, counts=COUNTS)
    out = base / "run"
    assert call_main(main, ["run", "--store", str(store), "--out", str(out), *FAST]) == 0
    return store, out / "checkpoints" / "best.pt"


def test_eval_all_scores_every_labelled_clip_of_another_dataset(
    trained: tuple[Path, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    _, best = trained
    other = build_segment_store(tmp_path / "lavdf", crop_size=24, frames=20, split=None, trimmed=2)
    report_file = tmp_path / "report.json"
    args = ["eval", str(best), "--store", str(other), "--all", "--json", "--out", str(report_file)]
    code, out, err = _cli(args, capsys)
    assert code == 0, err
    report = json.loads(out)
    assert json.loads(report_file.read_text()) == report
    assert report["n"] == 20 and report["part"] == "all" and report["trained_on"] == 0
    assert report["category_counts"]["FAFV"] == report["category_counts"]["RARV"] == 10
    assert set(report["per_dataset"]) == {"lavdf"} and report["per_dataset"]["lavdf"]["n"] == 20
    assert report["per_dataset"]["lavdf"]["auc"] == report["auc"]
    frames = report["frames"]
    assert frames["clips"] == 20 and frames["frames"] == 20 * 20
    assert 0.0 <= frames["auc"] <= 1.0 and frames["score"] == "mean of window scores"
    assert set(frames["proposals"]) == {f"seg{i:05d}" for i in range(20)}
    for found in frames["proposals"].values():
        for start, end, confidence in found:
            assert 2 / 25 <= start < end <= 22 / 25 and 0.5 <= confidence <= 1.0
    if load_evaluation() is not None:
        assert set(frames["ap"]) == {"0.5", "0.75", "0.9", "0.95"}
        assert set(frames["ar"]) == {"50", "30", "20", "10", "5"}
    # The table says the same, with a line for the dataset and the frame scores.
    code, out, err = _cli(["eval", str(best), "--store", str(other), "--all"], capsys)
    assert code == 0, err
    assert "dataset lavdf (20 clips)" in out and "frame auc" in out


def test_eval_all_on_the_training_store_refuses_the_training_clips(
    trained: tuple[Path, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    store, best = trained
    err = _one_line_error(capsys, ["eval", str(best), "--store", str(store), "--all"])
    assert "8 of the 16 clips to evaluate were trained on" in err, err
    code, out, err = _cli(
        ["eval", str(best), "--store", str(store), "--all", "--force", "--json"], capsys
    )
    assert code == 0, err
    report = json.loads(out)
    assert report["n"] == 16 and report["trained_on"] == 8 and "frames" not in report
    assert set(report["per_dataset"]) == {"fakeavceleb"}
    err = _one_line_error(
        capsys, ["eval", str(best), "--store", str(store), "--all", "--split", "default"]
    )
    assert "--all scores the whole store" in err


def test_a_store_of_another_recipe_is_refused_naming_each_difference(
    trained: tuple[Path, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    _, best = trained
    other = build_segment_store(tmp_path / "big", crop_size=32, split=None, counts=COUNTS)
    err = _one_line_error(capsys, ["eval", str(best), "--store", str(other), "--all"])
    assert "recipe mismatch: crop_size 24 (checkpoint) vs 32 (store)" in err, err
    both = build_segment_store(tmp_path / "both", crop_size=32, fps=30, split=None, counts=COUNTS)
    err = _one_line_error(capsys, ["eval", str(best), "--store", str(both), "--all"])
    assert "fps 25 (checkpoint) vs 30 (store); crop_size 24 (checkpoint) vs 32 (store)" in err, err


def test_eval_all_on_an_unlabelled_store_has_nothing_to_score(
    trained: tuple[Path, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    _, best = trained
    unlabelled = build_segment_store(tmp_path / "test-set", labelled=False, counts=COUNTS)
    err = _one_line_error(capsys, ["eval", str(best), "--store", str(unlabelled), "--all"])
    assert "has no labelled clips to score (8 ok clips, all unlabelled)" in err, err


def test_a_frame_head_checkpoint_scores_frames_with_its_head(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    store = build_segment_store(tmp_path / "s", frames=16, counts=COUNTS)
    out = tmp_path / "run"
    args = [
        "run",
        "--store",
        str(store),
        "--out",
        str(out),
        *FAST,
        "--set",
        "model.frame_head=true",
    ]
    assert call_main(main, args) == 0
    metrics = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert "frame" in metrics[0]["train"]
    code, text, err = _cli(
        ["eval", str(out / "checkpoints" / "best.pt"), "--store", str(store), "--json"], capsys
    )
    assert code == 0, err
    report = json.loads(text)
    assert report["frames"]["score"] == "frame head" and report["frames"]["clips"] == 2
