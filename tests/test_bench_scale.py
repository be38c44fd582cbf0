"""The scale benchmark's grower: its processes commit every clip exactly once."""

from __future__ import annotations

from pathlib import Path

import schemas
from benchmarks import bench_scale


def test_a_store_grown_in_two_processes_holds_every_clip_once(tmp_path: Path) -> None:
    store, sources = tmp_path / "store", tmp_path / "sources"
    sources.mkdir()
    schemas.create_store(store, bench_scale.RECIPE)
    grower = bench_scale.Grower(store, sources)
    size = bench_scale.GROW_BATCH + 150  # two batches, the second short
    grower.grow_to(size, jobs=2)
    grower.commit()  # the measured commits go on from there, in this process (unbooked)

    expected = [f"clip{n:07d}" for n in range(size + 1)]
    manifest = schemas.read_manifest(store)
    assert manifest.column("clip_id").to_pylist() == expected[:size]
    assert set(manifest.column("status").to_pylist()) == {"ok"}
    committed = sorted(r["clip_id"] for r in schemas.committed_records(store))
    assert committed == expected
    for row in manifest.slice(0, 3).to_pylist():  # each source a link of a real file
        assert (sources / row["path"]).stat().st_size == row["source_size"]
