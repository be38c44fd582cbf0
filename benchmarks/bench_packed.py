"""Packed stores (format 4) against per-clip stores (format 3): files and window reads.

Run ``python -m benchmarks.bench_packed`` (about a minute) or with ``--quick``
(seconds, for the test); ``--clips N --shard-mib M`` change the store's size and the
shard target (``--clips 1000 --shard-mib 1024``, the ingest's default shard size, writes
about 4 GB per store and takes minutes). Writes ``benchmarks/results/packed.json`` (``--out`` to write
elsewhere) and prints it.

The same clips (``bench_loader``'s drifting face, its crop size, random audio) are
written four times: a per-clip store (``schemas.write_clip``) and a packed one
(:class:`schemas.packed_write.ShardWriter`, the shard size of ``--shard-mib``), each in
the ``raw`` and the ``zstd`` layout. Reported:

- ``files_per_clip``: every file and folder of each store (what counts against an
  inode quota), divided by its clips; issue 31's target for packed stores is 0.05 or
  less, which needs shards of many clips (the figure depends on clip size over shard
  size: this run's clips are small, so a shard holds many).
- ``windows_per_s``: training windows read by the trainer's reader
  (``trainer.data.reader.ClipReader.window``: one ``pread`` per array for raw, the
  chunks a window touches decoded for zstd), after every clip's first read, the same
  ``(clip, start)`` sequence for all four stores, interleaved in rounds
  (``bench_loader.measure``: the median round); and the ratios packed / per-clip for
  each layout (issue 31's target: 0.9 or more).

``--remote`` (``benchmarks/results/packed_remote.json``) uploads the two packed stores
to moto's S3 server on 127.0.0.1, started in this process, and reports the trainer
reader's windows per second by URL beside the local packed store, and the requests
per window once every clip is known (the server shares the CPU with the reader: the
figures bound a local round trip, not a bucket's).

Page cache warm, one process, CPU cost only. Ingest throughput with packing and the
million-clip store are not measured here (``bench_ingest``, ``bench_scale``).
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import tempfile
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import schemas  # noqa: E402
from benchmarks.bench_loader import face_frames, measure, warm_page_cache  # noqa: E402
from benchmarks.output import save_result  # noqa: E402
from schemas import manifest_store as ms  # noqa: E402
from schemas.packed_write import ShardWriter  # noqa: E402
from trainer.data.reader import ClipReader  # noqa: E402


@dataclass(frozen=True)
class Settings:
    clips: int
    frames: int
    window: int
    crop: int
    shard_mib: float
    windows: int
    budget_s: float


DEFAULT = Settings(
    clips=200, frames=100, window=16, crop=112, shard_mib=64, windows=2000, budget_s=6
)
QUICK = Settings(clips=12, frames=30, window=8, crop=32, shard_mib=0.2, windows=60, budget_s=0.3)


def _row(clip_id: str, frames: int, recipe: schemas.Recipe) -> dict:
    """A manifest row good enough for the readers (ok, labelled, real)."""
    return {
        "clip_id": clip_id, "path": f"{clip_id}.mp4", "category": "RARV", "audio_label": 0,
        "video_label": 0, "label": 0, "identity": "id0", "method": "real",
        "num_frames": frames, "source_fingerprint": "f", "recipe_hash": recipe.hash(),
        "status": schemas.STATUS_OK, "error": "", "labelled": True,
    }  # fmt: skip


def build(path: Path, settings: Settings, layout: str, *, packed: bool) -> list[str]:
    """A store of ``settings.clips`` clips, per-clip or packed; returns the clip ids."""
    recipe = schemas.Recipe(crop_size=settings.crop, layout=layout, landmarks=False)
    target = int(settings.shard_mib * (1 << 20))
    schemas.create_store(path, recipe, packed=packed, shard_target_bytes=target if packed else None)
    writer = ShardWriter(path, recipe, 1, target, durable=False) if packed else None
    rng = np.random.default_rng(0)
    rows, ids = [], []
    for number in range(settings.clips):
        clip_id = f"c{number:05d}"
        video = face_frames(number, settings.frames, settings.crop)
        audio = rng.normal(size=(settings.frames, schemas.AUDIO_CHANNELS)).astype(np.float32)
        row = _row(clip_id, settings.frames, recipe)
        if writer is None:
            schemas.write_clip(path, clip_id, video, audio, row, recipe, durable=False)
        else:
            row = writer.append({"video": video, "audio": audio}, row)
        rows.append(row)
        ids.append(clip_id)
    if writer is not None:
        writer.close()
    ms.write_fragment(path, schemas.rows_to_table(rows, schemas.MANIFEST_SCHEMA), 1, durable=False)
    return ids


def files_per_clip(path: Path, clips: int) -> dict[str, float]:
    """Files and folders below the store, in all and per clip."""
    entries = sum(len(dirs) + len(files) for _, dirs, files in os.walk(path))
    return {"entries": entries, "files_per_clip": entries / clips}


def run(settings: Settings, work: Path) -> dict:
    rng = np.random.default_rng(1)
    stores, readers = {}, {}
    ids: list[str] = []
    for layout in ("raw", "zstd"):
        for packed in (False, True):
            name = f"{'packed' if packed else 'per_clip'}_{layout}"
            stores[name] = work / name
            ids = build(stores[name], settings, layout, packed=packed)
            warm_page_cache(stores[name])
            recipe = schemas.open_store(stores[name]).recipe
            readers[name] = ClipReader(stores[name], recipe, "video")
            for clip_id in ids:  # every clip seen and open, as after a first epoch
                readers[name].window(clip_id, settings.frames, 0, settings.window)
    last = settings.frames - settings.window
    windows = [
        (0, i, int(rng.integers(len(ids))), int(rng.integers(last + 1)))
        for i in range(settings.windows)
    ]

    def method(name: str):
        reader = readers[name]
        return lambda w: reader.window(ids[w[2]], settings.frames, w[3], w[3] + settings.window)

    rates = measure({name: method(name) for name in stores}, windows, settings.budget_s, {})
    wps = {name: rates[name]["windows_per_s"] for name in stores}
    ratios = {
        "packed_raw / per_clip_raw": wps["packed_raw"] / wps["per_clip_raw"],
        "packed_zstd / per_clip_zstd": wps["packed_zstd"] / wps["per_clip_zstd"],
    }
    files = {name: files_per_clip(path, settings.clips) for name, path in stores.items()}
    return {
        "settings": vars(settings),
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version()},
        "windows": rates,
        "ratios": ratios,
        "files": files,
        "targets": {
            "packed read >= 0.9 x per-clip (raw)": ratios["packed_raw / per_clip_raw"] >= 0.9,
            "packed read >= 0.9 x per-clip (zstd)": ratios["packed_zstd / per_clip_zstd"] >= 0.9,
            "packed files per clip <= 0.05": files["packed_raw"]["files_per_clip"] <= 0.05,
        },
    }


def run_remote(settings: Settings, work: Path) -> dict:
    """Windows per second and requests per window of packed stores read by URL."""

    from benchmarks.local_s3 import local_s3

    rates: dict[str, dict] = {}
    per_window: dict[str, float] = {}
    rng = np.random.default_rng(1)
    last = settings.frames - settings.window
    with local_s3() as s3:
        fs, requests = s3.fs, s3.requests
        for layout in ("raw", "zstd"):
            ids = build(work / layout, settings, layout, packed=True)
            fs.put(f"{work / layout}/", f"bench/{layout}", recursive=True)
            recipe = schemas.open_store(work / layout).recipe
            readers = {
                f"packed_{layout}_local": ClipReader(work / layout, recipe, "video"),
                f"packed_{layout}_s3_moto": ClipReader(f"s3://bench/{layout}", recipe, "video"),
            }
            windows = [
                (0, i, int(rng.integers(len(ids))), int(rng.integers(last + 1)))
                for i in range(settings.windows)
            ]

            def method(reader: ClipReader, ids: list[str] = ids):
                frames, window = settings.frames, settings.window
                return lambda item: reader.window(ids[item[2]], frames, item[3], item[3] + window)

            for reader in readers.values():
                for clip_id in ids:  # every clip known
                    reader.window(clip_id, settings.frames, 0, settings.window)
            before = len(requests)
            counted = windows[: min(64, len(windows))]
            for w in counted:
                method(readers[f"packed_{layout}_s3_moto"])(w)
            per_window[layout] = (len(requests) - before) / len(counted)
            rates |= measure(
                {k: method(r) for k, r in readers.items()}, windows, settings.budget_s, {}
            )
    return {
        "settings": vars(settings),
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version()},
        "windows": rates,
        "requests_per_window": per_window,
    }


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="tiny sizes, seconds")
    parser.add_argument("--remote", action="store_true", help="read through a local S3 server")
    parser.add_argument("--out", type=Path, help="default: benchmarks/results/packed[_remote].json")
    parser.add_argument("--clips", type=int, help=f"clips per store (default {DEFAULT.clips})")
    parser.add_argument(
        "--shard-mib", type=float, help=f"shard target size (default {DEFAULT.shard_mib:g} MiB)"
    )
    args = parser.parse_args(argv)
    settings = QUICK if args.quick else DEFAULT
    if args.clips is not None or args.shard_mib is not None:  # fewer or larger shards
        settings = replace(
            settings,
            clips=args.clips if args.clips is not None else settings.clips,
            shard_mib=args.shard_mib if args.shard_mib is not None else settings.shard_mib,
        )
        if settings.clips < 1 or settings.shard_mib <= 0:
            parser.error("--clips must be at least 1 and --shard-mib above 0")
    name = "packed_remote.json" if args.remote else "packed.json"
    with tempfile.TemporaryDirectory(prefix="bench_packed_") as tmp:
        result = (run_remote if args.remote else run)(settings, Path(tmp))
    save_result(result, args.out or ROOT / "benchmarks" / "results" / name)
    return result


if __name__ == "__main__":
    main()
