"""The ceiling benchmark and the refusal it gives bench_train / bench_ablation; the strict
split of a hard synthetic dataset, whose fakes draw targets within race x gender groups."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest
from cli_helpers import ingest_json, run_cli

import schemas
from benchmarks import bench_ablation, bench_ceiling, bench_train
from pipeline.splits.strict import references
from pipeline.synth import HARD_NAME, make_dataset, plan
from pipeline.synth.plan import group_of

RESULTS = Path(bench_ceiling.__file__).parent / "results"
SIZES = {"per_category": 8, "identities": 10, "seed": 0}  # 5 race x gender groups


@pytest.fixture(scope="module")
def hard_store(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A small ``hard`` synthetic dataset's root, and its store with a balanced split."""
    work = tmp_path_factory.mktemp("ceiling")
    summary = make_dataset(work / "data", **SIZES, difficulty="hard", workers=2)
    store = work / "store"
    ingest_json(summary.root, "--store", store)
    run_cli("mscct-pipeline", "split", "--store", store, "--balance", "--ratios", "0.5,0.25,0.25")
    return summary.root, store


@pytest.mark.slow
def test_strict_split_of_a_hard_synth_dataset_succeeds_and_reports_components(
    hard_store: tuple[Path, Path],
) -> None:
    _, store = hard_store
    people, planned = plan(SIZES["per_category"], SIZES["identities"], SIZES["seed"], "hard")
    sources = {row.source for row, _ in planned}
    assert len({group_of(p) for p in people if p.id in sources}) >= 4
    proc = run_cli("mscct-pipeline", "split", "--store", store, "--strict-identities",
                   "--name", "strict")  # fmt: skip
    found = re.search(r"(\d+) connected components", proc.stdout)
    assert found and int(found.group(1)) >= 3, proc.stdout
    split = schemas.read_split(store, "strict").to_pylist()
    manifest = {r["clip_id"]: r for r in schemas.read_manifest(store).to_pylist()}
    part_of = {r["identity"]: r["split"] for r in split}
    assert set(part_of.values()) == {"train", "val", "test"}
    for r in split:  # no fake carries a face or voice of another part
        row = manifest[r["clip_id"]]
        assert all(part_of[t] == r["split"] for t in references(row, part_of))


@pytest.mark.slow
def test_ceiling_measures_both_probes_and_the_trivial_cues(hard_store: tuple[Path, Path]) -> None:
    root, store = hard_store
    cues = bench_ceiling.read_cues(root)
    assert cues is not None
    data = bench_ceiling.load_store(store, "default", cues)
    # Leading silence is read from the stored audio: it matches what synth put there.
    recorded = sorted(c["lead_silence_s"] for c in cues.values())
    measured = sorted(r["cues"]["leading_silence_s"] for r in data["trivial_rows"])
    assert len(measured) == len(recorded) == 4 * SIZES["per_category"]
    assert max(abs(a - b) for a, b in zip(measured, recorded, strict=True)) < 0.06
    # Whole-clip fakes: hard.json labels every frame of a fake video.
    for clip in data["probe"]["video"]["train"]:
        assert clip.frame_labels.min() == clip.frame_labels.max() == clip.label

    result = bench_ceiling.measure(store, "default", cues)
    assert result["store_fingerprint"] == schemas.store_fingerprint(store)
    assert set(result["ceilings"]) == {"video", "audio"}
    for probe in result["ceilings"].values():
        assert probe["test_clips"] > 0 and 0.0 <= probe["clip_auc"] <= 1.0
    assert set(result["trivial"]) == {
        "leading_silence_s", "clip_length_frames", "mean_brightness", "audio_energy",
    }  # fmt: skip
    for row in result["trivial"].values():
        assert 0.5 <= row["worst"] <= 1.0
    valid, reasons = bench_ceiling.verdict(result["ceilings"], result["trivial"])
    assert result["valid"] is valid and result["reasons"] == reasons


