"""The paper's Table 1 under one protocol: every registered detector, same stores, same split.

    .venv/bin/python -m benchmarks.bench_table1 [--size tiny|paper] [--detectors a,b]
        [--seeds 0,1] [--quick] [--store STORE [--fbank-store STORE]] [--split default]
        [--work runs/bench-table1] [--out PATH]

The protocol (``PROTOCOLS``, fixed here before any run): every detector of
:func:`trainer.model.detector_names` (a detector registered later is picked up with no
change here), each with its own preset of the size (the registry's ``presets``: ``tiny``
for a CPU, ``paper`` for a GPU run), trained with seeds 0-4 for that preset's own
epochs, on the data of :mod:`benchmarks.bench_train`'s ``hard`` protocol (``synth
--difficulty hard --per-category 32 --identities 48``, ``split --balance --ratios
0.5,0.25,0.25``; the store must pass the ceiling rule,
:func:`benchmarks.bench_ceiling.require_valid`, before anything trains). The checkpoint is chosen by the
trainer's rule (``trainer.train.selection.SELECTION``, as ``mscct-train run`` does) and the
test part evaluated once. A detector that reads another recipe (``Reads``: ``mrdf_*``
read ``fbank`` features) trains on a second store ingested from the same dataset with
the options that give it, with the same split: the benchmark checks that every store's
parts hold the same clips and no identity spans two parts, and records it. The
ceiling of such a store is measured and recorded but not enforced (:func:`store_ceiling`).

Reported per detector (``benchmarks/results/table1.json``; ``table1_paper.json`` for
``--size paper``): test ACC, balanced ACC, AUC, AP, EER, the audio and video heads' AUC
(null for a head the detector lacks or no loss term trains), parameters and seconds per epoch (training and
validation), each mean ± sample std over the seeds, and every seed's run.
``python -m benchmarks.table1_markdown`` renders it as the README's table.

Departures, recorded with ``"protocol_followed": false`` and written to the work folder
unless ``--out`` says otherwise: ``--detectors``, ``--seeds``, given stores (``--store``,
``--fbank-store``: they may hold anything; the ceiling rule, which is about the synthetic
data, is not applied to them), and ``--quick`` (4 clips per category, 1 epoch, seed 0,
2 windows per clip, no ceiling check: the plumbing only, its figures mean nothing).

Every run's chosen checkpoint is then audited (``mscct-train audit`` on the test part,
:mod:`benchmarks.table1_audit`); the audit is kept in the run's record and summarised
per detector (``audit``), and ``table1_markdown`` renders its headline.

Resumable: every detector × seed leaves its record, ``benchmarks/results/table1_runs/
<size>/<detector>/seed-N.json`` on the protocol's data (committed with the results, so a
table can be completed over several sittings: ``--detectors``/``--seeds`` run a part,
and the last invocation, with neither, writes the table), ``WORK/quick/runs/...`` for
--quick and ``WORK/<size>/given-<fingerprint>/runs/...`` on given stores; checkpoints
stay under ``WORK``. A rerun keeps a run recorded on the same store fingerprint with the
same resolved config, and keeps the synthetic dataset and stores it made.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # run as a script: make the repository importable
    sys.path.insert(0, str(ROOT))

from benchmarks import bench_train  # noqa: E402
from benchmarks.bench_ceiling import refusing  # noqa: E402
from benchmarks.output import save_result  # noqa: E402
from benchmarks.run_records import finished_run, run_file  # noqa: E402
from benchmarks.table1_audit import summarize as summarize_audits  # noqa: E402
from benchmarks.table1_runs import (  # noqa: E402
    METRICS,
    Plan,
    summarize,
    train_run,
)
from benchmarks.table1_stores import (  # noqa: E402
    DEFAULT_STORE,
    check_same_split,
    ingest_options,
    store_key,
    synthetic_stores,
)

RESULTS = ROOT / "benchmarks" / "results"
WORK = ROOT / "runs" / "bench-table1"
#: Where the runs on the protocol's own data keep their records (committed: see
#: :mod:`benchmarks.table1_runs`); --quick and given stores keep theirs in the work folder.
RUNS = RESULTS / "table1_runs"


@dataclass(frozen=True)
class Table1Protocol:
    """What every row of Table 1 is measured under, fixed before it is run."""

    size: str  # the registry's preset size every detector trains at
    data: str  # the benchmarks.bench_train protocol that makes the store and split
    seeds: tuple[int, ...]
    epochs: str  # "preset": each detector's preset's own
    metrics: tuple[str, ...]
    result: str  # file name under benchmarks/results/


PROTOCOLS = {
    size: Table1Protocol(size, "hard", (0, 1, 2, 3, 4), "preset", METRICS, name)
    for size, name in (("tiny", "table1.json"), ("paper", "table1_paper.json"))
}
PROTOCOL_VERSION = 1
#: --quick: the plumbing only (clips per category, seeds, --set on every preset).
QUICK_PER_CATEGORY = 4
QUICK_SEEDS = (0,)
QUICK_EPOCHS = 1
QUICK_OVERRIDES = ("windows_per_clip=2",)


def plans(detectors: list[str], size: str, quick: bool) -> list[Plan]:
    """Each detector's preset of ``size``, the store it reads and its epochs."""
    from trainer.config.settings import load_config
    from trainer.model import detector_reads, get_detector

    out = []
    for name in detectors:
        preset = get_detector(name).presets[size]
        cfg = load_config(preset, [])
        ingest = ingest_options(detector_reads(cfg.model))
        epochs, overrides = (QUICK_EPOCHS, QUICK_OVERRIDES) if quick else (cfg.epochs, ())
        out.append(Plan(name, preset, store_key(ingest), ingest, epochs, overrides))
    return out


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", choices=sorted(PROTOCOLS), default="tiny")
    parser.add_argument("--detectors", default=None, help="comma-separated (default: all)")
    parser.add_argument("--seeds", default=None, help="comma-separated training seeds")
    parser.add_argument("--quick", action="store_true", help="plumbing check: tiny data, 1 epoch")
    parser.add_argument("--store", type=Path, default=None, help="a store of the default recipe")
    parser.add_argument("--fbank-store", type=Path, default=None, help="the same data, fbank")
    parser.add_argument("--split", default="default")
    parser.add_argument("--work", type=Path, default=WORK, help="stores, runs (resumable)")
    parser.add_argument("--out", type=Path, default=None, help="the JSON to write")
    args = parser.parse_args(argv)
    from trainer.model import detector_names

    known = list(detector_names())
    args.detector_list = args.detectors.split(",") if args.detectors else known
    unknown = [d for d in args.detector_list if d not in known]
    if unknown:
        parser.error(f"unknown detector(s) {unknown}; registered: {', '.join(known)}")
    if args.fbank_store is not None and args.store is None:
        parser.error("--fbank-store goes with --store")
    return args


