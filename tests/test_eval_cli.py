"""``mscct-train eval``: another store's clips, held-out checks, untrusted checkpoints, config errors."""

from __future__ import annotations

import json
import shutil
import zipfile
from pathlib import Path

import pytest
from cli_helpers import call_main
from store_copies import copy_store
from trainer_fixtures import build_store

import schemas
from trainer.cli import main

pytestmark = pytest.mark.slow

COUNTS = {"train": 2, "val": 1, "test": 1}
FAST = ["--set", "epochs=1", "--set", "windows_per_clip=1", "--set", "batch_size=4"]


def _cli(args: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    capsys.readouterr()
    code = call_main(main, args)
    captured = capsys.readouterr()
    return code, captured.out, captured.err.strip()


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A small store and the best checkpoint of a one-epoch run on it."""
    base = tmp_path_factory.mktemp("eval")
    store = build_store(base / "store", crop_size=24, frames=16, counts=COUNTS)
    out = base / "run"
    assert call_main(main, ["run", "--store", str(store), "--out", str(out), *FAST]) == 0
    return store, out / "checkpoints" / "best.pt"


def _eval_json(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[dict, str]:
    code, out, err = _cli(["eval", *args, "--json"], capsys)
    assert code == 0, err
    return json.loads(out), err


def _one_line_error(capsys: pytest.CaptureFixture[str], args: list[str]) -> str:
    code, _, err = _cli(args, capsys)
    assert code == 2, err
    assert "\n" not in err and "Traceback" not in err, err
    return err


def test_eval_reports_balanced_accuracy_eer_and_ap(
    trained: tuple[Path, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    store, best = trained
    metrics, _ = _eval_json(capsys, str(best), "--store", str(store))
    for head in ("", "audio_", "video_"):
        for key in ("acc", "balanced_acc", "auc", "ap", "eer"):
            assert f"{head}{key}" in metrics, f"{head}{key}"
    assert metrics["windows"] == {"total": 4, "min_per_clip": 1, "max_per_clip": 1}
    assert metrics["trained_on"] == 0 and metrics["split_store"] == str(store)


def test_eval_refuses_clips_the_checkpoint_trained_on(
    trained: tuple[Path, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    store, best = trained
    err = _one_line_error(capsys, ["eval", str(best), "--store", str(store), "--part", "train"])
    assert "8 of the 8 clips to evaluate were trained on" in err and "--force" in err, err
    # A split whose test part holds training clips: the checkpoint's record catches it.
    leaky_store = shutil.copytree(store, tmp_path / "leaky")
    rows = schemas.read_split(leaky_store).to_pylist()
    for row in rows:
        row["split"] = (
            {"train": "test", "test": "train"}[row["split"]] if row["split"] != "val" else "val"
        )
    table = schemas.rows_to_table(rows, schemas.SPLIT_SCHEMA)
    schemas.write_split(leaky_store, "leaky", table, {"seed": 0})
    err = _one_line_error(
        capsys, ["eval", str(best), "--store", str(leaky_store), "--split", "leaky"]
    )
    assert "were trained on by this checkpoint" in err, err
    metrics, warning = _eval_json(
        capsys, str(best), "--store", str(leaky_store), "--split", "leaky", "--force"
    )
    assert metrics["trained_on"] == metrics["n"] == 8
    assert "WARNING: 8 of the 8 evaluated clips were trained on" in warning


def test_eval_on_another_store_uses_the_training_split_by_clip_id(
    trained: tuple[Path, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    store, best = trained
    # The same dataset ingested with another recipe (trimmed, compressed), no split.
    other = copy_store(
        store, tmp_path / "other", with_splits=False, trim_silence=True, layout="zstd"
    )
    home, _ = _eval_json(capsys, str(best), "--store", str(store))
    there, notes = _eval_json(
        capsys, str(best), "--store", str(other), "--split", "default", "--split-store", str(store)
    )
    assert there["split_store"] == str(store) and there["n"] == home["n"] == 4
    assert "taken from --split-store" in notes and "trim_silence" in notes
    for key in ("acc", "auc", "balanced_acc", "per_category_acc"):  # same tensors, same scores
        assert there[key] == pytest.approx(home[key]), key
    # A test clip the other ingest could not make is left out, and said so.
    gone = (
        schemas.read_split(store)
        .filter(schemas.read_split(store).column("split").to_numpy(zero_copy_only=False) == "test")[
            "clip_id"
        ][0]
        .as_py()
    )
    schemas.remove_clip(other, gone)
    fewer, notes = _eval_json(capsys, str(best), "--store", str(other), "--split-store", str(store))
    assert fewer["n"] == 3 and fewer["unavailable"] == 1 and gone in notes


def test_eval_on_another_store_refuses_what_it_cannot_score(
    trained: tuple[Path, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    store, best = trained
    fbank = copy_store(store, tmp_path / "fbank", features="fbank")
    err = _one_line_error(capsys, ["eval", str(best), "--store", str(fbank)])
    assert "recipe mismatch: features mfcc (checkpoint) vs fbank (store)" in err, err
    other = copy_store(store, tmp_path / "other", with_splits=False)
    err = _one_line_error(capsys, ["eval", str(best), "--store", str(other), "--split", "nope"])
    assert "has no split 'nope'" in err and "mscct-pipeline split" in err, err


def test_a_checkpoint_that_inflates_beyond_its_size_is_refused_before_loading(
    trained: tuple[Path, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    store, best = trained
    bomb = tmp_path / "bomb.pt"
    with zipfile.ZipFile(best) as src, zipfile.ZipFile(bomb, "w") as dst:
        for entry in src.infolist():
            data = src.read(entry)
            if entry.filename.endswith("data.pkl"):
                data += b"\0" * (300 << 20)  # compresses to ~300 KB, inflates to 300 MB
            dst.writestr(entry.filename, data, compress_type=zipfile.ZIP_DEFLATED)
    assert bomb.stat().st_size < 10 << 20
    err = _one_line_error(capsys, ["eval", str(bomb), "--store", str(store)])
    assert "declares" in err and "not an mscct checkpoint" in err, err
    assert "weights_only" not in err


def test_an_unsafe_checkpoint_never_suggests_loading_it_unsafely(
    trained: tuple[Path, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    import torch

    store, _ = trained
    unsafe = tmp_path / "unsafe.pt"
    torch.save({"model": _Opaque()}, unsafe)  # an object of a class, not plain data
    err = _one_line_error(capsys, ["eval", str(unsafe), "--store", str(store)])
    assert "could run code" in err and "weights_only" not in err, err
    assert "can still be loaded" not in err, err


class _Opaque:
    """Any class: weights_only loading refuses to build it."""


@pytest.mark.parametrize(
    ("setting", "expected"),
    [("lr=nan", "must be finite"), ("eval_stride=17", "eval_stride must be in [1, window=16]")],
)
def test_invalid_settings_are_one_line(
    trained: tuple[Path, Path],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    setting: str,
    expected: str,
) -> None:
    store, _ = trained
    args = ["run", "--store", str(store), "--out", str(tmp_path / "r"), "--set", setting]
    err = _one_line_error(capsys, args)
    assert expected in err, err


def test_unreadable_config_files_are_one_line(
    trained: tuple[Path, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    store, _ = trained
    latin = tmp_path / "latin.yaml"
    latin.write_bytes(b"# r\xe9glages\nepochs: 1\n")
    broken = tmp_path / "broken.yaml"
    broken.write_text("epochs: 1\nmodel:\n  dim: 8\n dropout: [0.1\n")
    for path, expected in ((latin, "is not UTF-8 text"), (broken, "is not valid YAML at line")):
        args = ["run", "--store", str(store), "--out", str(tmp_path / "r"), "--config", str(path)]
        err = _one_line_error(capsys, args)
        assert expected in err, err


def test_audit_keeps_eval_baseline_and_says_what_it_skips(
    trained: tuple[Path, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    """``mscct-train audit`` on a trained MSCT: its baseline is the run's test scores; with one
    real clip in the part there is no other identity's real audio to swap in."""
    from trainer.audit.report import AUDIT_SCORES, DESCRIPTIONS, print_audit

    store, best = trained
    # The run's test scores: eval's, of the same checkpoint on the same part.
    metrics = json.loads((best.parent.parent / "report.json").read_text())["test"]
    code, out, err = _cli(["audit", str(best), "--store", str(store), "--json"], capsys)
    assert code == 0, err
    report = json.loads(out)
    assert list(report["perturbations"]) == list(DESCRIPTIONS)
    for entry in report["perturbations"].values():
        assert set(entry) == {"description", "skipped", "audio", "video", "fused"}
        assert all(set(entry[head]) == set(AUDIT_SCORES) for head in ("audio", "video", "fused"))
    assert report["n"] == 4 and report["part"] == "test" and report["threshold"] == 0.5
    base = report["perturbations"]["baseline"]
    assert base["fused"]["auc"] == pytest.approx(metrics["auc"], abs=1e-9)
    assert base["audio"]["auc"] == pytest.approx(metrics["audio_auc"], abs=1e-9)
    assert base["video"]["balanced_acc"] == pytest.approx(metrics["video_balanced_acc"], abs=1e-9)
    swap = report["perturbations"]["swap_audio"]
    assert "another identity" in swap["skipped"] and swap["fused"]["auc"] is None
    print_audit(report, "audit")  # the table the command prints without --json
    out = capsys.readouterr().out
    assert all(name in out for name in DESCRIPTIONS) and "swap_audio skipped" in out, out
    err = _one_line_error(capsys, ["audit", str(best), "--store", str(store), "--part", "train"])
    assert "were trained on" in err, err
