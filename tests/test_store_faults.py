"""A damaged store never trains: missing, truncated or corrupted chunks are one-line errors.

Each case damages one training clip of a small store the way a disk or a copy could,
then runs ``mscct-train run``: exit 2, one line naming the clip, and the hint that
fixes it (remove the clip and rerun ingest, which :func:`test_the_damaged_clip_hint_fixes_it`
follows on a really ingested store).
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from cli_helpers import call_main, ingest_json
from store_copies import copy_store
from trainer_fixtures import build_store

import schemas
from schemas.layout import clip_dir
from trainer.cli import main
from trainer.data.dataset import WindowDataset, split_clips

COUNTS = {"train": 1, "val": 1, "test": 1}
FAST = ["--set", "epochs=1", "--set", "windows_per_clip=1", "--set", "batch_size=4"]


@pytest.fixture(scope="module")
def pristine(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A raw and a zstd store with the same 12 clips of 64 frames (two zstd chunks each)."""
    base = tmp_path_factory.mktemp("faults")
    raw = build_store(base / "raw", crop_size=24, frames=64, counts=COUNTS)
    return raw, copy_store(raw, base / "zstd", layout="zstd")


def _train_clip(store: Path) -> str:
    return split_clips(store)["train"][0].clip_id


def _run(store: Path, out: Path, capsys: pytest.CaptureFixture[str], *extra: str) -> str:
    capsys.readouterr()
    code = call_main(main, ["run", "--store", str(store), "--out", str(out), *FAST, *extra])
    err = capsys.readouterr().err.strip()
    assert code == 2, err
    assert "\n" not in err and "Traceback" not in err, err
    return err


def _missing_chunks(clip: Path) -> None:
    # Frames 50-63: zarr would hand out its fill value, black frames and silence.
    (clip / "video" / "c" / "1" / "0" / "0" / "0").unlink()
    (clip / "audio" / "c" / "1" / "0").unlink()


def _truncated_chunk(clip: Path) -> None:
    chunk = clip / "video" / "c" / "0" / "0" / "0" / "0"
    chunk.write_bytes(chunk.read_bytes()[: chunk.stat().st_size // 2])


def _corrupted_chunk(clip: Path) -> None:
    chunk = clip / "audio" / "c" / "0" / "0"
    data = bytearray(chunk.read_bytes())
    data[8:40] = bytes(32)  # inside the zstd frame, past its magic number
    chunk.write_bytes(bytes(data))


def _chunk_shape_disagrees(clip: Path) -> None:
    meta_path = clip / "video" / "zarr.json"
    meta = json.loads(meta_path.read_text())
    meta["chunk_grid"]["configuration"]["chunk_shape"][0] = 40  # the chunks hold 50 frames
    meta_path.write_text(json.dumps(meta))


@pytest.mark.parametrize(
    ("damage", "expected"),
    [
        (_missing_chunks, "chunk file c/1/0 is missing"),
        (_truncated_chunk, "cannot be decoded"),
        (_corrupted_chunk, "cannot be decoded"),
        (_chunk_shape_disagrees, "cannot be decoded"),
    ],
    ids=["missing-chunks", "truncated-chunk", "corrupted-chunk", "chunk-shape"],
)
def test_a_damaged_zstd_clip_stops_training_in_one_line(
    pristine: tuple[Path, Path],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    damage: Callable[[Path], None],
    expected: str,
) -> None:
    store = shutil.copytree(pristine[1], tmp_path / "store")
    clip_id = _train_clip(store)
    damage(clip_dir(store, clip_id))
    err = _run(store, tmp_path / "run", capsys)
    assert f"clip {clip_id} of store {store} is damaged" in err and expected in err, err
    assert "rerun `mscct-pipeline ingest`" in err and "split" not in err, err
    assert not (tmp_path / "run" / "report.json").exists()


def test_a_missing_zstd_chunk_never_reads_as_zeros(pristine: tuple[Path, Path]) -> None:
    raw, zstd = pristine
    clips = split_clips(raw)["train"][:1]
    reference = WindowDataset(raw, clips, 64, train=False)[0]
    assert int(reference["video"][50:].max()) > 0  # the real frames are not black
    _missing_chunks(clip_dir(zstd, clips[0].clip_id))
    try:
        with pytest.raises(schemas.StoreError, match="is missing"):
            WindowDataset(zstd, clips, 64, train=False)[0]
    finally:
        shutil.rmtree(zstd)  # the module's zstd store is damaged now: rebuild it for others
        copy_store(raw, zstd, layout="zstd")


def test_a_truncated_raw_chunk_names_the_clip_and_the_fix(
    pristine: tuple[Path, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    store = shutil.copytree(pristine[0], tmp_path / "store")
    clip_id = _train_clip(store)
    chunk = clip_dir(store, clip_id) / "video" / "c" / "0" / "0" / "0" / "0"
    chunk.write_bytes(chunk.read_bytes()[:-100])
    err = _run(store, tmp_path / "run", capsys)
    assert f"clip {clip_id} of store {store} is damaged" in err and "bytes" in err, err
    assert f"remove {clip_dir(store, clip_id)}" in err and "split" not in err, err


def test_a_store_error_in_a_dataloader_worker_is_one_line(
    pristine: tuple[Path, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # torch re-raises a worker's error with the worker's whole traceback as its message.
    store = shutil.copytree(pristine[0], tmp_path / "store")
    clip_id = _train_clip(store)
    chunk = clip_dir(store, clip_id) / "audio" / "c" / "0" / "0"
    chunk.write_bytes(chunk.read_bytes()[:-4])
    err = _run(store, tmp_path / "run", capsys, "--set", "num_workers=1")
    assert err.startswith(f"error: clip {clip_id} of store"), err
    assert "DataLoader worker" not in err, err


@pytest.mark.slow
def test_the_damaged_clip_hint_fixes_it(
    synth_root: Path, ingested_store: Path, tmp_path: Path
) -> None:
    """Follow the hint on a really ingested store: remove the clip, rerun ingest."""
    store = shutil.copytree(ingested_store, tmp_path / "store")
    clip = split_clips_of_manifest(store)[0]
    chunk = clip_dir(store, clip.clip_id) / "audio" / "c" / "0" / "0"
    good = chunk.read_bytes()
    chunk.write_bytes(good[:-8])
    with pytest.raises(schemas.StoreError, match="is damaged") as caught:
        WindowDataset(store, [clip], 8, train=False)[0]
    message = str(caught.value)
    folder = message.split("; remove ", 1)[1].split(" and rerun", 1)[0]
    assert Path(folder) == clip_dir(store, clip.clip_id)
    shutil.rmtree(folder)
    _, result = ingest_json(synth_root, "--store", store)
    assert result["submitted"] == 1  # only the damaged clip was redone
    assert chunk.read_bytes() == good
    item = WindowDataset(store, [clip], 8, train=False)[0]
    assert np.isfinite(item["audio"].numpy()).all()


def split_clips_of_manifest(store: Path) -> list:
    """The store's ok clips as ClipInfo (the ingested store has no split)."""
    from trainer.data.dataset import assign_clips

    ok = [r["clip_id"] for r in schemas.read_manifest(store).to_pylist() if r["status"] == "ok"]
    parts, _ = assign_clips(store, ok, ["test"] * len(ok))
    return parts["test"]
