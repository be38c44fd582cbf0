"""One cell of Table 1's work: a detector trained with one seed, and what it measured.

Each run trains as :mod:`benchmarks.bench_train` does (:func:`~benchmarks.bench_train.
train_seeds`: the trainer's recipe, its selection rule, the test part evaluated once for
the chosen checkpoint) and leaves one JSON file, its :func:`run_record`, kept across
sittings as :mod:`benchmarks.run_records` describes. The run files of the protocol's own
data are results (``benchmarks/results/table1_runs/``): a fresh checkout's hard store
matched the fingerprint of the committed ``ceiling_hard.json``, so any checkout keeps
them and the table can be completed a few runs at a time.
"""

from __future__ import annotations

import json
import shutil
import statistics
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # run as a script: make the repository importable
    sys.path.insert(0, str(ROOT))

from benchmarks.bench_train import mean_std, train_seeds  # noqa: E402
from benchmarks.run_records import run_file, shown_path, write_record  # noqa: E402
from benchmarks.table1_audit import audit_run  # noqa: E402

#: The figures of every run that the table summarises over seeds, in the table's order.
METRICS: tuple[str, ...] = (
    "test_acc",
    "test_balanced_acc",
    "test_auc",
    "test_ap",
    "test_eer",
    "audio_auc",
    "video_auc",
    "params",
    "s_per_epoch",
)
#: The unimodal heads whose AUC the table shows, by the loss weight that trains them.
HEADS = ("audio", "video")


@dataclass(frozen=True)
class Plan:
    """How one detector is trained: its preset, the store it reads, the epochs."""

    detector: str
    preset: str  # a name under trainer/presets/
    store: str  # the key of the store it reads (benchmarks.table1_stores.store_key)
    ingest: tuple[str, ...]  # the ingest options that make that store
    epochs: int
    overrides: tuple[str, ...] = ()  # --set on top of the preset (--quick only)

    def config(self) -> dict[str, Any]:
        """The config every seed trains, less ``seed``, as a result file holds it."""
        from trainer.config.settings import load_config

        cfg = load_config(self.preset, [f"epochs={self.epochs}", *self.overrides])
        resolved = {k: v for k, v in cfg.to_dict().items() if k != "seed"}
        return json.loads(json.dumps(resolved))

    def untrained_heads(self) -> list[str]:
        """The unimodal heads the detector lacks (the registry's ``modality_heads``:
        MRDF-Margin's margin losses train embeddings, not heads) or no loss term trains (weight 0): such
        a head scores every clip 0.5, or says nothing, so its AUC is no result."""
        from trainer.model import get_detector

        loss, has = self.config()["loss"], get_detector(self.detector).modality_heads
        return [head for head in HEADS if head not in has or not loss[head]]


def train_run(
    plan: Plan, seed: int, store: Path, split: str, work: Path, records: Path
) -> dict[str, Any]:
    """Train ``plan`` with ``seed`` on ``store`` in ``work``, audit its chosen checkpoint
    (:func:`benchmarks.table1_audit.audit_run`); its record, also written to its run file
    under ``records``."""
    import schemas

    out_root = work / plan.detector
    shutil.rmtree(out_root / f"seed-{seed}", ignore_errors=True)  # an interrupted run's dir
    runs, _ = train_seeds(
        plan.preset, list(plan.overrides), store, split, [seed], plan.epochs, out_root
    )
    run_dir = out_root / f"seed-{seed}"
    record = run_record(runs[0], run_dir)
    record["audit"] = audit_run(run_dir, store, split)
    record.update(store_fingerprint=schemas.store_fingerprint(store), config=plan.config())
    write_record(run_file(records, plan.detector, seed), record)
    return record


def run_record(summary: dict[str, Any], run_dir: Path) -> dict[str, Any]:
    """``bench_train``'s run summary with what Table 1 adds from the run directory: test
    AP and EER (``report.json``), the parameter count (``meta.json``) and the mean wall
    time of an epoch, training and validation (``metrics.jsonl``)."""
    report = json.loads((run_dir / "report.json").read_text())
    meta = json.loads((run_dir / "meta.json").read_text())
    lines = (run_dir / "metrics.jsonl").read_text().splitlines()
    epoch_s = [json.loads(line)["epoch_time_s"] for line in lines if line.strip()]
    return {
        **summary,
        "test_ap": report["test"]["ap"],
        "test_eer": report["test"]["eer"],
        "params": meta["parameters"],
        "s_per_epoch": round(statistics.fmean(epoch_s), 3),
        "epochs_run": report["epochs_run"],
        "run_dir": shown_path(run_dir),
    }


def summarize(runs: list[dict[str, Any]], untrained: list[str]) -> dict[str, Any]:
    """Mean ± sample std over seeds of each of ``METRICS``; the AUC of an untrained head is
    null (its runs keep the measured value)."""
    skipped = {f"{head}_auc" for head in untrained}
    return {key: mean_std([None if key in skipped else r[key] for r in runs]) for key in METRICS}
