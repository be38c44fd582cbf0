"""Bookkeeping at scale: what a committed clip costs as the store grows.

    python -m benchmarks.bench_scale           # 1k and 10k clips (quick, `make bench`)
    python -m benchmarks.bench_scale --full    # also 100k and 1M
    python -m benchmarks.bench_scale --sizes 1000,100000
    python -m benchmarks.bench_scale --full --jobs 2 --work /big/disk   # grow in 2 processes
    python -m benchmarks.bench_scale --full --packed --out benchmarks/results/scale_packed.json

One store grows through the sizes. Its clips are real commits (``schemas.write_clip``
of one tiny clip's tensors, 2 frames of 16x16, under a new clip id each time, with
``durable=False``: the benchmark measures bookkeeping, not fsync) and every clip has
its own source path (a hard link of one small file), so the resume check stats a real
file per clip. ``--jobs N`` grows the store between sizes in N processes, each committing
its own ids (as ingest tasks do; the measured commits below stay in this one); a million
tiny clips take about 14 million inodes and 20 GB, hence ``--work`` (where the store and
its sources are made). At each size it measures, side by side:

- ``bookkeeping``: seconds per committed clip of ``ManifestBook.add`` plus a flush every
  ``FLUSH_EVERY`` clips (the ingest flushes every 2 s: at 25 clips/s, 50 clips), for
  ``MEASURED`` more commits; next to it the whole-file rewrite older stores use (the
  full table rebuilt and rewritten at every flush) on the same rows. ``commit_s`` is
  ``write_clip``'s own time per clip, for scale.
- ``read_manifest``: seconds and peak RSS (``VmHWM``) of a fresh interpreter reading it.
- ``resume``: a fresh interpreter deciding, for every clip, that nothing is to do
  (``ManifestBook`` from the manifest + ``is_current`` per clip: one ``stat``, one
  ``isdir``); the dataset scan itself is measured by ``bench_scan``.

``--packed`` grows a packed store (format 4) instead: each grower process appends its
clips to shards of its own (``schemas.packed_commit.write_packed_clip``), sealed when
the growth to each size ends, as an ingest's driver seals its workers' shards. At every
size ``store_files`` counts the store's files and folders (what an inode quota counts)
and its bytes, per clip.

Further measures register in :data:`MEASURES` (name -> function of the context); a
``benchmarks/scale_driver.py`` with its own ``MEASURES`` is added when present.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from itertools import repeat
from multiprocessing import get_context
from pathlib import Path
from typing import Any

import numpy as np

import schemas
from benchmarks.output import save_result
from pipeline.datasets import ClipSource
from pipeline.ingest.driver import base_record
from pipeline.ingest.manifest_book import ManifestBook
from schemas.packed_commit import write_packed_clip
from schemas.packed_write import recover_shards

RESULT = Path(__file__).parent / "results" / "scale.json"
QUICK_SIZES = (1_000, 10_000)
FULL_SIZES = (1_000, 10_000, 100_000, 1_000_000)
RECIPE = schemas.Recipe(crop_size=16)
RUN = 1  # the packed store's one run: grower processes differ by their writer ids
MEASURED = 500  # commits measured at each size
FLUSH_EVERY = 50  # clips per flush: the ingest's 2 s at 25 clips/s
LINKS_PER_FILE = 50_000  # hard links per source file (ext4 allows 65,000)
GROW_BATCH = 2_000  # clips per batch a grower process commits


@dataclass
class Context:
    """What a measure gets: the store, its size now, the source tree and a scratch folder."""

    store: Path
    size: int
    sources: Path
    scratch: Path


#: name -> measure(context) -> JSON-able dict, run at every size.
MEASURES: dict[str, Callable[[Context], dict[str, Any]]] = {}


class Grower:
    """Commits tiny real clips into the store, one new clip id each (clip number ``count``
    onwards)."""

    def __init__(self, store: Path, sources: Path, count: int = 0, packed: bool = False) -> None:
        self.store, self.sources, self.packed = store, sources, packed
        self.video = np.zeros((2, 16, 16, 3), np.uint8)
        self.audio = np.zeros((2, 104), np.float32)
        self.count = count
        self._made: set[Path] = set()  # origins known to exist: no stat per commit

    def origin(self, number: int) -> Path:
        """The file clip ``number``'s source links to: a file takes 65,000 links."""
        origin = self.sources / f"origin{number // LINKS_PER_FILE}.mp4"
        if origin not in self._made:
            if not origin.exists():
                origin.write_bytes(bytes(4096))
            self._made.add(origin)
        return origin

    def commit(self) -> dict[str, Any]:
        """One clip written and committed; returns its record (as a task would)."""
        clip_id = f"clip{self.count:07d}"
        path = f"v/{clip_id[-3:]}/{clip_id}.mp4"
        source = self.sources / path
        source.parent.mkdir(parents=True, exist_ok=True)
        os.link(self.origin(self.count), source)
        info = source.stat()
        record = base_record(_clip(clip_id, path), "f" * 16, RECIPE.hash())
        record.update(
            status="ok", num_frames=2, source_size=info.st_size, source_mtime_ns=info.st_mtime_ns
        )
        if self.packed:
            record = write_packed_clip(
                self.store, RUN, clip_id, self.video, self.audio, record, RECIPE, durable=False
            )
        else:
            schemas.write_clip(
                self.store, clip_id, self.video, self.audio, record, RECIPE, durable=False
            )
        self.count += 1
        return record

    def grow_to(self, size: int, jobs: int = 1) -> None:
        """Commit clips up to ``size``, in ``jobs`` processes; this one keeps the book."""
        book = ManifestBook(self.store, RECIPE.hash(), durable=False)
        for number in range(self.count, size, LINKS_PER_FILE):  # made before any worker links
            self.origin(number)
        starts = range(self.count, size, GROW_BATCH)
        stops = [min(start + GROW_BATCH, size) for start in starts]
        pool = ProcessPoolExecutor(jobs, mp_context=get_context("spawn")) if jobs > 1 else None
        try:
            mapper = pool.map if pool else map
            for records in mapper(_commit_range, repeat(self.store), repeat(self.sources),
                                  starts, stops, repeat(self.packed)):  # fmt: skip
                for record in records:
                    book.add(record)
                book.flush()  # a fragment per batch
        finally:
            if pool:
                pool.shutdown(cancel_futures=True)
        self.count = max(self.count, size)
        if self.packed:  # the growers' open shards: sealed, as an ingest's driver does
            recover_shards(self.store, RECIPE, durable=False)
        book.flush(final=True)


