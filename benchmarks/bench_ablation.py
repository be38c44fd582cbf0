"""The paper's Table 2 ablation and the model's three switches, on the hard synthetic setting.

    .venv/bin/python -m benchmarks.bench_ablation [--difficulty hard|hard-partial]
        [--result PATH] [--work DIR] [VARIANT ...]

Every variant is the ``tiny`` preset under the ``hard`` protocol of
:mod:`benchmarks.bench_train` (same store, seeds 0-4, 12 epochs, the trainer's
selection rule, the test part evaluated once per run) with the ``--set``
overrides listed in ``VARIANTS`` and nothing else changed. One store is made for
all of them, in ``--work`` (kept, and reused by a later invocation); it must pass
the ceiling rule (:mod:`benchmarks.bench_ceiling`) before any variant trains on it.

Resumable run by run. Every finished run is recorded in
``benchmarks/results/ablation_runs/<difficulty>/<variant>/seed-N.json`` with its store's
fingerprint and resolved config (:mod:`benchmarks.run_records`), and a later invocation
keeps it, in this checkout or another whose store has the same fingerprint. A variant's
row goes to ``benchmarks/results/ablation.json`` (``ablation_hard_partial.json`` for
``--difficulty hard-partial``) once all its seeds are done; a rerun skips rows already
there under the same protocol and resolved config. A result recorded before protocol
version 2 was measured on what is now ``hard-partial``
(:func:`benchmarks.bench_train.recorded_protocol`): that is the committed
``ablation_hard_partial.json``.

The ``dca+mssa`` variant is the preset itself, which other benchmarks already train:
its runs are taken from a ``train*.json`` result of this protocol and exactly this
resolved config, or, on the ``hard`` data, from Table 1's ``msct`` runs
(``benchmarks/results/table1_runs/tiny/msct``, the same preset, store and seeds), rather
than trained again (``"from"`` names the source). Training is deterministic for a fixed
seed, store and thread count, so a rerun would give the same figures.

The synthetic cues are not FakeAVCeleb's: a ranking here says which parts of the
model can use these cues, not which help on real deepfakes.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # run as a script: make the repository importable
    sys.path.insert(0, str(ROOT))

from benchmarks.bench_ceiling import refusing  # noqa: E402
from benchmarks.bench_train import (  # noqa: E402
    PROTOCOL_VERSION,
    PROTOCOLS,
    Protocol,
    check_ceiling,
    mean_std,
    preset_config,
    same_protocol,
    store_cues,
    store_source,
    synth_args,
    train_seeds,
)
from benchmarks.output import save_result  # noqa: E402
from benchmarks.run_records import (  # noqa: E402
    PAPER_MODEL,
    TABLE1_RUNS,
    finished_run,
    paper_model_run,
    run_file,
    shown_path,
    write_record,
)
from benchmarks.table1_stores import DEFAULT_STORE, synthetic_stores  # noqa: E402

RESULTS = ROOT / "benchmarks" / "results"
RESULT = RESULTS / "ablation.json"
RESULT_FILES = {"hard": RESULT, "hard-partial": RESULTS / "ablation_hard_partial.json"}
#: Each run's record, ``<difficulty>/<variant>/seed-N.json`` (:mod:`benchmarks.run_records`).
RUNS = RESULTS / "ablation_runs"
WORK = ROOT / "runs" / "bench-ablation"
CONFIG = "tiny"

# name -> overrides of the tiny preset. Table 2 first, then the switches, each
# departing from the paper's model (dca + mssa, the paper's DCA form, 2d kernels, mean
# heads, sequence alignment) in one place only.
VARIANTS: dict[str, list[str]] = {
    "dca+mssa": [],
    "dca+sa": ["model.attn_self=sa"],
    "ca+mssa": ["model.attn_cross=ca"],
    "ca+sa": ["model.attn_cross=ca", "model.attn_self=sa"],
    "mssa_kernel=time": ["model.mssa_kernel=time"],
    "dca_form=diff_transformer": ["model.dca_form=diff_transformer"],
    "unimodal_head=cls": ["model.unimodal_head=cls"],
    "alignment=mean": ["loss.alignment=mean"],
}


def summarize(runs: list[dict]) -> dict:
    """Mean ± std over seeds of the figures the table shows."""
    return {
        key: mean_std([r[key] for r in runs])
        for key in ("test_auc", "test_balanced_acc", "audio_auc", "video_auc")
    }


def resolved_config(overrides: list[str], epochs: int) -> dict:
    """The config a variant trains, less ``seed`` (as :func:`train_seeds` records it)."""
    return preset_config(CONFIG, overrides, epochs)


# Config keys added after a result may have been measured, with the value that behaves as
# the code before them did. A stored config without such a key matches one that has it at
# this value; any other difference means another experiment. Results from before
# model.dca_form were measured with the Differential Transformer's DCA, which is no longer
# the default: they count for "dca_form=diff_transformer" and not for the paper's form.
ADDED_KEYS: dict[str, dict[str, Any]] = {
    "model": {"visual_input": "face", "dca_form": "diff_transformer"},
    "data": {"streams": ["face"]},
    "eval": {"aggregate": "mean"},
}


def same_config(stored: dict, resolved: dict) -> bool:
    """Whether a result measured under ``stored`` is a result of ``resolved``."""
    filled = {
        section: {**ADDED_KEYS.get(section, {}), **values} if isinstance(values, dict) else values
        for section, values in {**{key: {} for key in ADDED_KEYS}, **stored}.items()
    }
    return filled == resolved


def reusable_default(protocol: Protocol, resolved: dict, results: Path = RESULTS) -> dict | None:
    """The paper variant's runs from a ``train*.json`` result that measured exactly this."""
    for path in sorted(results.glob("train*.json")):
        prior = json.loads(path.read_text())
        same = (
            same_protocol(prior, protocol)
            and prior.get("protocol_followed") is True
            and same_config(prior.get("config_resolved", {}), resolved)
        )
        if same:
            return {"runs": prior["runs"], "from": path.name}
    return None


