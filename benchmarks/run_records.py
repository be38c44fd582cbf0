"""One training run's record as a result file, kept and reused across sittings.

A benchmark that trains many runs (Table 1's detectors × seeds, the ablation's variants ×
seeds) writes each finished run to its own JSON file, ``<root>/<name>/seed-N.json``,
holding the fingerprint of the store it trained on and the resolved config it trained
(less ``seed``). A later invocation keeps a run whose file records the same two
(:func:`finished_run`) instead of training it again, so hours of training survive an
interruption and a table can be completed a few runs at a time. ``synth`` makes the same
sources again from the same options, so a fresh checkout's store has the committed runs'
fingerprint and keeps them.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

#: Table 1's runs (``<size>/<detector>/seed-N.json``): its ``tiny/msct`` runs are the
#: ``tiny`` preset on the ``hard`` protocol's store, which ``bench_train --difficulty
#: hard`` and the ablation's paper row would otherwise train again.
ROOT = Path(__file__).resolve().parents[1]
TABLE1_RUNS = ROOT / "benchmarks" / "results" / "table1_runs"
PAPER_MODEL = ("tiny", "msct")  # where under TABLE1_RUNS the paper model's runs are


def run_file(root: Path, name: str, seed: int) -> Path:
    """Where the run of ``name`` (a detector, a variant) with ``seed`` keeps its record."""
    return root / name / f"seed-{seed}.json"


def finished_run(path: Path, fingerprint: str, config: dict[str, Any]) -> dict | None:
    """The run recorded at ``path`` if it measured this store and config, else None."""
    if not path.exists():
        return None
    record = json.loads(path.read_text())
    same = record.get("store_fingerprint") == fingerprint and record.get("config") == config
    return record if same else None


def paper_model_run(seed: int, fingerprint: str, config: dict[str, Any]) -> dict | None:
    """Table 1's run of the paper's model with ``seed``, if it trained this store and config."""
    size, detector = PAPER_MODEL
    return finished_run(run_file(TABLE1_RUNS / size, detector, seed), fingerprint, config)


def shown_path(path: Path) -> str:
    """``path`` relative to the repository when it lies inside it, else as given: what a
    committed record names, so that it says nothing of the machine it was made on."""
    try:
        return str(path.resolve().relative_to(ROOT))
    except ValueError:
        return str(path)


def write_record(path: Path, record: dict[str, Any]) -> None:
    """``record`` at ``path``, written whole or not at all (a killed run leaves no half file)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_suffix(".json.partial")
    partial.write_text(json.dumps(record, indent=2) + "\n")
    partial.replace(path)
