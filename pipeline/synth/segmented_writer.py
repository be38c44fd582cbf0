"""Writing a synthetic dataset in a segment-labelled format: LAV-DF or AV-Deepfake1M.

:func:`make_segmented` plans the sources (:mod:`pipeline.synth.segmented_plan`), names and
labels the clips as the chosen release does (:mod:`pipeline.synth.lavdf`,
:mod:`pipeline.synth.avdeepfake1m`), renders them in the dataset writer's pool of
worker processes inside a hidden folder of ``OUT``, writes the metadata files
(each through ``schemas.atomic_write``: a crash never leaves half a file), then
renames the folder into place, so a failed run leaves no half dataset that looks
finished.
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pipeline.synth import avdeepfake1m, lavdf
from pipeline.synth.segmented import seconds, write_segmented
from pipeline.synth.segmented_plan import check_sizes, plan_sources
from pipeline.synth.writer import render_all
from schemas import atomic_write
from schemas.cli_errors import UserError
from schemas.labels import CATEGORIES, SPLITS

FORMATS = ("fakeavceleb", "lavdf", "avdeepfake1m")
ROOT_NAMES = {"lavdf": lavdf.ROOT_NAME, "avdeepfake1m": avdeepfake1m.ROOT_NAME}


@dataclass
class SegmentedSummary:
    """What :func:`make_segmented` wrote.

    ``counts[split][category]`` counts clips; ``clips`` lists every clip (the
    unlabelled test clips of AV-Deepfake1M included) with its path relative to
    ``root``, split, category, identity, whether its labels are published, the
    path of its real clip (``None`` for real clips), and its audio / video fake
    segments in seconds (``[]`` when none).
    """

    root: Path
    format: str
    counts: dict[str, dict[str, int]]
    n_files: int
    identities: list[str]
    seed: int
    clips: list[dict[str, Any]]

    def to_dict(self) -> dict[str, Any]:
        return {
            "root": str(self.root),
            "format": self.format,
            "counts": {s: dict(c) for s, c in self.counts.items()},
            "n_files": self.n_files,
            "identities": list(self.identities),
            "seed": self.seed,
            "clips": [dict(c) for c in self.clips],
        }


def _check_out(out: Path, root_name: str) -> None:
    if out.exists():
        if not out.is_dir():
            raise UserError(f"{out} exists and is not a directory")
        if any(out.iterdir()):
            what = "already holds a dataset" if (out / root_name).exists() else "is not empty"
            raise UserError(f"{out} {what}; synth only writes into a new or empty directory")
    if shutil.which("ffmpeg") is None:
        raise UserError("ffmpeg is not on PATH; install ffmpeg (with flite) to make a dataset")


def _write_metadata(folder: Path, files: dict[str, Any]) -> None:
    for name, content in files.items():
        text = content if isinstance(content, str) else json.dumps(content, indent=1) + "\n"
        with atomic_write(folder / name, durable=False) as tmp:
            tmp.write_text(text, encoding="utf-8")


def check_segmented_args(
    out: Path, format: str, per_category: int, identities: int | None, workers: int | None
) -> tuple[int, int]:
    """Refuse bad arguments (``UserError``); returns ``(identities, workers)`` with defaults."""
    if format not in ROOT_NAMES:
        raise UserError(f"format must be one of {', '.join(ROOT_NAMES)}, got {format!r}")
    k = max(3, per_category) if identities is None else identities
    n_workers = workers if workers is not None else (os.cpu_count() or 1)
    check_sizes(per_category, k)
    if n_workers < 1:
        raise UserError(f"workers must be >= 1, got {n_workers}")
    _check_out(Path(out), ROOT_NAMES[format])
    return k, n_workers


def make_segmented(
    out: Path,
    *,
    format: str,
    per_category: int = 5,
    identities: int | None = None,
    seed: int = 0,
    workers: int | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> SegmentedSummary:
    """Write a synthetic ``format`` dataset (``lavdf`` / ``avdeepfake1m``) under ``out``.

    ``per_category`` source clips per split, each giving one clip of every
    category, over ``identities`` identities (default ``max(3, per_category)``;
    at least 3, one per split). Raises ``ValueError`` on bad arguments or when
    ``out`` exists and is not an empty directory.
    """
    out = Path(out)
    k, n_workers = check_segmented_args(out, format, per_category, identities, workers)
    root_name = ROOT_NAMES[format]

    people, sources = plan_sources(per_category, k, seed)
    module = lavdf if format == "lavdf" else avdeepfake1m
    entries = module.lay_out(sources, seed)
    specs = [spec for spec, _, _ in entries]
    if format == "lavdf":
        files = lavdf.metadata_files([rec for _, _, rec in entries if rec is not None])
    else:
        files = avdeepfake1m.metadata_files([(spec.rel_path, rec) for spec, _, rec in entries])

    out.mkdir(parents=True, exist_ok=True)
    building = out / f".{root_name}.building"
    try:
        building.mkdir()
        render_all(building, specs, min(n_workers, len(specs)), progress, write_segmented)
        _write_metadata(building, files)
        os.rename(building, out / root_name)
    finally:
        if building.exists():
            shutil.rmtree(building, ignore_errors=True)

    return _summarise(out / root_name, format, entries, [p.id for p in people], seed)


def _summarise(
    root: Path, format: str, entries: list[tuple[Any, Any, Any]], people: list[str], seed: int
) -> SegmentedSummary:
    counts = {s: {c: 0 for c in CATEGORIES} for s in SPLITS}
    real = {id(c.source): spec.rel_path for spec, c, _ in entries if c.category == "RARV"}
    clips = []
    for spec, clip, rec in entries:
        counts[clip.source.split][clip.category] += 1
        audio, video = clip.audio_segment, clip.video_segment
        clips.append(
            {
                "path": spec.rel_path,
                "split": clip.source.split,
                "category": clip.category,
                "identity": clip.source.identity.id,
                "labelled": rec is not None,
                "original": None if clip.category == "RARV" else real[id(clip.source)],
                "audio_fake_segments": [seconds(audio)] if audio else [],
                "video_fake_segments": [seconds(video)] if video else [],
            }
        )
    return SegmentedSummary(root, format, counts, len(entries), people, seed, clips)
