"""The whole chain as a user runs it: synth -> ingest -> split -> train -> eval -> predict."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from cli_helpers import run_cli

import schemas


def test_chain_from_raw_media_to_predictions(
    synth_root: Path, ingested_store: Path, tmp_path: Path
) -> None:
    store = tmp_path / "store"
    shutil.copytree(ingested_store, store)
    run_cli("mscct-pipeline", "split", "--store", store, "--balance", "--ratios", "0.34,0.33,0.33")
    out = tmp_path / "run"
    proc = run_cli(
        "mscct-train", "run", "--store", store, "--config", "tiny", "--out", out,
        "--set", "epochs=1", "--set", "windows_per_clip=1",
    )  # fmt: skip
    assert "best epoch 1 (chosen on val)" in proc.stdout and "plots:" in proc.stdout
    report = json.loads((out / "report.json").read_text())
    for part in ("val", "test"):
        assert set(report[part]["per_category_acc"]) == set(schemas.CATEGORIES)
    for name in ("roc", "confusion", "tsne"):
        assert (out / "plots" / f"{name}.png").stat().st_size > 1000
    meta = json.loads((out / "meta.json").read_text())
    assert meta["store_fingerprint"] == schemas.store_fingerprint(store)

    evaluated = run_cli(
        "mscct-train", "eval", out / "checkpoints" / "best.pt", "--store", store, "--json"
    )
    metrics = json.loads(evaluated.stdout)
    assert metrics["auc"] == report["test"]["auc"] and metrics["acc"] == report["test"]["acc"]

    videos = sorted(synth_root.rglob("*.mp4"))[:2]
    broken = tmp_path / "broken.mp4"
    broken.write_bytes(b"not a video")
    predicted = run_cli(
        "mscct-train", "predict", out / "checkpoints" / "best.pt", *videos, broken, "--json",
        check=False,
    )  # fmt: skip
    assert predicted.returncode == 1  # one file could not be read
    rows = json.loads(predicted.stdout)
    assert [Path(r["file"]) for r in rows] == [*videos, broken]
    for row in rows[:2]:
        assert row["error"] is None
        assert all(0.0 <= row[k] <= 1.0 for k in ("audio_fake", "video_fake", "fake"))
    assert rows[2]["fake"] is None and "cannot decode" in rows[2]["error"]