def _commit_range(
    store: Path, sources: Path, start: int, stop: int, packed: bool = False
) -> list[dict[str, Any]]:
    """Commit clips ``start`` to ``stop - 1`` (in a grower process); their records."""
    grower = Grower(store, sources, start, packed)
    return [grower.commit() for _ in range(start, stop)]


def _clip(clip_id: str, path: str) -> ClipSource:
    return ClipSource(clip_id, path, "RARV", "RealVideo-RealAudio", "id00001", "real")


def bookkeeping(ctx: Context, grower: Grower) -> dict[str, Any]:
    """Per committed clip: the book's cost, the whole-file rewrite's, and write_clip's."""
    book = ManifestBook(ctx.store, RECIPE.hash(), durable=False)
    old_rows = schemas.read_manifest(ctx.store).to_pylist()  # what the old book held
    rewrite_store = ctx.scratch / "rewrite"
    schemas.create_store(rewrite_store, RECIPE)
    commit_s = book_s = rewrite_s = 0.0
    for i in range(MEASURED):
        t0 = time.perf_counter()
        record = grower.commit()
        t1 = time.perf_counter()
        book.add(record)
        flush = (i + 1) % FLUSH_EVERY == 0
        if flush:
            book.flush()
        t2 = time.perf_counter()
        old_rows.append(record)
        if flush:  # the old code path: the full table rebuilt and rewritten
            table = schemas.rows_to_table(old_rows, schemas.MANIFEST_SCHEMA)
            schemas.write_manifest(rewrite_store, table, durable=False)
        t3 = time.perf_counter()
        commit_s, book_s, rewrite_s = commit_s + t1 - t0, book_s + t2 - t1, rewrite_s + t3 - t2
    t4 = time.perf_counter()
    book.flush(final=True)  # the compaction at the end of an ingest
    compact_s = time.perf_counter() - t4
    shutil.rmtree(rewrite_store)
    return {
        "commit_s_per_clip": commit_s / MEASURED,
        "manifest_s_per_clip": book_s / MEASURED,
        "rewrite_s_per_clip": rewrite_s / MEASURED,
        "bookkeeping_s_per_clip": (commit_s + book_s) / MEASURED,
        "final_compaction_s": compact_s,
    }


