"""Time to accuracy: the ``tiny`` preset on a synthetic store, wall time and test AUC.

    .venv/bin/python benchmarks/bench_train.py --store STORE [--split default]
        [--set key=value ...] [--out runs/bench-train]

STORE is any ingested store with a split. Without --store the synthetic dataset is
made and run through the real pipeline first (``mscct-pipeline synth`` with
``--per-category`` clips, ``ingest``, ``split --balance``); its time is not counted.
Writes ``benchmarks/results/train.json``. Target: test AUC >= 0.95.
"""

from __future__ import annotations

import argparse
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # run as a script: make the repository importable
    sys.path.insert(0, str(ROOT))

from benchmarks.output import save_result  # noqa: E402

TARGET_AUC = 0.95


def synthetic_store(work: Path, per_category: int) -> Path:
    """Real synthetic media through the real pipeline: synth -> ingest -> balanced split."""
    cli = Path(sys.executable).parent / "mscct-pipeline"
    data, store = work / "data", work / "store"
    for args in (
        ["synth", data, "--per-category", per_category],
        ["ingest", data, "--store", store],
        ["split", "--store", store, "--balance", "--ratios", "0.5,0.25,0.25"],
    ):
        subprocess.run([str(cli), *map(str, args)], check=True, stdout=subprocess.DEVNULL)
    return store


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--store", type=Path, default=None)
    parser.add_argument("--split", default="default")
    parser.add_argument("--config", default="tiny")
    parser.add_argument("--set", dest="overrides", action="append", default=[])
    parser.add_argument("--out", type=Path, default=None)
    parser.add_argument(
        "--per-category", type=int, default=12, help="synthetic clips per category (no --store)"
    )
    args = parser.parse_args()

    import torch

    from trainer.config import load_config
    from trainer.loop import train

    scratch = Path(tempfile.mkdtemp(prefix="bench-train-"))
    try:
        store = args.store
        source = "given"
        if store is None:
            store = synthetic_store(scratch, args.per_category)
            source = (
                f"mscct-pipeline synth --per-category {args.per_category}, ingest, "
                "split --balance --ratios 0.5,0.25,0.25"
            )
        out = args.out or scratch / "run"
        cfg = load_config(args.config, args.overrides)
        t0 = time.perf_counter()
        report = train(cfg, store, args.split, out, log=print)
        wall = time.perf_counter() - t0
    finally:
        if args.out is None:
            shutil.rmtree(scratch, ignore_errors=True)
    result = {
        "benchmark": "time to accuracy",
        "config": args.config,
        "overrides": args.overrides,
        "store": str(args.store) if args.store else None,
        "store_source": source,
        "wall_s": round(wall, 2),
        "test_auc": report["test"]["auc"],
        "test_acc": report["test"]["acc"],
        "audio_auc": report["test"]["audio_auc"],
        "video_auc": report["test"]["video_auc"],
        "per_category_acc": report["test"]["per_category_acc"],
        "best_epoch": report["best_epoch"],
        "target_auc": TARGET_AUC,
        "target_met": bool(
            report["test"]["auc"] is not None and report["test"]["auc"] >= TARGET_AUC
        ),
        "torch": torch.__version__,
        "threads": torch.get_num_threads(),
        "cpus": os.cpu_count(),
        "machine": platform.machine(),
    }
    save_result(result, ROOT / "benchmarks" / "results" / "train.json")
    return 0 if result["target_met"] else 1


if __name__ == "__main__":
    raise SystemExit(main())