def kept_run(name: str, seed: int, fingerprint: str, resolved: dict, records: Path) -> dict | None:
    """A finished run of variant ``name`` with ``seed`` on this store and config: its own
    record, or for the paper's model on the ``hard`` data the same run made for Table 1
    (:func:`benchmarks.run_records.paper_model_run`), else None."""
    record = finished_run(run_file(records, name, seed), fingerprint, resolved)
    if record is None and not VARIANTS[name]:
        record = paper_model_run(seed, fingerprint, resolved)
        if record is not None:
            record = {**record, "from": shown_path(TABLE1_RUNS.joinpath(*PAPER_MODEL))}
    return record


class ProtocolStore:
    """The protocol's synthetic store, made (or found in ``work``) when first needed and
    checked against the ceiling rule before any variant trains on it."""

    def __init__(self, protocol: Protocol, work: Path) -> None:
        self.protocol, self.work = protocol, work
        self.path: Path | None = None
        self.fingerprint = ""
        self.ceiling: dict | None = None

    def get(self) -> Path:
        if self.path is None:
            import schemas

            synth = synth_args(self.protocol, self.protocol.per_category)
            self.path = synthetic_stores(self.work, synth, {DEFAULT_STORE: ()})[DEFAULT_STORE]
            self.fingerprint = schemas.store_fingerprint(self.path)
            # No variant trains on a store that fails the ceiling rule.
            self.ceiling = check_ceiling(self.protocol, self.path, "default", store_cues(self.work))
        return self.path


def variant_runs(
    name: str, resolved: dict, store: ProtocolStore, seeds: list[int], records: Path
) -> list[dict]:
    """Every seed's run of variant ``name``: kept when recorded, else trained and recorded."""
    store.get()
    runs = []
    for seed in seeds:
        record = kept_run(name, seed, store.fingerprint, resolved, records)
        print(f"== {name} seed {seed}: " + ("kept" if record else "training"), flush=True)
        if record is None:
            work = store.work / "runs" / name
            shutil.rmtree(work / f"seed-{seed}", ignore_errors=True)  # an interrupted run's dir
            trained, _ = train_seeds(
                CONFIG, VARIANTS[name], store.get(), "default", [seed], store.protocol.epochs, work
            )
            record = {
                **trained[0],
                "run_dir": shown_path(work / f"seed-{seed}"),
                "store_fingerprint": store.fingerprint,
                "config": resolved,
            }
            write_record(run_file(records, name, seed), record)  # nothing finished is lost
        runs.append({k: v for k, v in record.items() if k != "config"})  # once, in the entry
    return runs


@refusing
def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "variants", nargs="*", default=list(VARIANTS), help=f"any of {', '.join(VARIANTS)}"
    )
    parser.add_argument("--difficulty", choices=sorted(RESULT_FILES), default="hard")
    parser.add_argument(
        "--result", type=Path, default=None, help="the JSON to write (and resume from)"
    )
    parser.add_argument(
        "--work", type=Path, default=None,
        help="the dataset, store and checkpoints (kept; default runs/bench-ablation/DIFFICULTY)",
    )  # fmt: skip
    args = parser.parse_args()
    args.result = args.result or RESULT_FILES[args.difficulty]
    unknown = [v for v in args.variants if v not in VARIANTS]
    if unknown:
        parser.error(f"unknown variant(s) {unknown}; choose from {list(VARIANTS)}")

    import torch

    from trainer.data.reader import raise_fd_limit

    raise_fd_limit()  # train() runs in this process: as `mscct-train` does at its start
    protocol = PROTOCOLS[args.difficulty]
    protocol_dict = {**protocol.__dict__, "seeds": list(protocol.seeds)}
    synth = synth_args(protocol, protocol.per_category)
    result = json.loads(args.result.read_text()) if args.result.exists() else {}
    if not same_protocol(result, protocol):  # another protocol: start over
        result = {}
    result.update(
        benchmark="ablation",
        protocol=result.get("protocol", protocol_dict),  # as measured (version and names)
        protocol_version=result.get("protocol_version", PROTOCOL_VERSION if not result else 1),
        config=CONFIG,
        store_source=store_source(synth),
        torch=torch.__version__,
        threads=torch.get_num_threads(),
        caveat="synthetic cues, not FakeAVCeleb's: says which parts can use these cues",
    )
    variants = result.setdefault("variants", {})
    store = ProtocolStore(protocol, args.work or WORK / args.difficulty)
    records = RUNS / args.difficulty
    for name in args.variants:
        overrides = VARIANTS[name]
        resolved = resolved_config(overrides, protocol.epochs)
        done = variants.get(name)
        if done and same_config(done["config_resolved"], resolved):
            print(f"== {name}: already measured, kept", flush=True)
            continue
        entry = reusable_default(protocol, resolved) if not overrides else None
        if entry is None:
            runs = variant_runs(name, resolved, store, list(protocol.seeds), records)
            sources = sorted({run.get("from", shown_path(records / name)) for run in runs})
            entry = {"runs": runs, "from": ", ".join(sources)}
            result["ceiling"] = store.ceiling
        variants[name] = {
            "overrides": overrides,
            "config_resolved": resolved,
            **summarize(entry["runs"]),
            "wall_s_mean": round(sum(r["wall_s"] for r in entry["runs"]) / len(entry["runs"]), 2),
            **entry,
        }
        save_result(result, args.result)  # after each variant: nothing finished is lost
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
