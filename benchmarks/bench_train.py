"""Time to accuracy: the ``tiny`` preset on a synthetic store, wall time and test AUC.

    .venv/bin/python -m benchmarks.bench_train [--difficulty easy|hard|hard-partial]
        [--store STORE] [--split default] [--seeds 0,1,2] [--set key=value ...]
        [--out runs/bench-train]

Two protocols, each fixed here before it was run (``PROTOCOLS``): dataset size,
data seed, training seeds, epochs and the selection rule. ``--seeds``,
``--per-category`` and ``--set`` depart from a protocol; the result then says
``"protocol_followed": false``.

- ``easy`` (default; ``benchmarks/results/train.json``): ``mscct-pipeline synth
  --per-category 24``; every cue is strong and the ``tiny`` preset reaches test AUC
  1.00 for every seed, so it measures time to accuracy and cannot tell models
  apart. Target: test AUC >= 0.95 for every seed.
- ``hard`` (``benchmarks/results/train_hard.json``): ``synth --difficulty hard
  --per-category 32 --identities 48`` (subtle voice change, a manipulated face in
  every frame of a fake video, mouth 1-3 frames behind the audio; see
  ``pipeline.synth``), training seeds 0-4, the ``tiny`` preset's 12 epochs.
  Reported: test AUC and balanced accuracy mean ± std (sample std, n-1) over the
  seeds. No target: the setting exists to separate models, so it is only required
  not to saturate.
- ``hard-partial`` (``train_hard_partial.json``): the same with ``synth
  --difficulty hard-partial`` (the face manipulated in 8-12 frames only).

Protocol versions. ``PROTOCOL_VERSION`` is recorded in every result. A result
recorded without it (version 1) was measured when synth's ``hard`` made what is
now ``hard-partial``: :func:`recorded_protocol` reads its ``difficulty: hard`` as
``hard-partial`` (the committed ``train_hard_partial.json`` and
``ablation_hard_partial.json``), and ``--difficulty hard-partial`` reproduces them.

Runs already made. The ``hard`` protocol's ``tiny`` runs are also Table 1's ``msct``
row (:mod:`benchmarks.bench_table1`: the same preset, store and seeds). When the
protocol is followed, a seed whose run Table 1 recorded on a store of the same
fingerprint with the same resolved config is kept, not trained again
(:func:`recorded_runs`; the run says ``"from"``); training is deterministic for a fixed
seed, store and thread count.

The ceiling rule. Before training, ``hard`` checks the store with
:func:`benchmarks.bench_ceiling.require_valid` (a committed ceiling JSON of the same
store fingerprint, or a measurement of its own) and writes nothing when the store
fails it. ``easy`` is exempt: its cues, the leading silence among them, are strong
by design, and it measures time to accuracy, not what a model learns. So is
``hard-partial``, which exists only to reproduce version 1's figures, on a store
known to fail the rule (``ceiling_hard_partial.json``: clip length and leading
silence separate the classes by chance).

Both: ``split --balance --ratios 0.5,0.25,0.25`` (identity-disjoint), one
training run per seed on the same store, the checkpoint chosen by the trainer's
rule (``trainer.train.selection.SELECTION``: best val AUC of the fused head) and the test part
evaluated once, for that checkpoint only. Every seed's run is reported; none is
dropped or re-run. STORE is any ingested store with a split; without --store the
synthetic dataset is made and run through the real pipeline first (its time is
not counted).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # run as a script: make the repository importable
    sys.path.insert(0, str(ROOT))

from benchmarks.bench_ceiling import read_cues, refusing, require_valid  # noqa: E402
from benchmarks.output import save_result  # noqa: E402
from benchmarks.run_records import (  # noqa: E402
    PAPER_MODEL,
    TABLE1_RUNS,
    paper_model_run,
    shown_path,
)

TARGET_AUC = 0.95
SPLIT_RATIOS = "0.5,0.25,0.25"


@dataclass(frozen=True)
class Protocol:
    """One benchmark setting, fixed before it is run."""

    difficulty: str
    per_category: int
    identities: int | None  # None: one identity per clip of each category
    data_seed: int
    seeds: tuple[int, ...]
    epochs: int
    result: str  # file name under benchmarks/results/
    target_auc: float | None  # every seed must reach it; None: no target


PROTOCOLS = {
    "easy": Protocol("easy", 24, None, 0, (0, 1, 2), 12, "train.json", TARGET_AUC),
    "hard": Protocol("hard", 32, 48, 0, (0, 1, 2, 3, 4), 12, "train_hard.json", None),
    "hard-partial": Protocol(
        "hard-partial", 32, 48, 0, (0, 1, 2, 3, 4), 12, "train_hard_partial.json", None
    ),
}
#: Version 2: synth's ``hard`` makes whole-clip fakes; version 1's ``hard`` is ``hard-partial``.
PROTOCOL_VERSION = 2
#: Protocols whose stores need not pass the ceiling rule (module docstring).
CEILING_EXEMPT = frozenset({"easy", "hard-partial"})
#: What makes two protocols the same measurement (the result's file name does not).
_MEASURED = ("difficulty", "per_category", "identities", "data_seed", "seeds", "epochs")


def recorded_protocol(result: dict) -> dict:
    """A result's protocol in today's names: version 1's ``hard`` is ``hard-partial``."""
    protocol = dict(result.get("protocol") or {})
    if result.get("protocol_version", 1) < 2 and protocol.get("difficulty") == "hard":
        protocol["difficulty"] = "hard-partial"
    return protocol