def departures(args: argparse.Namespace, protocol: Table1Protocol) -> list[str]:
    """How this invocation departs from ``protocol`` (empty: it follows it)."""
    from trainer.model import detector_names

    found = []
    if args.quick:
        found.append(
            f"--quick: {QUICK_PER_CATEGORY} clips per category, seeds {list(QUICK_SEEDS)}, "
            f"epochs={QUICK_EPOCHS}, {', '.join(QUICK_OVERRIDES)}, no ceiling check"
        )
    if sorted(set(args.detector_list)) != sorted(detector_names()):
        found.append(f"--detectors {','.join(args.detector_list)}")
    if args.seeds is not None and tuple(args.seed_list) != protocol.seeds:
        found.append(f"--seeds {args.seeds}")
    if args.store is not None:
        found.append("given stores (not the protocol's synthetic data; no ceiling rule)")
    return found


def open_stores(
    args: argparse.Namespace, needed: dict[str, tuple[str, ...]], synth: list[str]
) -> dict[str, Path]:
    """The store of every key in ``needed``: given, or made from the synthetic data."""
    if args.store is None:
        return synthetic_stores(args.work_dir, synth, needed)
    given = {DEFAULT_STORE: args.store, "fbank": args.fbank_store}
    missing = [key for key in needed if given.get(key) is None]
    if missing:
        options = " ".join(needed[missing[0]])
        raise SystemExit(
            f"error: a detector reads the {missing[0]} store: ingest the dataset again with "
            f"`mscct-pipeline ingest DATASET --store NEW {options}`, split it as --store "
            "was split, and pass it (--fbank-store for fbank), or leave that detector out "
            "(--detectors)"
        )
    return {key: path for key, path in given.items() if key in needed and path is not None}


def store_ceiling(args: argparse.Namespace, key: str, store: Path) -> dict[str, Any] | None:
    """The ceiling of a store the protocol made; None for a given store or --quick.

    The rule is enforced on the default store, the data protocol's own (raises when it
    fails, before any training). Another store holds the same clips, so the data has
    passed the rule already; its ceiling is measured and recorded, not enforced: the probe
    is the ``tiny`` preset's audio pre-encoder, made for MFCC, and reaches less on other
    features (0.78 audio AUC on the fbank store where the MFCC store gives 0.99).
    A result is kept in the work folder for reruns.
    """
    if args.store is not None or args.quick:
        return None
    import schemas
    from benchmarks.bench_ceiling import measure

    cache = args.work_dir / f"ceiling-{key}.json"
    fingerprint = schemas.store_fingerprint(store)
    if cache.exists() and json.loads(cache.read_text()).get("store_fingerprint") == fingerprint:
        return dict(json.loads(cache.read_text()))
    cues = bench_train.store_cues(args.work_dir)
    if key == DEFAULT_STORE:
        data = bench_train.PROTOCOLS[PROTOCOLS[args.size].data]
        checked = bench_train.check_ceiling(data, store, args.split, cues)  # None: exempt
        ceiling = {**(checked or {}), "enforced": checked is not None}
    else:
        found = measure(store, args.split, cues)
        ceiling = {"store_fingerprint": fingerprint, "valid": found["valid"], "from": None}
        ceiling |= {m: probe["clip_auc"] for m, probe in found["ceilings"].items()}
        ceiling |= {"reasons": found["reasons"], "enforced": False}
    cache.write_text(json.dumps(ceiling, indent=2) + "\n")
    return ceiling


