"""``python -m benchmarks.bench_packed --quick``: the comparison runs end to end and
reports what it promises (no timing is checked: the figures come from real runs)."""

from __future__ import annotations

from pathlib import Path

from benchmarks import bench_packed


def test_bench_packed_quick_reports_files_and_read_ratios(tmp_path: Path) -> None:
    result = bench_packed.main(["--quick", "--out", str(tmp_path / "packed.json")])
    assert (tmp_path / "packed.json").is_file()
    files = result["files"]
    assert files["packed_raw"]["files_per_clip"] < files["per_clip_raw"]["files_per_clip"] / 3
    assert files["packed_zstd"]["files_per_clip"] < files["per_clip_zstd"]["files_per_clip"] / 3
    assert set(result["ratios"]) == {"packed_raw / per_clip_raw", "packed_zstd / per_clip_zstd"}
    assert all(rate["windows"] > 0 for rate in result["windows"].values())
