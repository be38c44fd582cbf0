"""A ceiling for each cue: what a probe told where the cue is reaches, and what trivial cues give.

    .venv/bin/python -m benchmarks.bench_ceiling [--difficulty hard|hard-partial|easy]
        [--store STORE [--cues HARD_JSON]] [--split default] [--out PATH]
        [--earlier RESULT --changed TEXT]

On the store a benchmark trains on (without ``--store``: the store of
:mod:`benchmarks.bench_train`'s protocol for ``--difficulty``, made by the real
pipeline), it reports

- for each modality, the clip AUC (test part) of a probe trained per frame with
  frame labels on the train part (:mod:`benchmarks.ceiling_probes`): the video
  probe is the ``tiny`` preset's frame encoder plus a linear layer, the audio probe
  its audio pre-encoder plus a linear layer. Frame labels come from the store
  (datasets with fake segments), else from the synthetic dataset's ``hard.json``
  (``manip_frames``), else the clip's label on every frame (whole-clip fakes);
- the AUC of trivial cues over every clip of the split, each against the clip,
  audio and video labels: leading silence, clip length, mean brightness of the
  face crops, audio energy. A cue that separates inversely is as much a shortcut,
  so each counts as ``max(AUC, 1 - AUC)``, the worst label taken.

The benchmark is **valid** when every modality's ceiling is at least ``CEILING_MIN``
and every trivial cue at most ``TRIVIAL_MAX``; the JSON says whether it is, with
the store's fingerprint. :mod:`benchmarks.bench_train` and
:mod:`benchmarks.bench_ablation` refuse to write results on a store that is not
(:func:`require_valid`, which reuses a committed JSON of the same fingerprint or
measures the store itself).

When a protocol fails the rule, the data (or the measurement) may be changed once and
measured again; ``--earlier`` keeps the failed result inside the new one, under
``earlier``, with ``--changed`` saying what was changed, so that both are on record.
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import shutil
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # run as a script: make the repository importable
    sys.path.insert(0, str(ROOT))

import schemas  # noqa: E402
from benchmarks.output import save_result  # noqa: E402

RESULTS = ROOT / "benchmarks" / "results"
CEILING_MIN = 0.95
TRIVIAL_MAX = 0.60
HOPS_PER_FRAME = 4  # 10 ms audio hops per stored frame (pipeline.clip.audio_features)
HOP_S = 0.01
ONSET_DROP = np.log(1e3)  # speech begins at the first hop within 30 dB of the loudest
LABELS = ("label", "audio_label", "video_label")


class InvalidBenchmark(schemas.UserError):
    """The store fails the ceiling rule: results measured on it would not say much."""


def refusing(main: Callable[..., int]) -> Callable[..., int]:
    """A benchmark's ``main`` that ends with one ``error:`` line and exit status 2 when
    its store fails the ceiling rule (nothing written), as the project's CLIs do."""

    @functools.wraps(main)
    def wrapped(*args: Any, **kwargs: Any) -> int:
        try:
            return main(*args, **kwargs)
        except InvalidBenchmark as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 2

    return wrapped


def hop_log_energy(audio: np.ndarray, features: str) -> np.ndarray:
    """Log energy of every 10 ms hop of a clip's stored features ``(T, 104)``: ``(4T,)``.

    ``mfcc`` stores the log frame energy as cepstrum 0 of each 26-value hop; ``fbank``
    stores 26 log filterbank energies, summed here.
    """
    hops = np.asarray(audio, dtype=np.float64).reshape(-1, 26)
    if features == "mfcc":
        return hops[:, 0]
    return np.logaddexp.reduce(hops, axis=1)


def trivial_cues(video: np.ndarray, audio: np.ndarray, features: str) -> dict[str, float]:
    """The cues a detector should not be able to use, of one clip.

    ``video`` ``(T, S, S, 3)`` uint8 face crops, ``audio`` ``(T, 104)`` stored features.
    """
    energy = hop_log_energy(audio, features)
    onset = int(np.argmax(energy >= energy.max() - ONSET_DROP))
    return {
        "leading_silence_s": onset * HOP_S,
        "clip_length_frames": float(video.shape[0]),
        "mean_brightness": float(np.asarray(video, dtype=np.float32).mean()),
        "audio_energy": float(energy.mean()),
    }


