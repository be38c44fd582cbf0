"""The leading-silence shortcut, measured: train with and without it, test across.

    .venv/bin/python -m benchmarks.bench_shortcut [--quick] [--out benchmarks/results/shortcut.json]

The synthetic fakes (B, C, D) start with 0.1-0.3 s of silence and real clips (A) do
not, as in FakeAVCeleb. One synthetic dataset (``mscct-pipeline synth``, easy
setting) is ingested twice: untrimmed, and with ``--trim-silence`` (the leading
silence cut from every clip). Both stores get the same split (``split --balance``
with the same seed; the benchmark checks that the two test parts hold the same
clips). The ``tiny`` preset is trained on each store (same seed, same epochs) and
each checkpoint is evaluated on the test part of both stores with
``mscct-train eval CKPT --store OTHER --split default``. The result is the 2×2 table
of test AUC and balanced accuracy, rows the training store, columns the test store.

Reading it: a model that learnt the onset shortcut scores well on the untrimmed
test clips and drops on the trimmed ones (the cue is gone); a model trained on
trimmed clips cannot use it. Protocol, fixed before the run: 24 clips per
category, data seed 0, training seed 0, the preset's 12 epochs, the trainer's
selection rule (best val AUC). ``--quick`` (4 clips per category, 1 epoch) only
checks the plumbing; its figures mean nothing.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from benchmarks.output import save_result  # noqa: E402

STORES = ("untrimmed", "trimmed")
SPLIT_RATIOS = "0.5,0.25,0.25"


@dataclass(frozen=True)
class Settings:
    per_category: int
    data_seed: int
    train_seed: int
    overrides: tuple[str, ...]  # trainer --set on top of the tiny preset


FULL = Settings(per_category=24, data_seed=0, train_seed=0, overrides=())
QUICK = Settings(
    per_category=4, data_seed=0, train_seed=0, overrides=("epochs=1", "windows_per_clip=2")
)


def _bin(name: str) -> str:
    return str(Path(sys.executable).parent / name)


def _run(cmd: list[str]) -> str:
    """Run a project CLI; on failure raise with its last lines of stderr."""
    proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        tail = "\n".join(proc.stderr.strip().splitlines()[-5:])
        raise RuntimeError(f"{' '.join(cmd[:2])} failed ({proc.returncode}): {tail}")
    return proc.stdout


def build_stores(work: Path, s: Settings) -> dict[str, Path]:
    """One synthetic dataset, ingested untrimmed and trimmed, each split the same way."""
    data = work / "data"
    pipe = _bin("mscct-pipeline")
    _run([pipe, "synth", str(data), "--per-category", str(s.per_category),
          "--seed", str(s.data_seed)])  # fmt: skip
    stores = {name: work / f"store-{name}" for name in STORES}
    for name, store in stores.items():
        trim = ["--trim-silence"] if name == "trimmed" else []
        _run([pipe, "ingest", str(data), "--store", str(store), *trim])
        _run([pipe, "split", "--store", str(store), "--balance", "--ratios", SPLIT_RATIOS])
    return stores


def split_test_clips(store: Path) -> list[str]:
    """Clip ids of the default split's test part, sorted."""
    import schemas

    rows = schemas.read_split(store, "default").select(["clip_id", "split"]).to_pylist()
    return sorted(r["clip_id"] for r in rows if r["split"] == "test")


def train(store: Path, out: Path, s: Settings) -> Path:
    """``mscct-train run`` on ``store``; returns its best checkpoint."""
    sets = [x for o in (*s.overrides, f"seed={s.train_seed}") for x in ("--set", o)]
    _run([_bin("mscct-train"), "run", "--store", str(store), "--config", "tiny",
          "--out", str(out), *sets])  # fmt: skip
    return out / "checkpoints" / "best.pt"


def evaluate(checkpoint: Path, store: Path) -> dict[str, Any]:
    """``mscct-train eval CKPT --store STORE --split default --json`` on the test part."""
    text = _run([_bin("mscct-train"), "eval", str(checkpoint), "--store", str(store),
                 "--split", "default", "--part", "test", "--json"])  # fmt: skip
    return json.loads(text)


def cell(metrics: dict[str, Any]) -> dict[str, Any]:
    """One table cell: test AUC and balanced accuracy (``None`` if the report lacks it)."""
    return {
        "auc": metrics.get("auc"),
        "balanced_acc": metrics.get("balanced_acc"),
        "acc": metrics.get("acc"),
        "n": metrics.get("n"),
    }


def run(work: Path, s: Settings) -> dict[str, Any]:
    stores = build_stores(work, s)
    clips = {name: split_test_clips(store) for name, store in stores.items()}
    if clips["untrimmed"] != clips["trimmed"]:
        raise RuntimeError("the two stores' test parts differ; the table would compare apples")
    checkpoints = {name: train(store, work / f"run-{name}", s) for name, store in stores.items()}
    table = {
        f"train {a}": {f"test {b}": cell(evaluate(checkpoints[a], stores[b])) for b in STORES}
        for a in STORES
    }
    return {
        "benchmark": "leading-silence shortcut",
        "settings": {**s.__dict__, "overrides": list(s.overrides)},
        "quick": s == QUICK,
        "dataset": f"mscct-pipeline synth --per-category {s.per_category} --seed {s.data_seed}",
        "stores": {"untrimmed": "ingest", "trimmed": "ingest --trim-silence"},
        "split": f"split --balance --ratios {SPLIT_RATIOS} (same test clips in both stores)",
        "test_clips": len(clips["untrimmed"]),
        "table": table,
        "rows": "training store",
        "columns": "test store",
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="plumbing check in a minute or two")
    parser.add_argument("--out", type=Path, default=None)
    parser.add_argument("--workdir", type=Path, help="where to build (default: a temp dir)")
    args = parser.parse_args(argv)
    settings = QUICK if args.quick else FULL
    name = "shortcut_quick.json" if args.quick else "shortcut.json"
    out = args.out or ROOT / "benchmarks" / "results" / name
    with tempfile.TemporaryDirectory(dir=args.workdir, prefix="bench-shortcut-") as tmp:
        result = run(Path(tmp), settings)
    save_result(result, out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
