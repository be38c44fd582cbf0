"""Time to accuracy: the ``tiny`` preset on a synthetic store, wall time and test AUC.

    .venv/bin/python benchmarks/bench_train.py [--store STORE] [--split default]
        [--seeds 0,1,2] [--set key=value ...] [--out runs/bench-train]

STORE is any ingested store with a split. Without --store the synthetic dataset is
made and run through the real pipeline first (``mscct-pipeline synth`` with
``--per-category`` clips, default 24, ``ingest``, ``split --balance``); its time is
not counted. One training run per seed, on the same store: with a few dozen test
clips one run's AUC moves in steps of a few hundredths with the seed, so the target
must hold for every seed. Writes ``benchmarks/results/train.json``.
Target: test AUC >= 0.95.
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


def run_summary(seed: int, wall_s: float, report: dict) -> dict:
    """One run's line of the result: its seed, wall time and test figures."""
    test = report["test"]
    return {
        "seed": seed,
        "wall_s": round(wall_s, 2),
        "test_auc": test["auc"],
        "test_acc": test["acc"],
        "audio_auc": test["audio_auc"],
        "video_auc": test["video_auc"],
        "per_category_acc": test["per_category_acc"],
        "best_epoch": report["best_epoch"],
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--store", type=Path, default=None)
    parser.add_argument("--split", default="default")
    parser.add_argument("--config", default="tiny")
    parser.add_argument("--set", dest="overrides", action="append", default=[])
    parser.add_argument("--out", type=Path, default=None)
    parser.add_argument(
        "--per-category", type=int, default=24, help="synthetic clips per category (no --store)"
    )
    parser.add_argument("--seeds", default="0,1,2", help="comma-separated training seeds")
    args = parser.parse_args()
    seeds = [int(x) for x in args.seeds.split(",")]

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
        runs = []
        for seed in seeds:
            out = (args.out or scratch / "runs") / f"seed-{seed}"
            cfg = load_config(args.config, [*args.overrides, f"seed={seed}"])
            t0 = time.perf_counter()
            report = train(cfg, store, args.split, out, log=print)
            runs.append(run_summary(seed, time.perf_counter() - t0, report))
    finally:
        if args.out is None:
            shutil.rmtree(scratch, ignore_errors=True)
    aucs = [r["test_auc"] for r in runs]
    result = {
        "benchmark": "time to accuracy",
        "config": args.config,
        "overrides": args.overrides,
        "store": str(args.store) if args.store else None,
        "store_source": source,
        "runs": runs,
        "wall_s_mean": round(sum(r["wall_s"] for r in runs) / len(runs), 2),
        "test_auc_min": None if None in aucs else min(aucs),
        "target_auc": TARGET_AUC,
        "target_met": all(auc is not None and auc >= TARGET_AUC for auc in aucs),
        "torch": torch.__version__,
        "threads": torch.get_num_threads(),
        "cpus": os.cpu_count(),
        "machine": platform.machine(),
    }
    save_result(result, ROOT / "benchmarks" / "results" / "train.json")
    return 0 if result["target_met"] else 1


if __name__ == "__main__":
    raise SystemExit(main())