def same_protocol(result: dict, protocol: Protocol) -> bool:
    """Whether ``result`` was measured under ``protocol`` (any version, today's names)."""
    recorded = recorded_protocol(result)
    wanted = {**protocol.__dict__, "seeds": list(protocol.seeds)}
    return all(recorded.get(key) == wanted[key] for key in _MEASURED)


def synth_args(protocol: Protocol, per_category: int) -> list[str]:
    """``mscct-pipeline synth`` options of a protocol (the easy ones as they always were)."""
    args = ["--per-category", str(per_category)]
    if protocol.identities is not None:
        args += ["--identities", str(max(protocol.identities, per_category))]
    if protocol.data_seed:
        args += ["--seed", str(protocol.data_seed)]
    if protocol.difficulty != "easy":
        args += ["--difficulty", protocol.difficulty]
    return args


def synthetic_store(work: Path, synth: list[str]) -> Path:
    """Real synthetic media through the real pipeline: synth -> ingest -> balanced split.

    The dataset stays in ``work / "data"`` (its ``hard.json`` gives the ceiling's frame
    labels, :func:`store_cues`).
    """
    data, store = work / "data", work / "store"
    run_pipeline(["synth", data, *synth])
    return ingest_and_split(data, store)


def ingest_and_split(data: Path, store: Path, ingest: tuple[str, ...] = ()) -> Path:
    """``data`` ingested into ``store`` (with the ``ingest`` options) and given the protocol's
    balanced split; a second store of the same data gets the same split
    (:mod:`benchmarks.bench_table1` checks that it does)."""
    run_pipeline(["ingest", data, "--store", store, *ingest])
    run_pipeline(["split", "--store", store, "--balance", "--ratios", SPLIT_RATIOS])
    return store


def run_pipeline(args: list[str | Path]) -> None:
    """``mscct-pipeline ARGS`` of this environment; raises when it fails."""
    cli = Path(sys.executable).parent / "mscct-pipeline"
    subprocess.run([str(cli), *map(str, args)], check=True, stdout=subprocess.DEVNULL)


def store_cues(work: Path) -> dict | None:
    """The ``hard.json`` of the dataset :func:`synthetic_store` made in ``work``, if any."""
    return read_cues(work / "data" / "FakeAVCeleb_v1.2")


