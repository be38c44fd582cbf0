"""Train on one dataset, evaluate on another: the whole path a user takes, on real media.

Synthetic LAV-DF and AV-Deepfake1M trees (real flite voices and rendered faces, with
fake segments inside real clips), ingested by the real pipeline (ffmpeg, dlib, a local
Ray), split by each dataset's own field, by an imported identity list and with strict
identities; a tiny model with the frame head trained on the LAV-DF store is evaluated on
the AV-Deepfake1M store with frame-level metrics.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from cli_helpers import run_cli

import schemas


@pytest.fixture(scope="module")
def stores(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """``{"lavdf": store, "avdeepfake1m": store}``, each ingested from its synthetic tree."""
    base = tmp_path_factory.mktemp("cross")
    made = {}
    for seed, layout in enumerate(("lavdf", "avdeepfake1m")):
        tree, store = base / f"{layout}-tree", base / f"{layout}-store"
        run_cli("mscct-pipeline", "synth", tree, "--format", layout, "--per-category", "1",
                "--seed", str(seed))  # fmt: skip
        # No --dataset: each layout is detected from its metadata files.
        run_cli("mscct-pipeline", "ingest", tree, "--store", store, "--workers", "2")
        made[layout] = store
    return made


def test_each_store_keeps_its_dataset_labels_and_frame_labels(stores: dict[str, Path]) -> None:
    for layout, store in stores.items():
        manifest = schemas.read_manifest(store).to_pylist()
        assert {row["dataset"] for row in manifest} == {layout}
        assert all(row["status"] == "ok" for row in manifest)
        labelled = [row for row in manifest if row["labelled"]]
        assert {row["official_split"] for row in labelled} >= {"train", "val"}
        partial = 0
        for row in labelled:
            frames = schemas.read_frame_labels(store, row["clip_id"])
            assert frames is not None and len(frames["fake"]) == row["num_frames"]
            # A fake clip is fake on some frames; a real one on none.
            assert bool(frames["fake"].any()) == bool(row["label"])
            partial += int(0 < frames["fake"].mean() < 1)
        assert partial >= 2  # fake segments inside real clips, not only whole-clip fakes
    unlabelled = [
        row for row in schemas.read_manifest(stores["avdeepfake1m"]).to_pylist()
        if not row["labelled"]
    ]  # fmt: skip
    assert unlabelled and all(row["label"] is None for row in unlabelled)


def test_official_imported_and_strict_splits(stores: dict[str, Path], tmp_path: Path) -> None:
    store = stores["lavdf"]
    run_cli("mscct-pipeline", "split", "--store", store, "--official")
    official = schemas.read_split(store, "default").to_pylist()
    by_clip = {row["clip_id"]: row for row in schemas.read_manifest(store).to_pylist()}
    assert all(by_clip[row["clip_id"]]["official_split"] == row["split"] for row in official)

    # An imported list of identities per part, one of them unknown to the store.
    identities = sorted({row["identity"] for row in official})
    files = []
    for part, names in (("train", identities[:1]), ("val", identities[1:2]),
                        ("test", [*identities[2:], "nobody"])):  # fmt: skip
        path = tmp_path / f"{part}.txt"
        path.write_text("\n".join(names) + "\n")
        files += ["--from-file", f"{part}={path}"]
    proc = run_cli("mscct-pipeline", "split", "--store", store, *files, "--format", "ids",
                   "--name", "imported")  # fmt: skip
    assert "nobody" in proc.stdout  # what the store lacks is reported, not dropped silently
    imported = schemas.read_split(store, "imported").to_pylist()
    assert {row["identity"] for row in imported if row["split"] == "train"} == {identities[0]}

    proc = run_cli("mscct-pipeline", "split", "--store", store, "--strict-identities",
                   "--name", "strict")  # fmt: skip
    assert "--strict-identities excluded" in proc.stdout


def test_train_on_lavdf_evaluate_on_avdeepfake1m(stores: dict[str, Path], tmp_path: Path) -> None:
    lavdf, av1m = stores["lavdf"], stores["avdeepfake1m"]
    run_cli("mscct-pipeline", "split", "--store", lavdf, "--official", "--name", "official")
    out = tmp_path / "run"
    run_cli("mscct-train", "run", "--store", lavdf, "--split", "official", "--out", out,
            "--set", "epochs=2", "--set", "model.frame_head=true")  # fmt: skip
    report_path = tmp_path / "eval.json"
    proc = run_cli("mscct-train", "eval", out / "checkpoints" / "best.pt", "--store", av1m,
                   "--all", "--out", report_path)  # fmt: skip
    assert "unlabelled" in proc.stderr  # the unlabelled test files are left out, and said so
    report = json.loads(report_path.read_text())
    labelled = [r for r in schemas.read_manifest(av1m).to_pylist() if r["labelled"]]
    assert report["n"] == len(labelled)
    assert set(report["per_dataset"]) == {"avdeepfake1m"}
    frames = report["frames"]
    assert frames["clips"] == len(labelled)
    assert frames["frames"] == sum(r["num_frames"] for r in labelled)
    assert 0.0 <= frames["auc"] <= 1.0
    # AV-Deepfake1M's own AP/AR, from its package (installed by make install).
    assert set(frames["ap"]) == {"0.5", "0.75", "0.9", "0.95"}
    assert all(0.0 <= value <= 1.0 for value in frames["ar"].values())
