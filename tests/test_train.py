"""End-to-end training on a synthetic store: separation, exact resume, honest selection, DDP."""

from __future__ import annotations

import json
import math
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from cli_helpers import call_main
from trainer_fixtures import build_store

from trainer.cli import main

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[1]
COUNTS = {"train": 12, "val": 4, "test": 4}
SETTINGS = [
    *("--set", "epochs=3", "--set", "lr=2e-3", "--set", "batch_size=16"),
    *("--set", "windows_per_clip=4"),  # 192 windows an epoch: every test here, in half the time
]


def _strict_json(text: str) -> dict:
    def refuse(name: str) -> None:
        raise ValueError(f"non-standard JSON constant {name}")

    return json.loads(text, parse_constant=refuse)


def _cli(args: list[str]) -> int:
    return call_main(main, args)


def _epochs(run: Path) -> list[dict]:
    lines = [json.loads(x) for x in (run / "metrics.jsonl").read_text().splitlines()]
    for line in lines:
        line.pop("epoch_time_s")
    return lines


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_store(
        tmp_path_factory.mktemp("s") / "store", crop_size=24, frames=16, counts=COUNTS
    )


@pytest.fixture(scope="module")
def reference(store: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("runs") / "ref"
    assert _cli(["run", "--store", str(store), "--out", str(out), *SETTINGS]) == 0
    return out


def test_tiny_separates_real_from_fake(reference: Path) -> None:
    report = _strict_json((reference / "report.json").read_text())
    test = report["test"]
    assert test["auc"] >= 0.8, test  # chance is 0.5; the synthetic cues are easy
    assert test["audio_auc"] >= 0.8 and test["video_auc"] >= 0.8
    assert set(test["per_category_acc"]) == {"RARV", "FARV", "RAFV", "FAFV"}
    assert 0.0 <= test["acc"] <= 1.0 and report["val"]["auc"] is not None
    assert 1 <= report["best_epoch"] <= 3
    assert len(_epochs(reference)) == 3
    meta = json.loads((reference / "meta.json").read_text())
    assert meta["store_fingerprint"] and meta["git_revision"] and meta["world_size"] == 1
    assert (reference / "config.yaml").read_text().startswith("model:")
    for name in ("roc.png", "confusion.png", "tsne.png"):
        assert (reference / "plots" / name).read_bytes()[:4] == b"\x89PNG"
    assert (reference / "checkpoints" / "best.pt").is_file()
    assert any((reference / "tb").iterdir())


def test_killed_run_resumes_to_identical_metrics(
    store: Path, reference: Path, tmp_path: Path
) -> None:
    out = tmp_path / "killed"
    cmd = [sys.executable, "-m", "trainer.cli", "run", "--store", str(store), "--out", str(out)]
    # With two persistent DataLoader workers: the batches (and so every number) must be
    # those of the reference run, which read in process.
    workers = ["--set", "num_workers=2"]
    proc = subprocess.Popen([*cmd, *SETTINGS, *workers], cwd=ROOT, stdout=subprocess.DEVNULL)
    last = out / "checkpoints" / "last.pt"
    deadline = time.monotonic() + 300
    while not last.exists() and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.02)
    os.kill(proc.pid, signal.SIGKILL)  # mid-epoch 2 (or, at worst, later but before the end)
    proc.wait()
    assert last.exists() and not (out / "report.json").exists()
    assert _cli(["run", "--store", str(store), "--out", str(out), "--resume"]) == 0
    assert _epochs(out) == _epochs(reference)
    got, want = (_strict_json((p / "report.json").read_text()) for p in (out, reference))
    assert got["test"] == want["test"] and got["val"] == want["val"]
    assert got["best_epoch"] == want["best_epoch"]


def test_selection_never_reads_test_labels(reference: Path, tmp_path: Path) -> None:
    scrambled = build_store(
        tmp_path / "scrambled", crop_size=24, frames=16, counts=COUNTS, scramble_test_labels=True
    )
    out = tmp_path / "run"
    assert _cli(["run", "--store", str(scrambled), "--out", str(out), *SETTINGS]) == 0
    assert _epochs(out) == _epochs(reference)  # same training and val trajectory
    got, want = (_strict_json((p / "report.json").read_text()) for p in (out, reference))
    assert got["best_epoch"] == want["best_epoch"]
    assert got["test"]["category_counts"] == want["test"]["category_counts"]
    assert got["test"]["per_category_acc"] != want["test"]["per_category_acc"]


