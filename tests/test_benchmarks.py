"""The benchmarks measure what they say: fair baselines, fixed protocols, the shortcut table."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

import schemas
from benchmarks import bench_clip_memory, bench_loader, bench_shortcut, bench_train


@pytest.fixture(scope="module")
def small_store(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list, list[Path]]:
    """Two 20-frame clips of 32 px in a zstd store, and their mp4 encodes."""
    work = tmp_path_factory.mktemp("loader")
    clips = bench_loader.build_store(work / "zstd", 2, 20, 32, "zstd")
    mp4s = []
    for clip in clips:
        video, _ = schemas.open_clip(work / "zstd", clip.clip_id)
        mp4s.append(work / f"{clip.clip_id}.mp4")
        bench_loader.encode_mp4(np.asarray(video), mp4s[-1])
    return work / "zstd", clips, mp4s


def test_zarr_baseline_opens_each_clip_once(
    small_store: tuple[Path, list, list[Path]], monkeypatch: pytest.MonkeyPatch
) -> None:
    import zarr

    store, clips, _ = small_store
    want = [tuple(np.asarray(a) for a in schemas.open_clip(store, c.clip_id)) for c in clips]
    opened: list[str] = []
    real_open = zarr.open_array

    def counting_open(path: str, **kwargs: object) -> object:
        opened.append(path)
        return real_open(path, **kwargs)

    monkeypatch.setattr(zarr, "open_array", counting_open)
    read = bench_loader.zarr_reader(store, clips, 8)
    for start in (0, 3, 7, 12):
        for index in (0, 1):
            video, audio = read((0, 0, index, start))
            assert np.array_equal(video, want[index][0][start : start + 8])
            assert np.array_equal(audio, want[index][1][start : start + 8])
    assert len(opened) == 4  # video and audio of each of the two clips, once


def test_on_the_fly_baseline_decodes_in_process_and_slices(
    small_store: tuple[Path, list, list[Path]],
) -> None:
    store, clips, mp4s = small_store
    read = bench_loader.on_the_fly(mp4s, 8)
    frames = read((0, 0, 1, 5))
    want = np.asarray(schemas.open_clip(store, clips[1].clip_id)[0])[5:13]
    assert frames.shape == want.shape == (8, 32, 32, 3)
    # H.264 is lossy; the right frames are close, a shifted slice is not.
    error = np.abs(frames.astype(int) - want.astype(int)).mean()
    shifted = np.abs(frames.astype(int) - np.asarray(want)[::-1].astype(int)).mean()
    assert error < 6 < shifted or error < shifted / 2
    with pytest.raises(RuntimeError, match="decoded"):
        read((0, 0, 1, 15))  # past the clip's end: fewer frames than the window


def test_train_protocols_are_fixed_in_the_source() -> None:
    hard = bench_train.PROTOCOLS["hard"]
    assert hard.seeds == (0, 1, 2, 3, 4) and hard.target_auc is None
    assert bench_train.synth_args(hard, hard.per_category) == [
        "--per-category", "32", "--identities", "48", "--difficulty", "hard",
    ]  # fmt: skip
    # The easy protocol is exactly what it always ran.
    easy = bench_train.PROTOCOLS["easy"]
    assert bench_train.synth_args(easy, 24) == ["--per-category", "24"]
    assert easy.seeds == (0, 1, 2) and easy.result == "train.json"
    stats = bench_train.mean_std([0.8, 0.9, None, 1.0])
    assert stats == {"mean": 0.9, "std": 0.1, "n": 3}


@pytest.mark.slow
def test_clip_memory_quick_measures_each_clip_in_its_own_worker(tmp_path: Path) -> None:
    out = tmp_path / "clip_memory.json"
    code = bench_clip_memory.main(["--quick", "--out", str(out), "--workdir", str(tmp_path)])
    result = json.loads(out.read_text())
    assert code == 0 and result["quick"] is True and result["within_target"] is True
    clips = result["clips"]
    assert set(clips) == {"baseline_224", "1080p_60s", "8k_2s"}
    assert clips["1080p_60s"]["decoded_size"] == [1920, 1080]
    assert clips["1080p_60s"]["decode_scale"] == 1.0
    assert clips["8k_2s"]["decoded_size"] == [1920, 1080]
    assert clips["8k_2s"]["source_size"] == [7680, 4320]
    assert clips["8k_2s"]["decode_scale"] == 0.25
    assert all(0 < c["peak_rss_mib"] < 1024 for c in clips.values())


@pytest.mark.slow
def test_shortcut_quick_writes_the_two_by_two_table(tmp_path: Path) -> None:
    out = tmp_path / "shortcut.json"
    assert bench_shortcut.main(["--quick", "--out", str(out), "--workdir", str(tmp_path)]) == 0
    result = json.loads(out.read_text())
    assert result["quick"] is True and result["test_clips"] > 0
    table = result["table"]
    assert set(table) == {"train untrimmed", "train trimmed"}
    for row in table.values():
        assert set(row) == {"test untrimmed", "test trimmed"}
        for cell in row.values():
            assert cell["n"] == result["test_clips"]
            assert cell["auc"] is None or 0.0 <= cell["auc"] <= 1.0
            assert "balanced_acc" in cell


def test_each_ablation_variant_departs_from_the_paper_model_in_its_own_keys_only() -> None:
    from benchmarks import bench_ablation

    paper = bench_ablation.resolved_config([], 12)
    assert bench_ablation.VARIANTS["dca+mssa"] == []
    assert paper["model"]["attn_cross"] == "dca" and paper["model"]["attn_self"] == "mssa"
    for name, overrides in bench_ablation.VARIANTS.items():
        variant = bench_ablation.resolved_config(overrides, 12)
        changed = {
            f"{section}.{key}"
            for section in ("model", "loss")
            for key in paper[section]
            if paper[section][key] != variant[section][key]
        }
        top = {k for k in paper if k not in ("model", "loss") and paper[k] != variant[k]}
        assert changed == {o.split("=")[0] for o in overrides}, name
        assert not top, name


def test_an_ablation_result_from_before_a_new_key_still_counts_but_no_other_difference() -> None:
    from benchmarks import bench_ablation

    now = bench_ablation.resolved_config(["model.attn_self=sa"], 12)
    before = json.loads(json.dumps(now))
    del before["model"]["visual_input"]  # measured before the key existed
    assert bench_ablation.same_config(before, now)
    mouth = json.loads(json.dumps(before))
    mouth["model"]["visual_input"] = "mouth"
    assert not bench_ablation.same_config(mouth, now)
    other = json.loads(json.dumps(before))
    other["model"]["attn_self"] = "mssa"
    assert not bench_ablation.same_config(other, now)
