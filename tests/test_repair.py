"""``mscct-pipeline repair``: the manifest is rebuilt from the records committed in clips/."""

from __future__ import annotations

import shutil
from pathlib import Path

import pyarrow.parquet as pq
from cli_helpers import run_cli

import schemas


def test_repair_rebuilds_a_deleted_or_truncated_manifest_identical(
    ingested_store: Path, tmp_path: Path
) -> None:
    store = tmp_path / "store"
    shutil.copytree(ingested_store, store)
    manifest = store / "manifest.parquet"
    original = pq.read_table(manifest)
    original_bytes = manifest.read_bytes()

    unchanged = run_cli("mscct-pipeline", "repair", "--store", store)
    assert "unchanged" in unchanged.stdout and manifest.read_bytes() == original_bytes

    manifest.unlink()
    run_cli("mscct-pipeline", "repair", "--store", store)
    assert pq.read_table(manifest).equals(original)
    assert manifest.read_bytes() == original_bytes

    manifest.write_bytes(original_bytes[: len(original_bytes) // 2])
    proc = run_cli("mscct-pipeline", "repair", "--store", store)
    assert "missing or unreadable" in proc.stderr
    assert schemas.read_manifest(store).equals(schemas.read_manifest(ingested_store))
    assert manifest.read_bytes() == original_bytes


def test_repair_refuses_what_is_not_a_store(tmp_path: Path) -> None:
    (tmp_path / "thesis.tex").write_text("x")
    proc = run_cli("mscct-pipeline", "repair", "--store", tmp_path, check=False)
    assert proc.returncode == 2 and proc.stderr.startswith("error:") and "no store" in proc.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["thesis.tex"]
