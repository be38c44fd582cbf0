"""Writing a synthetic dataset: the tree of clips, ``meta_data.csv`` and the JSON side files.

:func:`make_dataset` plans the dataset (:mod:`pipeline.synth.plan`, and
:mod:`pipeline.synth.defects` with ``with_defects``), renders the files in a pool
of spawned worker processes (:func:`pipeline.synth.files.write_file`) inside a
hidden folder of ``OUT``, writes the CSV (and ``defects.json`` / ``hard.json``),
then renames the folder into place: a failed run leaves no half dataset that
looks finished.
"""

from __future__ import annotations

import json
import multiprocessing
import os
import shutil
from collections.abc import Callable, Sequence
from concurrent.futures import FIRST_EXCEPTION, ProcessPoolExecutor, wait
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pipeline.datasets.fakeavceleb_tree import CSV_HEADER, CSV_NAME, ROOT_NAME, TYPE_DIRS
from pipeline.synth.defects import plan_defects
from pipeline.synth.files import write_file
from pipeline.synth.plan import DIFFICULTIES, Row, hard_record, plan
from schemas.cli_errors import UserError

DEFECTS_NAME = "defects.json"
HARD_NAME = "hard.json"


@dataclass
class SynthSummary:
    """What ``make_dataset`` wrote. ``counts`` by FakeAVCeleb letter A-D (defects excluded)."""

    root: Path
    counts: dict[str, int]
    n_files: int
    identities: list[str]
    seed: int
    defects: dict[str, str] = field(default_factory=dict)
    difficulty: str = "easy"

    @property
    def csv_path(self) -> Path:
        return self.root / CSV_NAME

    def to_dict(self) -> dict[str, Any]:
        return {
            "root": str(self.root),
            "counts": dict(self.counts),
            "n_files": self.n_files,
            "identities": list(self.identities),
            "seed": self.seed,
            "defects": dict(self.defects),
            "difficulty": self.difficulty,
        }


def _check_args(
    out: Path, per_category: int, identities: int, workers: int, difficulty: str
) -> None:
    if difficulty not in DIFFICULTIES:
        raise UserError(f"difficulty must be one of {', '.join(DIFFICULTIES)}, got {difficulty!r}")
    if per_category < 1:
        raise UserError(f"per_category must be >= 1, got {per_category}")
    if identities < 1:
        raise UserError(f"identities must be >= 1, got {identities}")
    if per_category > identities:
        raise UserError(
            f"per_category ({per_category}) exceeds identities ({identities}): real clips "
            "(A) and their fake-audio twins (B) are one per identity, so there can be at most "
            "as many per category as identities"
        )
    if workers < 1:
        raise UserError(f"workers must be >= 1, got {workers}")
    if out.exists():
        if not out.is_dir():
            raise UserError(f"{out} exists and is not a directory")
        if any(out.iterdir()):
            what = "already holds a dataset" if (out / ROOT_NAME).exists() else "is not empty"
            raise UserError(f"{out} {what}; synth only writes into a new or empty directory")
    if shutil.which("ffmpeg") is None:
        raise UserError("ffmpeg is not on PATH; install ffmpeg (with flite) to make a dataset")


def write_csv(path: Path, rows: list[Row]) -> None:
    """``meta_data.csv`` with the official quirks: trailing-comma header, 10 fields per row."""
    lines = [CSV_HEADER, *(r.csv_line() for r in rows)]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")


def render_all(
    root: Path,
    specs: Sequence[Any],
    workers: int,
    progress: Callable[[int, int], None] | None,
    job: Callable[[Any, str], str] = write_file,
) -> None:
    """Run ``job(spec, root)`` for every spec (``n_frames`` each) in ``workers`` processes."""
    total = len(specs)
    if progress:
        progress(0, total)
    if workers == 1:
        for i, spec in enumerate(specs, 1):
            job(spec, str(root))
            if progress:
                progress(i, total)
        return
    # spawn, not fork: the caller may hold threads (Ray, a test runner) that a
    # forked child would inherit in an undefined state.
    ctx = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(max_workers=workers, mp_context=ctx) as pool:
        # Longest first, so that one long clip does not finish last on its own.
        order = sorted(specs, key=lambda s: -s.n_frames)
        futures = [pool.submit(job, spec, str(root)) for spec in order]
        done_count = 0
        pending = set(futures)
        try:
            while pending:
                done, pending = wait(pending, return_when=FIRST_EXCEPTION)
                for fut in done:
                    fut.result()  # re-raise a worker's error here
                    done_count += 1
                if progress:
                    progress(done_count, total)
        except BaseException:
            # Do not render the rest of a dataset that is going to be discarded.
            pool.shutdown(wait=True, cancel_futures=True)
            raise


def make_dataset(
    out: Path,
    *,
    per_category: int = 5,
    identities: int | None = None,
    seed: int = 0,
    with_defects: bool = False,
    workers: int | None = None,
    progress: Callable[[int, int], None] | None = None,
    difficulty: str = "easy",
) -> SynthSummary:
    """Write a synthetic FakeAVCeleb v1.2 tree under ``out`` and return what was made.

    ``per_category`` clips of each of A, B, C, D over ``identities`` identities
    (default ``per_category``); ``workers`` encoder processes (default: CPU count);
    ``progress(done, total)`` is called as clips finish. Raises ``ValueError`` on
    bad arguments or when ``out`` exists and is not an empty directory.
    ``difficulty="hard"`` (whole-clip fakes) or ``"hard-partial"`` (8-12 manipulated
    frames) makes a subtle-cue setting (module docstring) and writes ``hard.json``
    (clip path -> its hard cues).
    """
    out = Path(out)
    k = per_category if identities is None else identities
    n_workers = workers if workers is not None else (os.cpu_count() or 1)
    _check_args(out, per_category, k, n_workers, difficulty)

    people, planned = plan(per_category, k, seed, difficulty)
    rows = [row for row, _ in planned]
    specs = [spec for _, spec in planned]
    defects: dict[str, str] = {}
    if with_defects:
        defect_plan, defects = plan_defects(seed)
        rows += [row for row, _ in defect_plan]
        specs += [spec for _, spec in defect_plan if spec is not None]

    out.mkdir(parents=True, exist_ok=True)
    building = out / f".{ROOT_NAME}.building"
    try:
        building.mkdir()
        render_all(building, specs, min(n_workers, len(specs)), progress)
        write_csv(building / CSV_NAME, rows)
        if with_defects:
            text = json.dumps(defects, indent=2, sort_keys=True, ensure_ascii=False)
            (building / DEFECTS_NAME).write_text(text + "\n", encoding="utf-8")
        if difficulty != "easy":
            cues = {spec.rel_path: hard_record(spec) for _, spec in planned}
            text = json.dumps(cues, indent=2, sort_keys=True)
            (building / HARD_NAME).write_text(text + "\n", encoding="utf-8")
        os.rename(building, out / ROOT_NAME)
    finally:
        if building.exists():
            shutil.rmtree(building, ignore_errors=True)

    counts = {letter: sum(r.category == letter for r, _ in planned) for letter in TYPE_DIRS}
    return SynthSummary(
        root=out / ROOT_NAME,
        counts=counts,
        n_files=len(specs),
        identities=[p.id for p in people],  # sources first, then donor-only identities
        seed=seed,
        defects=defects,
        difficulty=difficulty,
    )