#: The keys of a result's ``ceiling`` that describe it; every other key is a modality's
#: probe AUC.
CEILING_META = ("store_fingerprint", "valid", "from")


def check_ceiling(protocol: Protocol, store: Path, split: str, cues: dict | None) -> dict | None:
    """The store's ceiling result, or None for an exempt protocol.

    Raises:
        benchmarks.bench_ceiling.InvalidBenchmark: the store fails the ceiling rule.
    """
    if protocol.difficulty in CEILING_EXEMPT:
        return None
    result = require_valid(store, split, cues)
    return {key: result.get(key) for key in CEILING_META} | {
        modality: probe["clip_auc"] for modality, probe in result["ceilings"].items()
    }


def store_source(synth: list[str]) -> str:
    """How a protocol's synthetic store is made, as the result records it."""
    return (
        f"mscct-pipeline synth {' '.join(synth)}, ingest, split --balance --ratios {SPLIT_RATIOS}"
    )


def preset_config(config: str, overrides: list[str], epochs: int) -> dict:
    """The config that preset ``config`` with ``overrides`` trains, less ``seed``, as a
    result file holds it (:func:`train_seeds` records it so)."""
    from trainer.config.settings import load_config

    cfg = load_config(config, [f"epochs={epochs}", *overrides])
    resolved = {k: v for k, v in cfg.to_dict().items() if k != "seed"}
    return json.loads(json.dumps(resolved))


def recorded_runs(fingerprint: str, config: dict, seeds: list[int]) -> dict[int, dict]:
    """Seed → a run of ``config`` on the store of ``fingerprint`` that Table 1 already
    recorded (:func:`benchmarks.run_records.paper_model_run`): the same preset, store and
    seed train the same model, so it is kept rather than trained again (``from`` says so)."""
    kept = {}
    for seed in seeds:
        record = paper_model_run(seed, fingerprint, config)
        if record is not None:
            source = shown_path(TABLE1_RUNS.joinpath(*PAPER_MODEL))
            kept[seed] = {key: record[key] for key in RUN_KEYS} | {"from": source}
    return kept


def train_seeds(
    config: str,
    overrides: list[str],
    store: Path,
    split: str,
    seeds: list[int],
    epochs: int,
    out_root: Path,
) -> tuple[list[dict], dict]:
    """One training run per seed on ``store``; their summaries and the resolved config.

    The resolved config leaves out ``seed``, the one key that differs between runs.
    """
    from trainer.config.settings import load_config
    from trainer.train.run import train

    runs, resolved = [], {}
    for seed in seeds:
        cfg = load_config(config, [f"epochs={epochs}", *overrides, f"seed={seed}"])
        t0 = time.perf_counter()
        report = train(cfg, store, split, out_root / f"seed-{seed}", log=print)
        runs.append(run_summary(seed, time.perf_counter() - t0, report))
        resolved = {k: v for k, v in cfg.to_dict().items() if k != "seed"}
    return runs, resolved


def mean_std(values: list[float | None]) -> dict[str, float | None]:
    """Mean and sample standard deviation (n-1) of the defined values; ``None`` if too few."""
    xs = [v for v in values if v is not None]
    return {
        "mean": round(statistics.fmean(xs), 4) if xs else None,
        "std": round(statistics.stdev(xs), 4) if len(xs) > 1 else None,
        "n": len(xs),
    }


#: What a run's line of the result holds (:func:`run_summary`).
RUN_KEYS = (
    "seed",
    "wall_s",
    "test_auc",
    "test_acc",
    "test_balanced_acc",
    "audio_auc",
    "video_auc",
    "per_category_acc",
    "best_epoch",
)


def run_summary(seed: int, wall_s: float, report: dict) -> dict:
    """One run's line of the result: its seed, wall time and test figures."""
    test = report["test"]
    return {
        "seed": seed,
        "wall_s": round(wall_s, 2),
        "test_auc": test["auc"],
        "test_acc": test["acc"],
        "test_balanced_acc": test.get("balanced_acc"),
        "audio_auc": test["audio_auc"],
        "video_auc": test["video_auc"],
        "per_category_acc": test["per_category_acc"],
        "best_epoch": report["best_epoch"],
    }


