"""Run every benchmark once, in sequence; each writes its JSON to ``benchmarks/results/``.

    python -m benchmarks.run_all            # `make bench`
    python -m benchmarks.run_all ingest model

Benchmarks report ratios measured side by side in one run, never bare seconds
compared across machines. Run them on an otherwise idle machine.
"""

from __future__ import annotations

import subprocess
import sys

BENCHMARKS = {
    "ingest": ["-m", "benchmarks.bench_ingest"],
    "clip_memory": ["-m", "benchmarks.bench_clip_memory"],
    "cluster": ["-m", "benchmarks.bench_cluster"],
    "loader": ["benchmarks/bench_loader.py"],
    "model": ["-m", "benchmarks.bench_model"],
    "train": ["-m", "benchmarks.bench_train"],
    "ceiling": ["-m", "benchmarks.bench_ceiling", "--difficulty", "hard"],
    "train_hard": ["-m", "benchmarks.bench_train", "--difficulty", "hard"],
    "ablation": ["-m", "benchmarks.bench_ablation"],
    "table1": ["-m", "benchmarks.bench_table1"],
    "shortcut": ["-m", "benchmarks.bench_shortcut"],
    "scan": ["-m", "benchmarks.bench_scan"],
    "scale": ["-m", "benchmarks.bench_scale"],
}


def main() -> None:
    names = sys.argv[1:] or list(BENCHMARKS)
    unknown = [n for n in names if n not in BENCHMARKS]
    if unknown:
        sys.exit(f"unknown benchmark(s) {unknown}; choose from {list(BENCHMARKS)}")
    for name in names:
        print(f"== {name}", flush=True)
        subprocess.run([sys.executable, *BENCHMARKS[name]], check=True)


if __name__ == "__main__":
    main()
