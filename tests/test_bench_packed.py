"""``python -m benchmarks.bench_packed --quick``: the comparison runs end to end and
reports what it promises (no timing is checked: the figures come from real runs)."""

from __future__ import annotations

from pathlib import Path

import pytest

from benchmarks import bench_packed


def test_bench_packed_quick_reports_files_and_read_ratios(tmp_path: Path) -> None:
    result = bench_packed.main(["--quick", "--out", str(tmp_path / "packed.json")])
    assert (tmp_path / "packed.json").is_file()
    files = result["files"]
    assert files["packed_raw"]["files_per_clip"] < files["per_clip_raw"]["files_per_clip"] / 3
    assert files["packed_zstd"]["files_per_clip"] < files["per_clip_zstd"]["files_per_clip"] / 3
    assert set(result["ratios"]) == {"packed_raw / per_clip_raw", "packed_zstd / per_clip_zstd"}
    assert all(rate["windows"] > 0 for rate in result["windows"].values())


def test_a_packed_store_grown_in_two_processes_holds_every_clip_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import schemas
    from benchmarks import bench_scale
    from schemas.packed_index import list_shards, shard_records

    store, sources = tmp_path / "store", tmp_path / "sources"
    sources.mkdir()
    schemas.create_store(store, bench_scale.RECIPE, packed=True)
    monkeypatch.setattr(bench_scale, "GROW_BATCH", 200)  # the batches are cut here
    grower = bench_scale.Grower(store, sources, packed=True)
    size = 350  # two batches, the second short
    grower.grow_to(size, jobs=2)
    manifest = schemas.read_manifest(store)
    assert manifest.column("clip_id").to_pylist() == [f"clip{n:07d}" for n in range(size)]
    shards = list_shards(store)
    assert 1 <= len(shards) <= 2  # one per grower process (the pool's two), each sealed
    for name in shards:  # every clip in the shard of the process that wrote it
        assert {r["shard"] for r in shard_records(store, name)} == {name}
    assert sum(len(shard_records(store, name)) for name in shards) == size
    assert not list(store.glob("shards/*/journal.jsonl"))
    files = bench_scale.store_files(bench_scale.Context(store, size, sources, tmp_path))
    assert files["files_per_clip"] < 0.1
    video, _ = schemas.open_clip(store, "clip0000234")
    assert video.shape == (2, 16, 16, 3)


def test_bench_packed_quick_remote_counts_requests_per_window(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from schemas.remote import OPTIONS_ENV

    monkeypatch.setenv(OPTIONS_ENV, "{}")  # the benchmark sets its server's; undone after
    result = bench_packed.main(["--quick", "--remote", "--out", str(tmp_path / "r.json")])
    assert result["requests_per_window"]["raw"] == 2  # video and audio: one ranged GET each
    assert 2 <= result["requests_per_window"]["zstd"] <= 4  # a chunk or two per array
    assert set(result["windows"]) == {
        "packed_raw_local", "packed_raw_s3_moto", "packed_zstd_local", "packed_zstd_s3_moto"
    }  # fmt: skip
