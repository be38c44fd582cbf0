"""Ingest throughput, as ratios measured in one run on the same synthetic files.

    python -m benchmarks.bench_ingest [--per-category 8] [--compare-clips 8] [--data DIR]
        [--recipe default|mouth|bare]

Times the recipe ``mscct-pipeline ingest`` uses by default (``--recipe default``:
:func:`pipeline.ingest.recipe.ingest_recipe`, the function the CLI calls, so landmarks
are on where the 68-point predictor is installed); ``mouth`` adds the mouth stream
(``--streams face,mouth``), ``bare`` is ``Recipe()`` (no landmarks), what this benchmark
timed before. The JSON records the recipe (``recipe``, ``recipe_name``).

Measures, per core, on the same ``--compare-clips`` clips (taken round-robin over
the four categories, so every baseline sees the same mix):

- ``decode_only``: ffmpeg decoding each file to raw RGB at 25 fps and nothing else
  (the bound no pipeline can beat);
- ``naive``: the peer recipe (``benchmarks/naive_reference.py``: a ``.wav`` file,
  dlib HOG with upsampling on every frame, per-frame Python crops);
- ``pipeline``: this project's per-clip work (``preprocess_clip``) in one process,
  with that process's peak RSS (what one Ray worker holds); ``pipeline_in_process``
  the same with ``in_process=True`` (PyAV decodes, no ffmpeg process per clip);
- ``profile``: CPU seconds per clip and per stage of both (``benchmarks.ingest_profile``:
  probe, process start-up, video and audio decode, face detection, shot cuts, the
  speaking-face choice, tracking, cropping, landmarks, mouth crops, head pose, audio
  features, speech presence, commit; medians of 3 alternating repeats), and the face-box jitter
  (static faces) and detection rate of both;
- ``fsync``: what durable commits cost. Each clip's tensors are committed with
  ``write_clip`` with and without fsync (alternately, median of 3 each) and the
  difference is set against the whole per-clip cost (``preprocess_clip`` + commit):
  clips per CPU second and per wall second with and without, and the overhead in
  percent (target < 5 %). The fsyncs wait for the disk rather than use the CPU, so
  the wall figure is the one that can move;
- ``packing``: the same clips' durable commits appended to a packed store's shard
  instead (``schemas.packed_commit.write_packed_clip``, alternated with the others):
  clips per CPU and wall second, packed over per clip (issue 31's target: 0.95 or more);
- ``ray_1`` / ``ray_2``: the real ``run_ingest`` with 1 and 2 Ray workers, everything
  pinned to 1 and 2 cores (Ray started and its workers warmed up first, so start-up is
  not counted), alternated :data:`RAY_REPEATS` times (a run of 32 clips lasts seconds,
  so one run's noise moves the ratio); the medians are compared.

Targets (DESIGN.md): pipeline >= 5x naive, >= 50 % of decode_only, ray_2 >= 1.8x ray_1,
peak RSS per worker < 1 GiB, fsync overhead < 5 %. Results go to
``benchmarks/results/ingest.json``. ``--store-dir`` puts the fsync measurement's store
on the file system to be measured (default: the temporary directory).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # run as a script: make the repository importable
    sys.path.insert(0, str(ROOT))

import schemas  # noqa: E402
from benchmarks.output import save_result  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results"
RAY_REPEATS = 3  # alternated runs of each worker count for the scaling ratio
RECIPES = ("default", "mouth", "bare")  # --recipe: see the module docstring


def bench_recipe(name: str = "default") -> schemas.Recipe:
    """The recipe timed under ``--recipe name`` (one of :data:`RECIPES`)."""
    from pipeline.ingest.recipe import ingest_recipe

    if name == "bare":
        return schemas.Recipe()
    if name == "mouth":
        return ingest_recipe(streams=("face", "mouth"))
    if name != "default":
        raise ValueError(f"recipe must be one of {RECIPES}, not {name!r}")
    return ingest_recipe()


def _rounded(values: list[float]) -> list[float]:
    return [round(v, 3) for v in values]


def clip_paths(root: Path, limit: int | None = None) -> list[Path]:
    """Source files of ``root``; with ``limit``, the first ones round-robin over categories."""
    from pipeline.datasets.fakeavceleb import scan_dataset
    from pipeline.ingest.selection import select_clips

    scan = scan_dataset(root)
    return [scan.root / c.path for c in select_clips(scan, (), limit)]


def cpu_seconds() -> float:
    """User + system CPU time of this process and its finished children (ffmpeg)."""
    own, kids = (
        resource.getrusage(resource.RUSAGE_SELF),
        resource.getrusage(resource.RUSAGE_CHILDREN),
    )
    return own.ru_utime + own.ru_stime + kids.ru_utime + kids.ru_stime


def time_each(fn, paths: list[Path]) -> dict[str, float]:  # type: ignore[no-untyped-def]
    """Clips per wall second and per CPU second of ``fn`` applied to every path in turn.

    Per CPU second is the honest "per core" figure: ffmpeg runs in its own process and
    can overlap with Python on another core, which a wall clock would credit for free.
    """
    wall, cpu = time.perf_counter(), cpu_seconds()
    for path in paths:
        fn(path)
    wall, cpu = time.perf_counter() - wall, cpu_seconds() - cpu
    return {"wall": len(paths) / wall, "cpu": len(paths) / cpu}


_WORKER = """
import json, resource, sys
from pathlib import Path
from benchmarks.bench_ingest import time_each
from pipeline.clip.transform import preprocess_clip
from schemas import Recipe
paths, recipe = [Path(p) for p in json.loads(sys.argv[1])], Recipe.from_dict(json.loads(sys.argv[2]))
in_process = sys.argv[3:] == ["in_process"]
preprocess_clip(paths[0], recipe, in_process=in_process)  # warm imports and the detector
rates = time_each(lambda p: preprocess_clip(p, recipe, in_process=in_process).pose, paths)
rates["peak_rss_mib"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
print(json.dumps(rates))
"""


_FSYNC_WORKER = """
import json, statistics, sys, time
from pathlib import Path
from benchmarks.bench_ingest import cpu_seconds
from pipeline.clip.transform import preprocess_clip
import schemas
paths, store = [Path(p) for p in json.loads(sys.argv[1])], Path(sys.argv[2])
recipe = schemas.Recipe.from_dict(json.loads(sys.argv[3]))
from schemas.packed_commit import write_packed_clip
schemas.create_store(store, recipe)
packed = store.with_name(store.name + "_packed")
schemas.create_store(packed, recipe, packed=True)
preprocess_clip(paths[0], recipe)  # warm imports and the detector
totals = {"pre": [0.0, 0.0], True: [0.0, 0.0], False: [0.0, 0.0], "packed": [0.0, 0.0]}
for i, path in enumerate(paths):
    wall, cpu = time.perf_counter(), cpu_seconds()
    tensors = preprocess_clip(path, recipe)
    extra = tensors.extra_arrays()  # the head pose is computed here
    totals["pre"][0] += time.perf_counter() - wall
    totals["pre"][1] += cpu_seconds() - cpu
    runs = {True: [], False: [], "packed": []}
    for _ in range(3):
        for durable in (True, False, "packed"):
            wall, cpu = time.perf_counter(), cpu_seconds()
            if durable == "packed":
                write_packed_clip(packed, 1, f"c{i}", tensors.face, tensors.audio, {}, recipe,
                                  extra=extra, durable=True)
            else:
                schemas.write_clip(store, f"c{i}", tensors.face, tensors.audio, {}, recipe,
                                   extra=extra, durable=durable)
            runs[durable].append((time.perf_counter() - wall, cpu_seconds() - cpu))
    for durable, times in runs.items():
        totals[durable][0] += statistics.median(t[0] for t in times)
        totals[durable][1] += statistics.median(t[1] for t in times)
print(json.dumps({str(k): v for k, v in totals.items()}))
"""


def _recipe_json(recipe: schemas.Recipe) -> str:
    return json.dumps(recipe.to_dict())


def fsync_cost(paths: list[Path], store: Path, recipe: schemas.Recipe) -> dict:
    """Clips per wall and CPU second with and without fsync'ed commits, and the overhead."""
    out = subprocess.run(
        [
            sys.executable,
            "-c",
            _FSYNC_WORKER,
            json.dumps([str(p) for p in paths]),
            str(store),
            _recipe_json(recipe),
        ],
        capture_output=True,
        text=True,
        check=True,
        cwd=ROOT,
    )
    totals = json.loads(out.stdout.strip().splitlines()[-1])
    result: dict = {}
    for i, unit in enumerate(("wall", "cpu")):
        with_sync = totals["pre"][i] + totals["True"][i]
        without = totals["pre"][i] + totals["False"][i]
        result[unit] = {
            "clips_per_s_with_fsync": round(len(paths) / with_sync, 3),
            "clips_per_s_without_fsync": round(len(paths) / without, 3),
            "overhead_percent": round(100 * (with_sync - without) / without, 2),
        }
        packed = totals["pre"][i] + totals["packed"][i]
        result[f"packing_{unit}"] = {
            "clips_per_s_packed": round(len(paths) / packed, 3),
            "clips_per_s_per_clip": round(len(paths) / with_sync, 3),
            "packed_over_per_clip": round(with_sync / packed, 3),
        }
    return result


def stage_profile(paths: list[Path], store: Path, recipe: schemas.Recipe, repeats: int = 3) -> dict:
    """CPU seconds per clip and stage, process against in-process decode (ingest_profile)."""
    out = subprocess.run(
        [sys.executable, "-m", "benchmarks.ingest_profile", json.dumps([str(p) for p in paths]),
         str(store), "--repeats", str(repeats), "--recipe", _recipe_json(recipe)],
        capture_output=True, text=True, cwd=ROOT,
    )  # fmt: skip
    if out.returncode != 0:
        raise RuntimeError(f"ingest_profile failed:\n{out.stderr[-3000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def pipeline_in_one_process(
    paths: list[Path], recipe: schemas.Recipe, in_process: bool = False
) -> dict:
    """Clips per wall and CPU second of ``preprocess_clip`` and the head pose, as one
    worker runs them, in a fresh process; its peak RSS."""
    mode = ["in_process"] if in_process else []
    out = subprocess.run(
        [
            sys.executable,
            "-c",
            _WORKER,
            json.dumps([str(p) for p in paths]),
            _recipe_json(recipe),
            *mode,
        ],
        capture_output=True,
        text=True,
        check=True,
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


def ray_ingest(
    root: Path, workers: int, work: Path, repeat: int = 0, recipe: dict | None = None
) -> float:
    """Clips/s of ``run_ingest`` with ``workers`` Ray workers, warm, in this process, into
    stores of its own (``repeat`` tells runs apart: a second run into one store resumes),
    under ``recipe`` (a recipe's ``to_dict``; default ``Recipe()``)."""
    import ray

    from pipeline.ingest.driver import IngestOptions, run_ingest

    ray.init(num_cpus=workers, include_dashboard=False, logging_level="ERROR", log_to_driver=False)
    try:
        name = f"{workers}_{repeat}"
        made = schemas.Recipe() if recipe is None else schemas.Recipe.from_dict(recipe)
        warm = IngestOptions(
            store=work / f"warm{name}", recipe=made, workers=workers, limit=2 * workers
        )
        run_ingest(root, warm)
        options = IngestOptions(store=work / f"store{name}", recipe=made, workers=workers)
        result = run_ingest(root, options)
        assert result.failed == 0, "benchmark clips must all ingest"
        return result.submitted / result.elapsed_s
    finally:
        ray.shutdown()


def ray_ingest_on_cores(
    root: Path, workers: int, work: Path, recipe: schemas.Recipe, repeat: int = 0
) -> float:
    """``ray_ingest`` in a subprocess pinned to ``workers`` cores (``taskset``).

    Without pinning, one worker already spreads over two cores (its ffmpeg decodes
    while Python detects faces), so "1 worker" would not mean "1 core". Pinning the
    driver, Ray and the workers to N cores measures scaling with cores.
    """
    cores = ",".join(str(c) for c in sorted(os.sched_getaffinity(0))[:workers])
    code = (
        "import sys; from pathlib import Path; from benchmarks.bench_ingest import ray_ingest; "
        f"print(ray_ingest(Path({str(root)!r}), {workers}, Path({str(work)!r}), {repeat}, "
        f"{recipe.to_dict()!r}))"
    )
    out = subprocess.run(
        ["taskset", "-c", cores, sys.executable, "-c", code],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    return float(out.strip().splitlines()[-1])


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--per-category", type=int, default=8)
    parser.add_argument(
        "--compare-clips",
        type=int,
        default=8,
        help="clips that decode_only, naive, pipeline and fsync are all timed on (naive is slow)",
    )
    parser.add_argument("--data", type=Path, help="an existing dataset instead of a new one")
    parser.add_argument("--store-dir", type=Path, help="where the fsync measurement's store goes")
    parser.add_argument("--out", type=Path, default=RESULTS / "ingest.json")
    parser.add_argument(
        "--recipe",
        choices=RECIPES,
        default="default",
        help="default: what mscct-pipeline ingest uses by default; mouth: with the mouth "
        "stream; bare: Recipe() (no landmarks)",
    )
    args = parser.parse_args(argv)
    recipe = bench_recipe(args.recipe)

    from benchmarks.naive_reference import decode_only, naive_process
    from pipeline.synth import make_dataset

    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        root = args.data or make_dataset(work / "data", per_category=args.per_category).root
        all_paths = clip_paths(root)
        paths = clip_paths(root, args.compare_clips)
        decode_rate = time_each(decode_only, paths)
        naive_dir = work / "naive"
        naive_dir.mkdir()
        naive_rate = time_each(lambda p: naive_process(p, naive_dir), paths)
        single = pipeline_in_one_process(paths, recipe)
        inside = pipeline_in_one_process(paths, recipe, in_process=True)
        profile = stage_profile(paths, work / "profile_store", recipe)
        with tempfile.TemporaryDirectory(dir=args.store_dir) as fsync_dir:
            durability = fsync_cost(paths, Path(fsync_dir) / "store", recipe)
        scaling: dict[int, list[float]] = {1: [], 2: []}
        for repeat in range(RAY_REPEATS):  # alternated: a change of load hits both
            for workers in scaling:
                scaling[workers].append(ray_ingest_on_cores(root, workers, work, recipe, repeat))
        ray_1, ray_2 = (statistics.median(scaling[workers]) for workers in (1, 2))

    def rounded(rates: dict[str, float]) -> dict[str, float]:
        return {k: round(v, 3) for k, v in rates.items() if k in ("wall", "cpu")}

    result = {
        "recipe_name": args.recipe,
        "recipe": recipe.to_dict(),
        "clips": len(all_paths),
        "compared_clips": len(paths),
        "cores": os.cpu_count(),
        "clips_per_s": {
            "decode_only": rounded(decode_rate),
            "naive": rounded(naive_rate),
            "pipeline": rounded(single),
            "pipeline_in_process": rounded(inside),
            "ray_1_worker": {"wall": round(ray_1, 3), "repeats": _rounded(scaling[1])},
            "ray_2_workers": {"wall": round(ray_2, 3), "repeats": _rounded(scaling[2])},
        },
        "ratios_per_cpu_second": {
            "pipeline_vs_naive": round(single["cpu"] / naive_rate["cpu"], 2),
            "pipeline_vs_decode_only": round(single["cpu"] / decode_rate["cpu"], 3),
            "pipeline_in_process_vs_pipeline": round(inside["cpu"] / single["cpu"], 3),
        },
        "ratios_wall": {
            "pipeline_vs_naive": round(single["wall"] / naive_rate["wall"], 2),
            "pipeline_vs_decode_only": round(single["wall"] / decode_rate["wall"], 3),
            "scaling_2_vs_1_workers": round(ray_2 / ray_1, 2),
        },
        "targets": {
            "pipeline_vs_naive": ">= 5",
            "pipeline_vs_decode_only": ">= 0.5",
            "scaling_2_vs_1_workers": ">= 1.8",
            "peak_rss_per_worker_mib": "< 1024",
            "fsync_overhead_percent": "< 5",
            "packing_cpu.packed_over_per_clip": ">= 0.95",
            "pipeline_in_process_vs_pipeline": ">= 1.5",
        },
        "profile": profile,
        "fsync": durability,
        "peak_rss_per_worker_mib": round(single["peak_rss_mib"], 1),
        "driver_peak_rss_mib": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
    }
    save_result(result, args.out)
    return result


if __name__ == "__main__":
    main()