def test_the_rule_counts_inverse_shortcuts_and_low_ceilings() -> None:
    assert bench_ceiling.shortcut_auc([0, 0, 1, 1], [4.0, 3.0, 2.0, 1.0]) == 1.0
    assert bench_ceiling.shortcut_auc([0, 1, 0, 1], [1.0, 2.0, 2.0, 1.0]) == 0.5
    assert bench_ceiling.shortcut_auc([1, 1], [1.0, 2.0]) is None
    good = {"video": {"clip_auc": 0.97}, "audio": {"clip_auc": 1.0}}
    quiet = {"clip_length_frames": {"worst": 0.55}}
    assert bench_ceiling.verdict(good, quiet) == (True, [])
    valid, reasons = bench_ceiling.verdict({**good, "video": {"clip_auc": 0.53}}, quiet)
    assert not valid and reasons == ["video ceiling 0.53 < 0.95"]
    valid, reasons = bench_ceiling.verdict(good, {"leading_silence_s": {"worst": 0.61}})
    assert not valid and "leading_silence_s" in reasons[0]


@pytest.mark.slow
def test_benchmarks_refuse_a_store_that_fails_the_ceiling(
    hard_store: tuple[Path, Path], tmp_path: Path
) -> None:
    _, store = hard_store
    results = tmp_path / "results"
    results.mkdir()
    ceiling = {"store_fingerprint": schemas.store_fingerprint(store), "valid": False,
               "reasons": ["video ceiling 0.5 < 0.95"], "ceilings": {}}  # fmt: skip
    (results / "ceiling_x.json").write_text(json.dumps(ceiling))
    with pytest.raises(bench_ceiling.InvalidBenchmark, match="video ceiling 0.5"):
        bench_ceiling.require_valid(store, results=results)
    (results / "ceiling_x.json").write_text(json.dumps({**ceiling, "valid": True}))
    assert bench_ceiling.require_valid(store, results=results)["from"] == "ceiling_x.json"
    # easy measures time to accuracy on strong cues, hard-partial reproduces old figures.
    for exempt in ("easy", "hard-partial"):
        protocol = bench_train.PROTOCOLS[exempt]
        assert bench_train.check_ceiling(protocol, store, "default", None) is None

    @bench_ceiling.refusing
    def main() -> int:
        bench_ceiling.require_valid(store, results=results)
        return 0

    (results / "ceiling_x.json").write_text(json.dumps(ceiling))
    assert main() == 2


def test_results_from_before_whole_clip_fakes_read_as_hard_partial() -> None:
    """The committed hard figures were measured when synth's hard was today's hard-partial."""
    old = json.loads((RESULTS / "ablation_hard_partial.json").read_text())
    assert "protocol_version" not in old and old["protocol"]["difficulty"] == "hard"
    assert bench_train.recorded_protocol(old)["difficulty"] == "hard-partial"
    assert bench_train.same_protocol(old, bench_train.PROTOCOLS["hard-partial"])
    assert not bench_train.same_protocol(old, bench_train.PROTOCOLS["hard"])
    new = {"protocol": old["protocol"], "protocol_version": bench_train.PROTOCOL_VERSION}
    assert bench_train.same_protocol(new, bench_train.PROTOCOLS["hard"])
    # The paper variant of a hard-partial ablation reuses the committed
    # train_hard_partial.json runs; a hard one only version 2's train_hard.json, never those.
    paper = bench_ablation.resolved_config([], 12)
    stored = json.loads((RESULTS / "train_hard_partial.json").read_text())["config_resolved"]
    if bench_ablation.same_config(stored, paper):  # another change to the preset: no reuse
        found = bench_ablation.reusable_default(bench_train.PROTOCOLS["hard-partial"], paper)
        assert found is not None and found["from"] == "train_hard_partial.json"
    found = bench_ablation.reusable_default(bench_train.PROTOCOLS["hard"], paper)
    assert found is None or found["from"] == "train_hard.json"
    assert HARD_NAME == "hard.json"


def test_the_audio_probe_reads_the_window_centred_on_each_frame() -> None:
    from benchmarks.ceiling_probes import AUDIO_WINDOW, audio_windows

    features = np.arange(20, dtype=np.float32)[:, None].repeat(104, axis=1)  # (20, 104)
    windows = audio_windows(features)
    assert windows.shape == (20, AUDIO_WINDOW, 104)
    half = AUDIO_WINDOW // 2
    assert windows[10, :, 0].tolist() == list(range(10 - half, 10 - half + AUDIO_WINDOW))
    assert windows[0, :, 0].tolist() == [0.0] * (half + 1) + list(range(1, AUDIO_WINDOW - half))