_READ = """
import sys, time, schemas
t = time.perf_counter(); n = schemas.read_manifest(sys.argv[1]).num_rows
print(n, time.perf_counter() - t)
"""

_RESUME = """
import sys, time
from pathlib import Path
import schemas
from benchmarks.bench_scale import RECIPE, _clip
from pipeline.ingest.manifest_book import ManifestBook
store, sources = Path(sys.argv[1]), Path(sys.argv[2])
t = time.perf_counter()
rows = schemas.read_manifest(store).select(["clip_id", "path"]).to_pylist()
book = ManifestBook(store, RECIPE.hash(), durable=False)
todo = sum(not book.is_current(_clip(r["clip_id"], r["path"]), sources / r["path"]) for r in rows)
print(len(rows), time.perf_counter() - t, todo)
"""


def _fresh(code: str, *args: str) -> tuple[list[str], int]:
    """Run ``code`` in a fresh interpreter; its printed fields and its peak RSS (bytes)."""
    wrapped = code + "\nprint(open('/proc/self/status').read().split('VmHWM:')[1].split()[0])\n"
    out = subprocess.run(
        [sys.executable, "-c", wrapped, *args], capture_output=True, text=True, check=True,
        cwd=Path(__file__).parent.parent,
    ).stdout.split("\n")  # fmt: skip
    return out[0].split(), int(out[1]) * 1024


def read_manifest_measure(ctx: Context) -> dict[str, Any]:
    (rows, seconds), peak = _fresh(_READ, str(ctx.store))
    (_, _), baseline = _fresh("print(0, 0)\nimport schemas")
    return {
        "rows": int(rows),
        "read_s": float(seconds),
        "peak_rss_mib": peak / 2**20,
        "peak_rss_over_import_mib": (peak - baseline) / 2**20,
    }


def resume_measure(ctx: Context) -> dict[str, Any]:
    (rows, seconds, todo), peak = _fresh(_RESUME, str(ctx.store), str(ctx.sources))
    return {
        "clips": int(rows),
        "nothing_to_do_s": float(seconds),
        "to_do": int(todo),
        "peak_rss_mib": peak / 2**20,
    }


MEASURES["read_manifest"] = read_manifest_measure
MEASURES["resume"] = resume_measure


def store_files(ctx: Context) -> dict[str, Any]:
    """The store's files and folders and its bytes, in all and per clip."""
    entries = size = 0
    for root, dirs, files in os.walk(ctx.store):
        entries += len(dirs) + len(files)
        size += sum(os.lstat(os.path.join(root, name)).st_size for name in files)
    return {
        "entries": entries,
        "files_per_clip": entries / max(ctx.size, 1),
        "bytes": size,
        "bytes_per_clip": size / max(ctx.size, 1),
    }


MEASURES["store_files"] = store_files


def _driver_measures() -> None:
    """Add ``benchmarks.scale_driver.MEASURES`` (driver measures) when that module exists."""
    try:
        from benchmarks import scale_driver  # type: ignore[attr-defined]
    except ImportError:
        return
    MEASURES.update(scale_driver.MEASURES)