def shortcut_auc(labels: list[int], values: list[float]) -> float | None:
    """``max(AUC, 1 - AUC)`` of ``values`` for ``labels``; None when one class is absent."""
    from sklearn.metrics import roc_auc_score

    if len(set(labels)) < 2:
        return None
    auc = float(roc_auc_score(labels, values))
    return round(max(auc, 1.0 - auc), 4)


def trivial_table(rows: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """Each trivial cue's shortcut AUC against each label, and the worst of them."""
    table: dict[str, dict[str, Any]] = {}
    for cue in rows[0]["cues"]:
        values = [r["cues"][cue] for r in rows]
        aucs = {name: shortcut_auc([r[name] for r in rows], values) for name in LABELS}
        defined = [a for a in aucs.values() if a is not None]
        table[cue] = {**aucs, "worst": max(defined) if defined else None}
    return table


def verdict(probes: dict[str, dict], trivial: dict[str, dict]) -> tuple[bool, list[str]]:
    """Whether the rule holds, and why not: each failed ceiling or trivial cue."""
    reasons = []
    for modality, probe in probes.items():
        auc = probe["clip_auc"]
        if auc is None or auc < CEILING_MIN:
            reasons.append(f"{modality} ceiling {auc} < {CEILING_MIN}")
    for cue, row in trivial.items():
        if row["worst"] is not None and row["worst"] > TRIVIAL_MAX:
            reasons.append(f"trivial cue {cue} AUC {row['worst']} > {TRIVIAL_MAX}")
    return not reasons, reasons


def _frame_labels(store: Path, clip: Any, n: int, cues: dict | None, paths: dict) -> dict:
    """``{"audio", "video"}`` → ``(n,)`` uint8 frame labels of one clip (module docstring)."""
    stored = schemas.read_frame_labels(store, clip.clip_id)
    if stored is not None:
        return {"audio": stored["audio_fake"], "video": stored["video_fake"]}
    video = np.full(n, clip.video_label, dtype=np.uint8)
    if cues is not None:
        record = cues.get(paths.get(clip.clip_id, ""))
        if record is None:
            raise schemas.UserError(f"the given hard.json does not name clip {clip.clip_id}")
        video[:] = 0
        if record.get("manip_frames"):
            start, stop = record["manip_frames"]
            video[start:stop] = 1
    return {"audio": np.full(n, clip.audio_label, dtype=np.uint8), "video": video}


def load_store(store: Path, split: str, cues: dict | None) -> dict[str, Any]:
    """Probe clips of the train and test parts, and every split clip's trivial cues."""
    from benchmarks.ceiling_probes import ProbeClip
    from trainer.data.dataset import split_clips
    from trainer.data.reader import audio_stats

    features = schemas.open_store(store).recipe.features
    manifest = schemas.read_manifest(store).select(["clip_id", "path"]).to_pylist()
    paths = {r["clip_id"]: r["path"] for r in manifest}
    parts = split_clips(store, split)
    probe: dict[str, dict[str, list[Any]]] = {"video": {}, "audio": {}}
    rows = []
    for part, clips in parts.items():
        for modality in probe:
            probe[modality][part] = []
        for clip in clips:
            video, audio = schemas.open_clip(store, clip.clip_id)  # memmaps: read when used
            labels = _frame_labels(store, clip, len(video), cues, paths)
            mean, inv_std = audio_stats(audio)
            normalised = (np.asarray(audio, dtype=np.float32) - mean) * inv_std
            probe["video"][part].append(ProbeClip(video, labels["video"], clip.video_label))
            probe["audio"][part].append(ProbeClip(normalised, labels["audio"], clip.audio_label))
            cue_row = {name: getattr(clip, name) for name in LABELS}
            rows.append({**cue_row, "cues": trivial_cues(video, audio, features)})
    return {"probe": probe, "trivial_rows": rows}


def measure(store: Path, split: str = "default", cues: dict | None = None) -> dict[str, Any]:
    """The ceiling result of ``store`` (its split ``split``): probes, trivial cues, verdict."""
    from benchmarks.ceiling_probes import probe_ceiling

    data = load_store(store, split, cues)
    probes = {
        modality: probe_ceiling(modality, parts["train"], parts["test"])
        for modality, parts in data["probe"].items()
    }
    trivial = trivial_table(data["trivial_rows"])
    valid, reasons = verdict(probes, trivial)
    any_stored = "store" if cues is None else "hard.json"
    return {
        "benchmark": "ceiling",
        "store_fingerprint": schemas.store_fingerprint(store),
        "split": split,
        "frame_labels": any_stored,
        "ceilings": probes,
        "trivial": trivial,
        "clips": len(data["trivial_rows"]),
        "rule": {"ceiling_min": CEILING_MIN, "trivial_max": TRIVIAL_MAX},
        "valid": valid,
        "reasons": reasons,
    }


def find_result(fingerprint: str, results: Path = RESULTS) -> dict | None:
    """A committed ceiling result of the store with this fingerprint, if there is one."""
    for path in sorted(results.glob("ceiling*.json")):
        found = json.loads(path.read_text())
        if found.get("store_fingerprint") == fingerprint:
            return {**found, "from": path.name}
    return None


def require_valid(
    store: Path, split: str = "default", cues: dict | None = None, results: Path = RESULTS
) -> dict[str, Any]:
    """The store's ceiling result (committed or measured now); raises if it is not valid.

    Raises:
        InvalidBenchmark: a ceiling is below ``CEILING_MIN`` or a trivial cue above
            ``TRIVIAL_MAX``: the store cannot carry benchmark results.
    """
    result = find_result(schemas.store_fingerprint(store), results)
    if result is None:
        result = measure(store, split, cues)
    if not result["valid"]:
        raise InvalidBenchmark(
            f"store {store} fails the ceiling rule ({'; '.join(result['reasons'])}); "
            "no result is written on it (see benchmarks/bench_ceiling.py)"
        )
    return result


def read_cues(dataset_root: Path) -> dict | None:
    """A synthetic dataset's ``hard.json`` (clip path → its cues), or None."""
    from pipeline.synth import HARD_NAME

    path = dataset_root / HARD_NAME
    return json.loads(path.read_text()) if path.exists() else None


def main(argv: list[str] | None = None) -> int:
    from benchmarks.bench_train import PROTOCOLS, store_source, synth_args, synthetic_store

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--difficulty", choices=sorted(PROTOCOLS), default="hard")
    parser.add_argument("--store", type=Path, default=None)
    parser.add_argument("--cues", type=Path, default=None, help="a synthetic hard.json")
    parser.add_argument("--split", default="default")
    parser.add_argument("--out", type=Path, default=None)
    parser.add_argument("--earlier", type=Path, default=None, help="a failed earlier result")
    parser.add_argument("--changed", default=None, help="what changed since --earlier")
    args = parser.parse_args(argv)
    if (args.earlier is None) != (args.changed is None):
        parser.error("--earlier and --changed go together")
    protocol = PROTOCOLS[args.difficulty]
    synth = synth_args(protocol, protocol.per_category)
    scratch = Path(tempfile.mkdtemp(prefix="bench-ceiling-"))
    try:
        store, cues = args.store, json.loads(args.cues.read_text()) if args.cues else None
        if store is None:
            store = synthetic_store(scratch, synth)
            cues = read_cues(scratch / "data" / "FakeAVCeleb_v1.2")
        import torch

        result = {
            "difficulty": protocol.difficulty,
            # A given store may hold anything: it is named, with the protocol it claims.
            "store_source": store_source(synth)
            if args.store is None
            else f"given {store} (protocol: {store_source(synth)})",
            **measure(store, args.split, cues),
            "torch": torch.__version__,
            "threads": torch.get_num_threads(),
            "cpus": os.cpu_count(),
        }
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    if args.earlier is not None:
        earlier = json.loads(args.earlier.read_text())
        result["earlier"] = [*earlier.pop("earlier", []), {**earlier, "changed": args.changed}]
    name = f"ceiling_{protocol.difficulty.replace('-', '_')}.json"
    save_result(result, args.out or RESULTS / name)
    return 0 if result["valid"] else 1


if __name__ == "__main__":
    raise SystemExit(main())
