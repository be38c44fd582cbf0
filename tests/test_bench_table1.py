"""Table 1's benchmark: every detector on stores of one split, resumable, rendered as Markdown.

The stores are the session's synthetic dataset, ingested for real twice (the session's
MFCC store, copied, and an ``fbank`` ingest), each given the protocol's balanced split.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from cli_helpers import ingest_json, run_cli

import schemas
from benchmarks import bench_table1, table1_markdown
from benchmarks.table1_stores import SplitMismatch, check_same_split, ingest_options, store_key
from trainer.audit.report import DESCRIPTIONS
from trainer.model import Reads

SPLIT = ("--balance", "--ratios", "0.5,0.25,0.25")


@pytest.fixture(scope="module")
def two_stores(
    synth_root: Path, ingested_store: Path, tmp_path_factory: pytest.TempPathFactory
) -> dict[str, Path]:
    """The session store (MFCC) and an fbank ingest of the same dataset, both split."""
    work = tmp_path_factory.mktemp("table1")
    stores = {
        "default": Path(shutil.copytree(ingested_store, work / "mfcc")),
        "fbank": work / "fbank",
    }
    ingest_json(synth_root, "--store", stores["fbank"], "--audio-features", "fbank")
    for store in stores.values():
        run_cli("mscct-pipeline", "split", "--store", store, *SPLIT)
    return stores


def test_a_detector_reading_other_features_gets_a_store_of_its_own() -> None:
    assert ingest_options(Reads(streams=("face",))) == ()
    assert store_key(()) == "default"
    fbank = ingest_options(Reads(streams=("face",), features="fbank"))
    assert fbank == ("--audio-features", "fbank") and store_key(fbank) == "fbank"
    assert ingest_options(Reads(streams=(), features="mfcc")) == ()  # the default recipe
    names = ["audio_only", "mrdf_ce", "mrdf_margin"]
    plans = {p.detector: p for p in bench_table1.plans(names, "tiny", False)}
    assert plans["audio_only"].store == "default" and plans["mrdf_ce"].store == "fbank"
    assert plans["mrdf_ce"].epochs == 12  # the preset's own
    assert plans["audio_only"].untrained_heads() == ["video"]
    assert plans["mrdf_ce"].untrained_heads() == []
    # MRDF-Margin's unimodal losses train embeddings: it has no head whose AUC means anything.
    assert plans["mrdf_margin"].untrained_heads() == ["audio", "video"]


@pytest.mark.slow
def test_quick_run_writes_every_figure_resumes_and_renders(
    two_stores: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "table1.json"
    argv = [
        "--quick", "--detectors", "audio_only,mrdf_ce", "--store", str(two_stores["default"]),
        "--fbank-store", str(two_stores["fbank"]), "--work", str(tmp_path), "--out", str(out),
    ]  # fmt: skip
    assert bench_table1.main(argv) == 0
    result = json.loads(out.read_text())
    assert result["protocol_followed"] is False and len(result["departures"]) == 3
    assert result["split_check"]["same_clips"] and result["split_check"]["identity_disjoint"]
    assert result["stores"]["fbank"]["features"] == "fbank"
    assert result["stores"]["fbank"]["detectors"] == ["mrdf_ce"]
    rows = result["detectors"]
    assert list(rows) == ["audio_only", "mrdf_ce"] and rows["mrdf_ce"]["store"] == "fbank"
    for row in rows.values():
        assert set(row["summary"]) == set(bench_table1.METRICS)
        (run,) = row["runs"]
        assert run["seed"] == 0 and run["epochs_run"] == 1 and run["params"] > 0
        assert run["s_per_epoch"] > 0 and 0.0 <= run["test_eer"] <= 1.0
        # the chosen checkpoint was audited on the test part, and the audit summarised
        assert run["audit"]["n"] == result["split_check"]["clips"]["test"]
        assert set(run["audit"]["perturbations"]) == set(DESCRIPTIONS)
        fused = row["audit"]["swap_audio"]["fused"]
        assert set(fused) == {"auc", "balanced_acc", "real_flipped", "fake_flipped"}
        assert row["audit"]["baseline"]["fused"]["auc"]["n"] == 1
    assert list((tmp_path / "quick").glob("given-*/runs/mrdf_ce/seed-0.json"))
    assert rows["audio_only"]["summary"]["video_auc"]["mean"] is None  # no video head
    assert (
        rows["mrdf_ce"]["summary"]["params"]["mean"]
        > rows["audio_only"]["summary"]["params"]["mean"]
    )

    capsys.readouterr()
    assert bench_table1.main(argv) == 0  # a rerun trains nothing: every run is kept
    assert capsys.readouterr().out.count("kept (measured before)") == 2
    assert json.loads(out.read_text())["detectors"] == rows

    table = table1_markdown.render(result)
    head, _, *body = table.splitlines()[:4]
    assert head.startswith("| Detector | ACC (%) | AUC (%) |") and head.endswith("| s/epoch |")
    assert body[0].startswith("| `audio_only` |") and body[1].startswith("| `mrdf_ce` |")
    assert "read the fbank store" in table and "Departs from the protocol" in table
    audit_head = next(line for line in table.splitlines() if "Swapped voice" in line)
    assert audit_head.startswith("| Detector | AUC as stored (%) |")
    assert "| `mrdf_ce` |" in table.split(audit_head)[1]


def test_stores_whose_parts_differ_or_share_an_identity_are_refused(
    two_stores: dict[str, Path],
) -> None:
    assert check_same_split(two_stores, "default")["clips"]["test"] > 0
    table = schemas.read_split(two_stores["default"], "default")
    rows = table.to_pylist()
    train = next(r for r in rows if r["split"] == "train")
    moved = [{**r, "split": "test"} if r is train else r for r in rows]
    params = {"test": "a train clip moved to test"}
    schemas.write_split(
        two_stores["default"], "moved", schemas.rows_to_table(moved, schemas.SPLIT_SCHEMA), params
    )
    schemas.write_split(two_stores["fbank"], "moved", table, params)
    with pytest.raises(SplitMismatch, match="differ between the default and fbank stores"):
        check_same_split(two_stores, "moved")
    with pytest.raises(SplitMismatch, match="not identity-disjoint"):
        check_same_split({"default": two_stores["default"]}, "moved")