@refusing
def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--difficulty", choices=sorted(PROTOCOLS), default="easy")
    parser.add_argument("--store", type=Path, default=None)
    parser.add_argument("--split", default="default")
    parser.add_argument("--config", default="tiny")
    parser.add_argument("--set", dest="overrides", action="append", default=[])
    parser.add_argument("--out", type=Path, default=None)
    parser.add_argument(
        "--per-category", type=int, default=None, help="synthetic clips per category (no --store)"
    )
    parser.add_argument("--seeds", default=None, help="comma-separated training seeds")
    args = parser.parse_args()
    from trainer.data.reader import raise_fd_limit

    raise_fd_limit()  # train() runs in this process: as `mscct-train` does at its start
    protocol = PROTOCOLS[args.difficulty]
    seeds = [int(x) for x in args.seeds.split(",")] if args.seeds else list(protocol.seeds)
    per_category = args.per_category or protocol.per_category
    followed = (
        tuple(seeds) == protocol.seeds
        and per_category == protocol.per_category
        and not args.overrides
        and args.config == "tiny"
        and args.store is None  # a given store may hold anything
    )

    import torch

    import schemas
    from trainer.train.selection import SELECTION

    scratch = Path(tempfile.mkdtemp(prefix="bench-train-"))
    try:
        store = args.store
        synth = synth_args(protocol, per_category)
        if store is None:
            store = synthetic_store(scratch, synth)
        # Before hours of training: a store that fails the ceiling rule gets no result.
        ceiling = check_ceiling(
            protocol, store, args.split, None if args.store else store_cues(scratch)
        )
        source = store_source(synth)
        if args.store is not None:
            source = f"given (protocol: {source})"
        resolved = preset_config(args.config, args.overrides, protocol.epochs)
        # Only the protocol's own store and preset can match a recorded run.
        fingerprint = schemas.store_fingerprint(store)
        kept = recorded_runs(fingerprint, resolved, seeds) if followed else {}
        trained, _ = train_seeds(
            args.config,
            args.overrides,
            store,
            args.split,
            [seed for seed in seeds if seed not in kept],
            protocol.epochs,
            args.out or scratch / "runs",
        )
        runs = sorted([*kept.values(), *trained], key=lambda run: seeds.index(run["seed"]))
    finally:
        if args.out is None:
            shutil.rmtree(scratch, ignore_errors=True)
    aucs = [r["test_auc"] for r in runs]
    target = protocol.target_auc
    result = {
        "benchmark": "time to accuracy",
        "difficulty": protocol.difficulty,
        "protocol": {**protocol.__dict__, "seeds": list(protocol.seeds)},
        "protocol_version": PROTOCOL_VERSION,
        "ceiling": ceiling,
        "protocol_followed": followed,
        "selection": SELECTION,
        "config": args.config,
        "config_resolved": resolved,  # the preset as this revision defines it
        "overrides": args.overrides,
        "store": str(args.store) if args.store else None,
        "store_source": source,
        "store_fingerprint": fingerprint,
        "runs": runs,
        "wall_s_mean": round(sum(r["wall_s"] for r in runs) / len(runs), 2),
        "test_auc_min": None if None in aucs else min(aucs),
        "test_auc": mean_std(aucs),
        "test_balanced_acc": mean_std([r["test_balanced_acc"] for r in runs]),
        "target_auc": target,
        "target_met": None
        if target is None
        else all(auc is not None and auc >= target for auc in aucs),
        "torch": torch.__version__,
        "threads": torch.get_num_threads(),
        "cpus": os.cpu_count(),
        "machine": platform.machine(),
    }
    save_result(result, ROOT / "benchmarks" / "results" / protocol.result)
    return 1 if result["target_met"] is False else 0


if __name__ == "__main__":
    raise SystemExit(main())
