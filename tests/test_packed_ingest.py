"""Packed stores (format 4) made by the real CLI: ``ingest --packed`` killed with SIGKILL
and rerun, and ``convert --to packed`` killed and rerun, each ending with every clip
once and reading exactly as the session's format-3 store does."""

from __future__ import annotations

import hashlib
import shutil
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
from cli_helpers import ingest_json, run_cli, start_ingest

import schemas
from schemas.packed_index import list_shards, shard_records
from schemas.packed_write import recover_shards
from trainer.data.dataset import labelled_clips

ROOT = Path(__file__).resolve().parents[1]
SHARD_BYTES = 12_000_000  # four or more synthetic clips a shard: an open journal reaches 2 lines


def _journal_lines(store: Path) -> int:
    return sum(p.read_bytes().count(b"\n") for p in store.glob("shards/*/journal.jsonl"))


def _assert_same_clips(store: Path, reference: Path) -> None:
    """Every ok clip of ``reference`` is in ``store`` once, every array equal."""
    expected = schemas.read_manifest(reference)
    found = schemas.read_manifest(store)
    assert sorted(found.column("clip_id").to_pylist()) == sorted(
        expected.column("clip_id").to_pylist()
    )
    for clip_id in expected.column("clip_id").to_pylist():
        for name in schemas.CLIP_ARRAYS:
            old = schemas.open_stream(reference, clip_id, name)
            new = schemas.open_stream(store, clip_id, name)
            assert (old is None) == (new is None), (clip_id, name)
            if old is not None:
                assert np.array_equal(np.asarray(old), np.asarray(new), equal_nan=True)
        assert schemas.read_frame_labels(store, clip_id) is None


def _digests(store: Path, shards: list[str]) -> dict[str, str]:
    return {
        str(p.relative_to(store)): hashlib.sha256(p.read_bytes()).hexdigest()
        for name in shards
        for p in sorted((store / "shards" / name).rglob("*"))
        if p.is_file()
    }


def test_killed_packed_ingest_then_rerun_commits_every_clip_once(
    synth_root: Path, ingested_store: Path, tmp_path: Path
) -> None:
    store = tmp_path / "store"
    proc = start_ingest(
        synth_root, store, "--packed", "--shard-bytes", str(SHARD_BYTES), "--workers", "1"
    )
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and _journal_lines(store) < 2:
        time.sleep(0.05)
    assert proc.poll() is None, "ingest finished before it could be killed"
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    try:
        named = {r["clip_id"]: r for r in schemas.read_manifest(store).to_pylist()}
    except schemas.StoreError:
        named = {}  # killed before its first manifest flush
    first_run = list_shards(store)
    assert first_run and all(name.startswith("r000001-") for name in first_run)
    # What the rerun does first (seal the shards the kill left open, cutting torn tails);
    # after that, no later ingest may append to them: their bytes stay.
    recover_shards(store, schemas.open_store(store).recipe)
    sealed = _digests(store, first_run)

    _, summary = ingest_json(synth_root, "--store", store)  # keeps the store's format
    assert summary["submitted"] + summary["skipped"] == 12 and summary["failed"] == 0
    assert summary["skipped"] >= len(named)
    rows = {r["clip_id"]: r for r in schemas.read_manifest(store).to_pylist()}
    for clip_id, row in named.items():
        assert rows[clip_id] == row  # clips committed before the kill were left untouched
    _assert_same_clips(store, ingested_store)
    assert not list(store.glob("shards/*/journal.jsonl"))  # every shard sealed

    # Each shard holds the clips of its one writer, and the second ingest wrote only
    # shards of its own (run 2): the first one's kept their bytes.
    for name in list_shards(store):
        assert {r["shard"] for r in shard_records(store, name)} == {name}
    assert _digests(store, [n for n in first_run if n in list_shards(store)]) == {
        k: v for k, v in sealed.items() if (store / k).exists()
    }
    # (A worker orphaned by the kill may still finish its clip into a run-1 shard of its
    # own; the rerun's shards are those of run 2.)
    new = [n for n in list_shards(store) if n.startswith("r000002-")]
    assert bool(new) == (summary["submitted"] > 0)
    assert labelled_clips(store).unusable == {}


_KILLED_CONVERT = """
import os, signal
import pipeline.ingest.convert as convert
convert.FRAGMENT_CLIPS = 2
done = []
def on_clip(clip_id):
    done.append(clip_id)
    if len(done) == 5:
        os.kill(os.getpid(), signal.SIGKILL)
convert.convert_store(convert.Path({store!r}), shard_bytes={shard}, on_clip=on_clip)
"""


def test_convert_in_place_resumes_after_sigkill_and_reads_as_before(
    ingested_store: Path, tmp_path: Path
) -> None:
    store = tmp_path / "store"
    shutil.copytree(ingested_store, store)
    code = _KILLED_CONVERT.format(store=str(store), shard=SHARD_BYTES)
    proc = subprocess.run([sys.executable, "-c", textwrap.dedent(code)], cwd=ROOT, check=False)
    assert proc.returncode == -signal.SIGKILL
    assert not schemas.is_packed(store)  # still format 3, readable as before
    _assert_same_clips(store, ingested_store)
    placed = [r for r in schemas.read_manifest(store).to_pylist() if r["shard"] is not None]
    assert len(placed) == 4  # two fragments of two clips; the fifth clip was never named

    done = run_cli("mscct-pipeline", "convert", "--store", store)
    assert "8 clips converted now, 4 before" in done.stdout
    schemas.layout.forget_layout(store)  # this process read it as format 3
    assert schemas.open_store(store).format_version == 4 and not (store / "clips").exists()
    _assert_same_clips(store, ingested_store)
    rows = {r["clip_id"]: r for r in schemas.read_manifest(store).to_pylist()}
    for row in placed:  # the clips converted before the kill stay where they were
        assert rows[row["clip_id"]]["shard"] == row["shard"]
    assert run_cli("mscct-pipeline", "repair", "--store", store).returncode == 0
    _assert_same_clips(store, ingested_store)


def test_convert_to_a_new_store_leaves_the_old_one(ingested_store: Path, tmp_path: Path) -> None:
    out = tmp_path / "packed"
    run_cli("mscct-pipeline", "convert", "--store", ingested_store, "--out", out)
    assert schemas.open_store(out).format_version == 4
    assert schemas.open_store(ingested_store).format_version == 3
    _assert_same_clips(out, ingested_store)
    assert sorted(p.name for p in (out / "splits").iterdir()) == sorted(
        p.name for p in (ingested_store / "splits").iterdir()
    )
    again = run_cli("mscct-pipeline", "convert", "--store", ingested_store, "--out", out)
    assert "0 clips converted now, 12 before" in again.stdout
