"""The stores of Table 1: one per ingest recipe the detectors read, same clips, same split.

Most detectors read the default recipe (``mscct-pipeline ingest`` with no options: MFCC
features); a detector whose :class:`trainer.model.Reads` asks for other features, crop
size or streams reads a second store ingested from the same dataset with the options
that give them (:func:`ingest_options`; today ``mrdf_*``: ``--audio-features fbank``).
Every store gets the same balanced split, and :func:`check_same_split` refuses stores
whose parts differ in any clip or share an identity: a table whose rows were tested on
different clips would compare unlike things.
"""

from __future__ import annotations

import itertools
import json
import shutil
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # run as a script: make the repository importable
    sys.path.insert(0, str(ROOT))

import schemas  # noqa: E402
from benchmarks.bench_ceiling import InvalidBenchmark  # noqa: E402
from benchmarks.bench_train import ingest_and_split, run_pipeline  # noqa: E402

#: The key of the store made by ``ingest`` without options.
DEFAULT_STORE = "default"
PARTS = ("train", "val", "test")


class SplitMismatch(InvalidBenchmark):
    """The stores' splits differ, or a split shares an identity between its parts."""


def ingest_options(reads: Any) -> tuple[str, ...]:
    """The ``mscct-pipeline ingest`` options that give a store a detector reads.

    ``reads`` is the detector's :class:`trainer.model.Reads`; a value it leaves open, or
    asks for at the recipe's default, needs no option.
    """
    default = schemas.Recipe()
    options: list[str] = []
    if reads.features is not None and reads.features != default.features:
        options += ["--audio-features", reads.features]
    if reads.crop_size is not None and reads.crop_size != default.crop_size:
        options += ["--crop-size", str(reads.crop_size)]
    if "mouth" in reads.streams:
        options += ["--landmarks", "--streams", "face,mouth"]
    return tuple(options)


def store_key(options: tuple[str, ...]) -> str:
    """A short name of the store made with ``options`` (``default``, ``fbank``, ...)."""
    names = {"--audio-features": "{}", "--crop-size": "crop{}", "--streams": "mouth"}
    words = [
        names[option].format(value)
        for option, value in itertools.pairwise(options)
        if option in names
    ]
    return "-".join(words) or DEFAULT_STORE


def synthetic_stores(
    work: Path, synth: list[str], needed: dict[str, tuple[str, ...]]
) -> dict[str, Path]:
    """One synthetic dataset (``synth`` options) in ``work / "data"``, ingested once per
    entry of ``needed`` (key → ingest options) into ``work / "stores" / key``.

    Resumable: the dataset is kept while ``work / "data.json"`` records the same synth
    options, and a store is kept once it has its split (the last step that makes it).
    """
    data, marker = work / "data", work / "data.json"
    if not marker.exists() or json.loads(marker.read_text()).get("synth") != synth:
        for stale in (data, work / "stores"):  # another dataset: nothing of it is reused
            shutil.rmtree(stale, ignore_errors=True)
        run_pipeline(["synth", data, *synth])
        marker.write_text(json.dumps({"synth": synth}) + "\n")
    stores = {}
    for key, options in needed.items():
        store = work / "stores" / key
        if not (store.exists() and "default" in schemas.list_splits(store)):
            shutil.rmtree(store, ignore_errors=True)  # a store left half made
            print(f"== table1: ingesting the {key} store", flush=True)
            ingest_and_split(data, store, options)
        stores[key] = store
    return stores


def split_parts(store: Path, split: str) -> dict[str, dict[str, list[str]]]:
    """``{"clips": part → sorted clip ids, "identities": part → sorted identities}``."""
    rows = schemas.read_split(store, split).select(["clip_id", "split", "identity"]).to_pylist()
    return {
        column: {part: sorted({r[key] for r in rows if r["split"] == part}) for part in PARTS}
        for column, key in (("clips", "clip_id"), ("identities", "identity"))
    }


def check_same_split(stores: dict[str, Path], split: str) -> dict[str, Any]:
    """The split every store shares, as the result records it.

    Raises:
        SplitMismatch: two stores' parts hold different clips, or an identity has
            clips in two parts.
    """
    parts = {key: split_parts(store, split) for key, store in stores.items()}
    first, reference = next(iter(parts.items()))
    for key, found in parts.items():
        for part in PARTS:
            if found["clips"][part] != reference["clips"][part]:
                differ = sorted(set(found["clips"][part]) ^ set(reference["clips"][part]))
                raise SplitMismatch(
                    f"the {part} parts of split {split!r} differ between the {first} and "
                    f"{key} stores ({len(differ)} clips, e.g. {differ[0]}); give both stores "
                    "the same split (mscct-pipeline split --balance with the same options)"
                )
    ids = reference["identities"]
    for i, part in enumerate(PARTS):
        for other in PARTS[i + 1 :]:
            shared = set(ids[part]) & set(ids[other])
            if shared:
                raise SplitMismatch(
                    f"split {split!r} is not identity-disjoint: {sorted(shared)[0]} has "
                    f"clips in both {part} and {other}"
                )
    return {
        "split": split,
        "stores": list(stores),
        "same_clips": True,
        "identity_disjoint": True,
        "clips": {part: len(reference["clips"][part]) for part in PARTS},
        "identities": {part: len(ids[part]) for part in PARTS},
    }