def store_records(
    args: argparse.Namespace, stores: dict[str, Path], needed: dict[str, tuple[str, ...]],
    rows: list[Plan],
) -> dict[str, dict[str, Any]]:  # fmt: skip
    """What the result says of each store: how it was made, its fingerprint, its ceiling
    and the detectors that read it. Checks the ceiling rule before any training."""
    import schemas

    records = {}
    for key, store in stores.items():
        ceiling = store_ceiling(args, key, store)
        records[key] = {
            "path": str(store),
            "ingest": " ".join(["mscct-pipeline ingest DATASET", *needed[key]]).strip(),
            "features": schemas.open_store(store).recipe.features,
            "fingerprint": schemas.store_fingerprint(store),
            "ceiling": ceiling,
            "ceiling_skipped": None if ceiling else "--quick" if args.quick else "given store",
            "detectors": [plan.detector for plan in rows if plan.store == key],
        }
    return records


def elapsed(t0: float) -> str:
    """Seconds since ``t0`` as h:mm:ss."""
    seconds = int(time.perf_counter() - t0)
    return f"{seconds // 3600}:{seconds // 60 % 60:02d}:{seconds % 60:02d}"


def train_all(
    args: argparse.Namespace, rows: list[Plan], stores: dict[str, Path], fingerprints: dict
) -> dict[str, dict[str, Any]]:
    """Every detector × seed, trained or kept from an earlier run; one row per detector."""
    root, t0 = args.records_dir, time.perf_counter()
    total, done, table = len(rows) * len(args.seed_list), 0, {}
    for plan in rows:
        config, runs = plan.config(), []
        for seed in args.seed_list:
            done += 1
            record = finished_run(
                run_file(root, plan.detector, seed), fingerprints[plan.store], config
            )
            what = "kept (measured before)" if record else f"training {plan.epochs} epochs"
            print(f"== table1 [{done}/{total}] {plan.detector} seed {seed}: {what}; "
                  f"elapsed {elapsed(t0)}", flush=True)  # fmt: skip
            record = record or train_run(
                plan, seed, stores[plan.store], args.split, args.work_dir / "runs", root
            )
            runs.append({k: v for k, v in record.items() if k != "config"})  # once, below
        untrained = plan.untrained_heads()
        table[plan.detector] = {
            "preset": plan.preset,
            "store": plan.store,
            "epochs": plan.epochs,
            "overrides": list(plan.overrides),
            "untrained_heads": untrained,
            "summary": summarize(runs, untrained),
            "audit": summarize_audits(runs),
            "config_resolved": config,
            "runs": runs,
        }
    return table


@refusing
def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    import torch

    import schemas
    from trainer.data.reader import raise_fd_limit
    from trainer.train.selection import SELECTION

    raise_fd_limit()  # train() runs in this process: as `mscct-train` does at its start
    protocol = PROTOCOLS[args.size]
    args.seed_list = (
        [int(x) for x in args.seeds.split(",")] if args.seeds else
        list(QUICK_SEEDS if args.quick else protocol.seeds)
    )  # fmt: skip
    args.work_dir = args.work / ("quick" if args.quick else args.size)
    if args.store is not None:  # runs on given stores are kept apart, by the store they read
        args.work_dir /= f"given-{schemas.store_fingerprint(args.store)}"
    args.work_dir.mkdir(parents=True, exist_ok=True)
    protocol_data = not args.quick and args.store is None  # its runs' records are results
    args.records_dir = RUNS / args.size if protocol_data else args.work_dir / "runs"
    data = bench_train.PROTOCOLS[protocol.data]
    synth = bench_train.synth_args(data, QUICK_PER_CATEGORY if args.quick else data.per_category)
    rows = plans(args.detector_list, args.size, args.quick)
    needed = {plan.store: plan.ingest for plan in rows}
    stores = open_stores(args, needed, synth)
    split_check = check_same_split(stores, args.split)  # before hours of training
    records = store_records(args, stores, needed, rows)
    fingerprints = {key: record["fingerprint"] for key, record in records.items()}
    table = train_all(args, rows, stores, fingerprints)
    moved = departures(args, protocol)
    source = bench_train.store_source(synth)
    result = {
        "benchmark": "table1",
        "protocol": {**asdict(protocol), "seeds": list(protocol.seeds)},
        "protocol_version": PROTOCOL_VERSION,
        "protocol_followed": not moved,
        "departures": moved,
        "seeds": args.seed_list,
        "data_protocol": {**data.__dict__, "seeds": list(data.seeds)},
        "data_protocol_version": bench_train.PROTOCOL_VERSION,
        "store_source": source if args.store is None else f"given (protocol: {source})",
        "stores": records,
        "split_check": split_check,
        "selection": SELECTION,
        "detectors": table,
        "torch": torch.__version__,
        "threads": torch.get_num_threads(),
        "cpus": os.cpu_count(),
        "machine": platform.machine(),
    }
    out = args.out or (RESULTS / protocol.result if not moved else args.work_dir / "table1.json")
    save_result(result, out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
