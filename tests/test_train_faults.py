"""Faults during training: a NaN loss, untrusted checkpoints, a store changed under a split."""

from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np
import pytest
import torch
from cli_helpers import call_main
from trainer_fixtures import build_store

import schemas
from trainer.cli import main

COUNTS = {"train": 2, "val": 1, "test": 1}
FAST = ["--set", "epochs=1", "--set", "windows_per_clip=1", "--set", "batch_size=4"]


def _cli(args: list[str]) -> int:
    return call_main(main, args)


@pytest.fixture()
def store(tmp_path: Path) -> Path:
    return build_store(tmp_path / "store", crop_size=24, frames=16, counts=COUNTS)


def test_nan_loss_stops_the_run_naming_the_step(
    store: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # One training clip's audio becomes NaN, as a corrupted feature file would.
    train_id = next(
        r["clip_id"] for r in schemas.read_split(store).to_pylist() if r["split"] == "train"
    )
    video, audio = (np.array(a) for a in schemas.open_clip(store, train_id))
    record = schemas.read_clip_record(store, train_id)
    recipe = schemas.open_store(store).recipe
    schemas.write_clip(store, train_id, video, np.full_like(audio, np.nan), record, recipe)

    out = tmp_path / "run"
    assert _cli(["run", "--store", str(store), "--out", str(out), *FAST]) == 2
    err = capsys.readouterr().err
    assert "loss is not finite at epoch 1 step" in err and "Traceback" not in err
    assert not (out / "report.json").exists()  # nothing reported from a broken run


class _Exploit:
    """Unpickling this runs code: what a malicious checkpoint would carry."""

    def __reduce__(self):  # type: ignore[no-untyped-def]
        return (Path.touch, (Path(_Exploit.target),))

    target = ""


def test_checkpoint_with_pickled_code_is_refused(
    store: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    marker = tmp_path / "code-ran"
    _Exploit.target = str(marker)
    evil = tmp_path / "evil.pt"
    torch.save({"model": _Exploit(), "config": {}}, evil, pickle_protocol=pickle.DEFAULT_PROTOCOL)
    assert _cli(["eval", str(evil), "--store", str(store)]) == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err and err.strip()
    assert not marker.exists(), "loading the checkpoint ran code"


def test_store_changed_after_the_split_is_a_clear_error(
    store: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    gone = schemas.read_split(store).column("clip_id")[0].as_py()
    schemas.remove_clip(store, gone)
    assert _cli(["run", "--store", str(store), "--out", str(tmp_path / "run"), *FAST]) == 2
    err = capsys.readouterr().err
    assert gone in err and "split" in err and "Traceback" not in err
