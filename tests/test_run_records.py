"""Run records: a finished training run is kept by a later invocation only when it measured
the same store and config, and the paper model's runs of Table 1 stand in for the ablation's
paper row and ``bench_train --difficulty hard`` (the same preset, store and seeds)."""

from __future__ import annotations

import json
from pathlib import Path

from benchmarks import bench_ablation, bench_train
from benchmarks.run_records import (
    PAPER_MODEL,
    TABLE1_RUNS,
    finished_run,
    paper_model_run,
    run_file,
    write_record,
)

CONFIG = {"model": {"name": "msct"}, "epochs": 12}


def test_a_run_is_kept_only_for_the_store_and_config_it_measured(tmp_path: Path) -> None:
    path = run_file(tmp_path, "ca+sa", 3)
    assert path == tmp_path / "ca+sa" / "seed-3.json"
    assert finished_run(path, "f1", CONFIG) is None  # nothing recorded yet
    write_record(path, {"seed": 3, "test_auc": 0.9, "store_fingerprint": "f1", "config": CONFIG})
    assert finished_run(path, "f1", CONFIG)["test_auc"] == 0.9
    assert finished_run(path, "f2", CONFIG) is None  # another store
    assert finished_run(path, "f1", {**CONFIG, "epochs": 3}) is None  # another config
    assert [p.name for p in path.parent.iterdir()] == ["seed-3.json"]  # no partial file left


def _paper_fingerprint() -> str:
    """The store fingerprint Table 1's committed paper-model runs trained on."""
    first = run_file(TABLE1_RUNS / PAPER_MODEL[0], PAPER_MODEL[1], 0)
    return json.loads(first.read_text())["store_fingerprint"]


def test_table1s_paper_model_runs_stand_in_for_the_tiny_presets_hard_runs() -> None:
    fingerprint = _paper_fingerprint()
    paper = bench_train.preset_config("tiny", [], 12)
    assert paper == bench_ablation.resolved_config([], 12)
    seeds = list(bench_train.PROTOCOLS["hard"].seeds)
    kept = bench_train.recorded_runs(fingerprint, paper, seeds)
    assert sorted(kept) == seeds
    for seed, run in kept.items():
        assert set(run) == {*bench_train.RUN_KEYS, "from"} and run["seed"] == seed
        assert run["from"] == "benchmarks/results/table1_runs/tiny/msct"
    # Another store, another preset or a variant's overrides: nothing is kept.
    assert bench_train.recorded_runs("0" * 16, paper, seeds) == {}
    variant = bench_ablation.resolved_config(["model.attn_cross=ca"], 12)
    assert bench_train.recorded_runs(fingerprint, variant, seeds) == {}
    assert paper_model_run(0, fingerprint, bench_train.preset_config("tiny", [], 3)) is None


def test_the_ablation_keeps_its_own_records_and_table1s_only_for_the_paper_row(
    tmp_path: Path,
) -> None:
    fingerprint = _paper_fingerprint()
    paper = bench_ablation.resolved_config([], 12)
    from_table1 = bench_ablation.kept_run("dca+mssa", 0, fingerprint, paper, tmp_path)
    assert from_table1 is not None
    assert from_table1["from"] == "benchmarks/results/table1_runs/tiny/msct"
    variant = bench_ablation.resolved_config(["model.attn_cross=ca"], 12)
    assert bench_ablation.kept_run("ca+mssa", 0, fingerprint, variant, tmp_path) is None
    record = {"seed": 0, "wall_s": 1.0, "store_fingerprint": fingerprint, "config": variant}
    write_record(run_file(tmp_path, "ca+mssa", 0), record)
    own = bench_ablation.kept_run("ca+mssa", 0, fingerprint, variant, tmp_path)
    assert own == record  # its own record, not marked as borrowed


def _rows(table: str) -> list[str]:
    """The result rows of a rendered ablation table."""
    return [line for line in table.splitlines() if line.startswith("| ") and "±" in line]


def test_the_readme_ablation_table_is_the_rendered_json() -> None:
    """The README's ablation is what ``ablation_markdown`` renders from the committed JSON of
    the hard setting, every variant measured, next to the store's ceilings; the first hard
    setting's table is kept in the changelog."""
    from benchmarks import ablation_markdown

    results = Path(bench_ablation.__file__).parent / "results"
    readme = (results.parents[1] / "README.md").read_text()
    changelog = (results.parents[1] / "CHANGELOG.md").read_text()
    hard = json.loads((results / "ablation.json").read_text())
    assert hard["protocol"]["difficulty"] == "hard" and hard["ceiling"]["valid"]
    assert set(hard["variants"]) == set(bench_ablation.VARIANTS)  # the whole ablation
    table = ablation_markdown.render(hard)
    assert len(_rows(table)) == len(bench_ablation.VARIANTS)
    assert all(row in readme for row in _rows(table))
    assert "Not measured yet" not in table
    ceilings = next(line for line in table.splitlines() if line.startswith("Ceilings"))
    assert "video 1.000, audio 0.992; the store is valid" in ceilings and ceilings in readme

    old = json.loads((results / "ablation_hard_partial.json").read_text())
    table = ablation_markdown.render(old)
    assert len(_rows(table)) == len(old["variants"])
    assert all(row in changelog for row in _rows(table))
    assert "Differential Transformer's form" in table  # version 1 had only that DCA
    partial = {**old, "protocol_version": 2, "variants": {"dca+sa": old["variants"]["dca+sa"]}}
    lines = ablation_markdown.render(partial).splitlines()
    assert lines[2].startswith("| DCA+SA | 0.839 ± 0.046 |")
    assert lines[-1].startswith("Not measured yet: DCA+MSSA (the paper's blocks), CA+MSSA")
    invalid = {**partial, "ceiling": {"valid": False, "from": None, "video": 0.7, "audio": 0.99}}
    assert "clip AUC: video 0.700, audio 0.990; the store is NOT valid" in ablation_markdown.render(
        invalid
    )
