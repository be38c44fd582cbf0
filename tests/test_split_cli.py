"""`mscct-pipeline split` on a real ingested store: what it prints is what it stored."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import pytest
from cli_helpers import run_cli

import schemas


@pytest.fixture()
def store(ingested_store: Path, tmp_path: Path) -> Path:
    copy = tmp_path / "store"
    shutil.copytree(ingested_store, copy)
    return copy


def _printed_counts(stdout: str) -> dict[str, list[int]]:
    counts = {}
    for line in stdout.splitlines():
        cells = [c.strip() for c in re.split(r"[│┃|]", line) if c.strip()]
        if (
            cells
            and cells[0] in ("train", "val", "test", "total")
            and all(c.isdigit() for c in cells[1:])
        ):
            counts[cells[0]] = [int(c) for c in cells[1:]]
    return counts


def test_printed_table_matches_the_stored_split(store: Path) -> None:
    proc = run_cli(
        "mscct-pipeline", "split", "--store", store, "--balance", "--ratios", "0.34,0.33,0.33"
    )
    printed = _printed_counts(proc.stdout)
    table = schemas.read_split(store).to_pylist()
    for part in ("train", "val", "test"):
        rows = [r for r in table if r["split"] == part]
        per_category = [sum(r["category"] == c for r in rows) for c in schemas.CATEGORIES]
        identities = len({r["identity"] for r in rows})
        assert printed[part] == [*per_category, len(rows), identities]
        assert per_category == [per_category[0]] * 4  # balanced
    parts_of = {}
    for row in table:
        parts_of.setdefault(row["identity"], set()).add(row["split"])
    assert all(len(parts) == 1 for parts in parts_of.values())
    assert schemas.split_params(store)["balance"] is True

    again = run_cli("mscct-pipeline", "split", "--store", store, "--balance", check=False)
    assert again.returncode == 2 and "--overwrite" in again.stderr
    run_cli(
        "mscct-pipeline",
        "split",
        "--store",
        store,
        "--name",
        "fold1",
        "--folds",
        "3",
        "--fold",
        "1",
    )
    assert schemas.list_splits(store) == ["default", "fold1"]


def test_impossible_request_is_one_clear_line(store: Path) -> None:
    proc = run_cli(
        "mscct-pipeline", "split", "--store", store, "--folds", "5", "--fold", "0", check=False
    )
    assert (
        proc.returncode == 2 and proc.stderr.startswith("error:") and "Traceback" not in proc.stderr
    )
    proc = run_cli("mscct-pipeline", "split", "--store", store, "--ratios", "0.5,0.5", check=False)
    assert proc.returncode == 2 and "ratios" in proc.stderr


def test_low_face_rate_clips_are_left_out_and_counted(store: Path) -> None:
    """A clip flagged in the manifest is not in the default split; the table says so."""
    manifest = schemas.read_manifest(store)
    rows = manifest.to_pylist()
    ok = [r for r in rows if r["status"] == schemas.STATUS_OK]
    flagged = next(r for r in ok if r["category"] == "RAFV")
    for r in rows:
        r["low_face_rate"] = r["clip_id"] == flagged["clip_id"]
    schemas.write_manifest(store, schemas.rows_to_table(rows, schemas.MANIFEST_SCHEMA))

    proc = run_cli("mscct-pipeline", "split", "--store", store)
    assert "1 clips with a low face detection rate left out" in " ".join(proc.stdout.split())
    table = schemas.read_split(store)
    assert flagged["clip_id"] not in table.column("clip_id").to_pylist()
    assert table.num_rows == len(ok) - 1
    assert _printed_counts(proc.stdout)["total"][4] == len(ok) - 1
    recorded = schemas.split_params(store)
    assert recorded["keep_low_face_rate"] is False
    assert recorded["summary"]["low_face_rate_clips"] == 1

    run_cli("mscct-pipeline", "split", "--store", store, "--name", "all", "--keep-low-face-rate")
    kept = schemas.read_split(store, "all")
    assert flagged["clip_id"] in kept.column("clip_id").to_pylist()
    assert schemas.split_params(store, "all")["keep_low_face_rate"] is True