def run(
    sizes: tuple[int, ...],
    work: Path,
    jobs: int = 1,
    done: Callable[[dict[str, Any]], None] = lambda results: None,
    packed: bool = False,
) -> dict[str, Any]:
    """Grow a store in ``work`` through ``sizes`` and measure it at each; ``done`` gets the
    results so far after every size (a store of a million clips takes long to delete)."""
    store, sources, scratch = work / "store", work / "sources", work / "scratch"
    for folder in (sources, scratch):
        folder.mkdir(parents=True)
    schemas.create_store(store, RECIPE, packed=packed)
    grower = Grower(store, sources, packed=packed)
    results: dict[str, Any] = {}
    for size in sorted(sizes):
        started = time.perf_counter()
        grower.grow_to(size, jobs)
        ctx = Context(store, grower.count, sources, scratch)
        entry: dict[str, Any] = {
            "clips": grower.count,
            "build_s": time.perf_counter() - started,
            "grow_jobs": jobs,
        }
        for name, measure in MEASURES.items():
            entry[name] = measure(ctx)
        entry["bookkeeping"] = bookkeeping(Context(store, grower.count, sources, scratch), grower)
        results[str(size)] = entry
        print(json.dumps({str(size): entry}), flush=True)
        done(results)
    return results


def targets(results: dict[str, Any]) -> dict[str, Any]:
    """The issue's targets, where the sizes they name were run."""
    out: dict[str, Any] = {}
    cost = {k: v["bookkeeping"]["bookkeeping_s_per_clip"] for k, v in results.items()}
    manifest = {k: v["bookkeeping"]["manifest_s_per_clip"] for k, v in results.items()}
    for size in ("100000", "1000000"):  # the target is 100 k; 1 M is reported beside it
        if "1000" in cost and size in cost:
            out[f"bookkeeping_{size}_over_1000"] = cost[size] / cost["1000"]
            out[f"manifest_{size}_over_1000"] = manifest[size] / manifest["1000"]
    if "1000" in cost and len(cost) > 1:
        out["target_100000_over_1000_max"] = 1.5
    rss = results.get("1000000", {}).get("scan_submit_rss", {}).get("peak_rss_mib")
    if rss is not None:
        out["driver_peak_rss_1000000_mib"] = rss
        out["target_driver_peak_rss_1000000_mib_max"] = 2048
    if "100000" in results:
        at = results["100000"]
        out["resume_100000_s"] = at["resume"]["nothing_to_do_s"]
        scan_s = at.get("first_commit", {}).get("scan_s")
        if scan_s is not None:
            # A rerun is the scan plus the resume decision; the driver overlaps the two,
            # so their sum bounds it from above.
            out["rerun_100000_s_at_most"] = scan_s + out["resume_100000_s"]
        out["target_rerun_100000_s_max"] = 30.0
        first = at.get("first_commit", {}).get("first_commit_s")
        if first is not None:
            out["first_commit_100000_s"] = first
            out["target_first_commit_100000_s_max"] = 15.0
    return out


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--full", action="store_true", help="also 100k and 1M clips")
    parser.add_argument("--sizes", help="comma-separated store sizes (overrides --full)")
    parser.add_argument("--jobs", type=int, default=1, help="processes growing the store")
    parser.add_argument("--work", type=Path, help="where to make the store (default: TMPDIR)")
    parser.add_argument("--out", type=Path, default=RESULT)
    parser.add_argument("--packed", action="store_true", help="grow a packed store (format 4)")
    args = parser.parse_args(argv)
    sizes: tuple[int, ...] = FULL_SIZES if args.full else QUICK_SIZES
    if args.sizes:
        sizes = tuple(int(s) for s in args.sizes.split(","))
    if args.jobs < 1:
        parser.error("--jobs must be at least 1")
    _driver_measures()

    def save(results: dict[str, Any]) -> None:
        save_result(report(results, args.jobs, args.packed), args.out)

    with tempfile.TemporaryDirectory(prefix="bench_scale.", dir=args.work) as work:
        run(sizes, Path(work), args.jobs, save, args.packed)
        print(f"removing the benchmark's store in {work}", file=sys.stderr, flush=True)


def report(results: dict[str, Any], jobs: int, packed: bool = False) -> dict[str, Any]:
    """The benchmark's JSON: its settings, each size's measures and the targets."""
    return {
        "benchmark": "scale",
        "recipe": "crop_size 16, 2 frames per clip, write_clip durable=False",
        "store": "packed (format 4)" if packed else "per clip (format 3)",
        "measured_commits_per_size": MEASURED,
        "flush_every_clips": FLUSH_EVERY,
        "grow_jobs": jobs,
        "cpus": os.cpu_count(),
        "sizes": results,
        "targets": targets(results),
    }


if __name__ == "__main__":
    main()
