"""Every baseline detector through ``mscct-train`` as MSCT goes: ``run --set model.name=X``
trains a few steps with a falling loss, ``eval`` reproduces the report, an interrupted run
resumes to the same numbers, ``predict`` scores a raw video, and one runs under torchrun.

The stores are the trainer fixtures' synthetic tensors (MRDF's with an ``fbank`` recipe);
the video ``predict`` reads is a real mp4 of the shared synthetic dataset.
"""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from cli_helpers import call_main
from trainer_fixtures import build_store

from trainer.cli import main
from trainer.config.settings import load_config
from trainer.evaluate.inference import model_from_checkpoint
from trainer.model import build_model
from trainer.train.run import TrainingRun, train

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[1]
BASELINES = ("audio_only", "video_only", "late_fusion", "mrdf_ce", "mrdf_margin", "mds")
#: Resumed (a second training each): one of each family, to keep the suite short.
RESUMED = ("audio_only", "mrdf_ce")
COUNTS = {"train": 4, "val": 1, "test": 1}  # clips per category and part
SETTINGS = ["epochs=3", "window=8", "windows_per_clip=1", "batch_size=4", "lr=2e-3"]
SETTINGS += ["precise_bn=1", "num_workers=0", "device=cpu"]


def _features(name: str) -> str:
    return "fbank" if name.startswith("mrdf") else "mfcc"


@pytest.fixture(scope="module")
def stores(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("detector_stores")
    return {
        features: build_store(
            root / features, crop_size=24, frames=16, counts=COUNTS, features=features
        )
        for features in ("mfcc", "fbank")
    }


@pytest.fixture(scope="module", params=BASELINES)
def run(
    request: pytest.FixtureRequest,
    stores: dict[str, Path],
    tmp_path_factory: pytest.TempPathFactory,
) -> tuple[str, Path, Path]:
    """(detector, store, run dir) of ``mscct-train run --set model.name=<detector>``."""
    name: str = request.param
    store = stores[_features(name)]
    out = tmp_path_factory.mktemp(name) / "run"
    args = ["run", "--store", str(store), "--out", str(out), "--set", f"model.name={name}"]
    assert call_main(main, [*args, *(f"--set={kv}" for kv in SETTINGS)]) == 0
    return name, store, out


def _epochs(run_dir: Path) -> list[dict[str, Any]]:
    lines = [json.loads(x) for x in (run_dir / "metrics.jsonl").read_text().splitlines()]
    for line in lines:
        line.pop("epoch_time_s")
    return lines


def test_it_trains_with_a_falling_loss_and_reports(run: tuple[str, Path, Path]) -> None:
    name, _, out = run
    epochs = _epochs(out)
    assert len(epochs) == 3
    assert epochs[-1]["train"]["total"] < epochs[0]["train"]["total"], epochs
    report = json.loads((out / "report.json").read_text())
    assert report["test"]["n"] == 4 and 0.0 <= report["test"]["auc"] <= 1.0
    assert report["detector"] == name
    assert f"name: {name}" in (out / "config.yaml").read_text()
    cfg = load_config("tiny", [f"model.name={name}", *SETTINGS])
    meta = json.loads((out / "meta.json").read_text())
    assert meta["parameters"] == sum(p.numel() for p in build_model(cfg.model).parameters())
    model, _, saved = model_from_checkpoint(out / "checkpoints" / "best.pt")
    assert saved.model == cfg.model and type(model) is type(build_model(cfg.model))


def test_eval_reproduces_the_report(
    run: tuple[str, Path, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    _, store, out = run
    capsys.readouterr()
    best = out / "checkpoints" / "best.pt"
    assert call_main(main, ["eval", str(best), "--store", str(store), "--json"]) == 0
    metrics = json.loads(capsys.readouterr().out)
    report = json.loads((out / "report.json").read_text())
    assert metrics["n"] == report["test"]["n"]
    assert math.isclose(metrics["auc"], report["test"]["auc"], abs_tol=1e-6)
    assert metrics["per_category_acc"] == report["test"]["per_category_acc"]


class Interrupted(Exception):
    """Raised after the first checkpoint, as a killed run would stop."""


@pytest.mark.parametrize("run", RESUMED, indirect=True)
def test_an_interrupted_run_resumes_to_the_same_numbers(
    run: tuple[str, Path, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    name, store, reference = run
    cfg = load_config("tiny", [f"model.name={name}", *SETTINGS])
    save = TrainingRun.save_checkpoint

    def save_then_stop(self: TrainingRun, improved: bool, rngs: list[dict[str, Any]]) -> None:
        save(self, improved, rngs)
        raise Interrupted

    out = tmp_path / "resumed"
    with monkeypatch.context() as patch:
        patch.setattr(TrainingRun, "save_checkpoint", save_then_stop)
        with pytest.raises(Interrupted):
            train(cfg, store, "default", out, log=lambda _: None)
    assert len(_epochs(out)) == 1 and not (out / "report.json").exists()
    train(cfg, store, "default", out, resume=True, log=lambda _: None)
    assert _epochs(out) == _epochs(reference)
    got, want = (json.loads((p / "report.json").read_text()) for p in (out, reference))
    assert got["test"] == want["test"] and got["best_epoch"] == want["best_epoch"]


def test_predict_scores_a_raw_video(
    run: tuple[str, Path, Path], synth_root: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    name, _, out = run
    video = next(synth_root.rglob("*.mp4"))
    capsys.readouterr()
    best = out / "checkpoints" / "best.pt"
    assert call_main(main, ["predict", str(best), str(video), "--json"]) == 0
    (row,) = json.loads(capsys.readouterr().out)
    assert row["error"] is None
    assert all(0.0 <= row[k] <= 1.0 for k in ("audio_fake", "video_fake", "fake"))
    if name in ("audio_only", "mrdf_margin"):  # no video head: exactly one half
        assert row["video_fake"] == 0.5
    if name == "video_only":
        assert row["audio_fake"] == 0.5 and row["fake"] == row["video_fake"]


def test_a_baseline_trains_under_torchrun(stores: dict[str, Path], tmp_path: Path) -> None:
    out = tmp_path / "ddp"
    cmd = [
        sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2",
        "--standalone", "-m", "trainer.cli", "run", "--store", str(stores["mfcc"]),
        "--out", str(out), "--set", "model.name=late_fusion", "--set", "epochs=1",
        "--set", "window=8", "--set", "batch_size=4", "--set", "windows_per_clip=1",
    ]  # fmt: skip
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    result = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    assert json.loads((out / "meta.json").read_text())["world_size"] == 2
    report = json.loads((out / "report.json").read_text())
    assert report["test"]["n"] == 4 and report["val"]["n"] == 4
    assert "name: late_fusion" in (out / "config.yaml").read_text()
