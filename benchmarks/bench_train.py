"""Time to accuracy: the ``tiny`` preset on a synthetic store, wall time and test AUC.

    .venv/bin/python benchmarks/bench_train.py --store STORE [--split default]
        [--set key=value ...] [--out runs/bench-train]

STORE is any ingested store, typically the synthetic dataset
(``mscct-pipeline synth DATA && mscct-pipeline ingest DATA --store STORE &&
mscct-pipeline split --balance --store STORE``). Without --store a small
tensor-level synthetic store is built first (tests/trainer_fixtures.py).
Writes ``benchmarks/results/train.json``. Target: test AUC >= 0.95.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
TARGET_AUC = 0.95


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--store", type=Path, default=None)
    parser.add_argument("--split", default="default")
    parser.add_argument("--config", default="tiny")
    parser.add_argument("--set", dest="overrides", action="append", default=[])
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()

    import torch

    from trainer.config import load_config
    from trainer.loop import train

    scratch = Path(tempfile.mkdtemp(prefix="bench-train-"))
    try:
        store = args.store
        source = "given"
        if store is None:
            sys.path.insert(0, str(ROOT / "tests"))
            from trainer_fixtures import build_store

            store = build_store(scratch / "store", crop_size=48, frames=48)
            source = "tests/trainer_fixtures.py (crop 48, 48 frames, 24/8/8 clips per category)"
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
    dest = ROOT / "benchmarks" / "results" / "train.json"
    dest.parent.mkdir(parents=True, exist_ok=True)
    dest.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))
    return 0 if result["target_met"] else 1


if __name__ == "__main__":
    raise SystemExit(main())