def test_eval_command_reproduces_the_report(
    store: Path, reference: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    best = reference / "checkpoints" / "best.pt"
    capsys.readouterr()
    assert _cli(["eval", str(best), "--store", str(store), "--json"]) == 0
    metrics = _strict_json(capsys.readouterr().out)
    report = _strict_json((reference / "report.json").read_text())
    assert metrics["part"] == "test" and metrics["n"] == 16
    assert math.isclose(metrics["auc"], report["test"]["auc"], abs_tol=1e-6)
    assert metrics["per_category_acc"] == report["test"]["per_category_acc"]


def test_predict_on_arrays_matches_the_dataset(store: Path, reference: Path) -> None:
    from schemas import open_clip
    from trainer.data.dataset import WindowDataset, split_clips
    from trainer.evaluate.inference import (
        model_from_checkpoint,
        predict_arrays,
        windows_from_arrays,
    )

    model, _, cfg = model_from_checkpoint(reference / "checkpoints" / "best.pt")
    clip = split_clips(store)["test"][0]
    video, audio = open_clip(store, clip.clip_id)
    batch = windows_from_arrays(np.asarray(video), np.asarray(audio), cfg.window)
    item = WindowDataset(store, [clip], cfg.window, train=False)[0]
    torch.testing.assert_close(batch["audio"][0], item["audio"])
    torch.testing.assert_close(batch["video"][0], item["video"])
    probs = predict_arrays(model, cfg, np.asarray(video), np.asarray(audio))
    assert set(probs) == {"audio", "video", "overall"}
    assert all(0.0 <= p <= 1.0 for p in probs.values())


def test_user_errors_are_one_line(
    store: Path, reference: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    cases: list[tuple[list[str], str]] = [
        (
            ["run", "--store", str(store), "--out", str(tmp_path / "a"), "--set", "model.dimm=3"],
            "model.dimm",
        ),
        (["run", "--store", str(tmp_path / "nope"), "--out", str(tmp_path / "b")], "no store"),
        (
            ["run", "--store", str(store), "--split", "other", "--out", str(tmp_path / "c")],
            "no split",
        ),
        (["run", "--store", str(store), "--out", str(reference)], "already holds a run"),
    ]
    bad = tmp_path / "bad.pt"
    bad.write_bytes(b"not a checkpoint at all")
    cases.append((["eval", str(bad), "--store", str(store)], "corrupt"))
    half = tmp_path / "half.pt"
    half.write_bytes((reference / "checkpoints" / "best.pt").read_bytes()[:5000])
    cases.append((["eval", str(half), "--store", str(store)], "corrupt"))
    alien = tmp_path / "alien.pt"
    torch.save({"weights": torch.zeros(2)}, alien)
    cases.append((["eval", str(alien), "--store", str(store)], "not an mscct checkpoint"))
    other = build_store(
        tmp_path / "other", crop_size=24, frames=16, counts={"train": 1, "val": 1, "test": 1}
    )
    cases.append(
        (["run", "--store", str(other), "--out", str(reference), "--resume"], "store changed")
    )
    for args, expected in cases:
        capsys.readouterr()
        assert _cli(args) == 2, args
        err = capsys.readouterr().err.strip()
        assert expected in err and "\n" not in err and "Traceback" not in err, (args, err)


def test_ddp_two_gloo_processes(tmp_path: Path) -> None:
    # 3 clips of 20 frames, windows of 16 at stride 2: 3 windows each (starts 0, 2, 4),
    # 9 in all. Over 2 ranks, a sampler that pads to equal shards would score one
    # window twice; one that drops the remainder would lose one.
    import schemas

    store = build_store(
        tmp_path / "odd", crop_size=24, frames=20, counts={"train": 2, "val": 1, "test": 1}
    )
    rows = schemas.read_split(store).to_pylist()
    for part in ("val", "test"):  # 4 clips each: move one to train, leaving 3
        next(r for r in rows if r["split"] == part)["split"] = "train"
    table = schemas.rows_to_table(rows, schemas.SPLIT_SCHEMA)
    schemas.write_split(store, "default", table, schemas.split_params(store), overwrite=True)
    out = tmp_path / "ddp"
    cmd = [
        sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2",
        "--standalone", "-m", "trainer.cli", "run", "--store", str(store), "--out", str(out),
        "--set", "epochs=1", "--set", "batch_size=4", "--set", "eval_stride=2",
    ]  # fmt: skip
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    result = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    assert sorted(p.name for p in (out / "checkpoints").iterdir()) == ["best.pt", "last.pt"]
    assert len(_epochs(out)) == 1
    report = _strict_json((out / "report.json").read_text())
    for part in ("val", "test"):  # every clip scored from exactly its own 3 windows
        assert report[part]["n"] == 3, part
        assert report[part]["windows"] == {"total": 9, "min_per_clip": 3, "max_per_clip": 3}
    meta = json.loads((out / "meta.json").read_text())
    assert meta["world_size"] == 2


@pytest.mark.parametrize("args", [["bogus"], ["run", "--bogus"]])
def test_a_mistyped_command_or_option_is_usage_not_a_traceback(args: list[str]) -> None:
    cli = Path(sys.executable).parent / "mscct-train"
    done = subprocess.run([str(cli), *args], capture_output=True, text=True, timeout=120)
    assert done.returncode == 2, done.stderr
    assert "Traceback" not in done.stderr and "Usage: mscct-train" in done.stderr
    assert "No such" in done.stderr
