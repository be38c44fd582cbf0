"""Ingest: dataset tree -> feature store, one Ray task per clip.

Data flows one way::

    scan (driver) -> process_clip (Ray task: decode, faces, features, commit) -> record -> manifest

The scan is the dataset's adapter (:func:`pipeline.datasets.scan`); everything after
it is the same for every dataset. Where the dataset gives fake segments, the task
turns them into per-frame labels of the stored frames (:mod:`pipeline.frame_labels`)
and commits them with the clip.

Decoded frames never leave the task: it writes the clip's tensors straight
into the store (atomic rename) and returns only its manifest record. The
driver keeps a bounded number of tasks in flight and rewrites
``manifest.parquet`` atomically every few seconds and at the end.

Nothing is lost on a crash. A committed clip carries its record inside its
own Zarr group, so the manifest can always be rebuilt from ``clips/``; the
manifest's ok rows are only ever taken from committed records, so it never
names a clip that is not committed (``mscct-pipeline repair`` rebuilds it).

Work starts at once: the driver reads no byte of the sources. Each task
fingerprints the file it decodes, from the descriptor it holds, and checks after
the decode that the file did not change meanwhile (else the clip fails, saying
so). A rerun skips a clip whose committed record has the same recipe hash and
the source's current size and modification time (``--verify``: the same content
fingerprint, which reads the sources again), and redoes failed or missing ones.
With ``fsync`` (the default) every commit is durable: see :func:`schemas.write_clip`.
"""

from __future__ import annotations

import contextlib
import time
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import pyarrow as pa

import schemas
from pipeline import datasets
from pipeline.datasets import ClipSource, ScanResult, Segments
from pipeline.fingerprint import NotRegularFile, source_fingerprint, source_stat
from pipeline.lock import store_lock
from schemas import STATUS_FAILED, STATUS_OK, Recipe

#: Ray retries a task whose worker process died this many times.
TASK_RETRIES = 3


@dataclass
class IngestOptions:
    store: Path
    recipe: Recipe = field(default_factory=Recipe)
    address: str | None = None
    workers: int | None = None
    limit: int | None = None
    categories: tuple[str, ...] = ()
    overwrite: bool = False
    verify: bool = False  # resume: compare content fingerprints, not just size and mtime
    fsync: bool = True  # durable commits (off only to measure what durability costs)
    dataset: str | None = None  # adapter name (pipeline.datasets.DATASETS); None: detect


@dataclass
class IngestResult:
    scan: ScanResult
    submitted: int
    skipped: int
    ok: int
    failed: int
    elapsed_s: float
    manifest: pa.Table


# --------------------------------------------------------------------------- per clip (Ray task)


def base_record(clip: ClipSource, fingerprint: str, recipe_hash: str) -> dict[str, Any]:
    """The manifest row of a clip before processing (labels from the scan).

    Every label the dataset gives travels with it: the clip-level labels (null for
    an unlabelled clip, whose category is ``""``), the dataset's split and the fake
    segments as ``[[start_s, end_s], ...]`` lists (null where none are given).
    Besides the manifest columns a committed record keeps ``source_size`` and
    ``source_mtime_ns`` (what the driver's resume check compares) and ``elapsed_s``.
    """
    labels = schemas.labels_for(clip.category) if clip.labelled else None
    return {
        "clip_id": clip.clip_id,
        "path": clip.path,
        "category": clip.category if clip.labelled else "",
        "source_type": clip.source_type,
        "audio_label": labels.audio if labels else None,
        "video_label": labels.video if labels else None,
        "label": labels.overall if labels else None,
        "identity": clip.identity,
        "target1": clip.target1,
        "target2": clip.target2,
        "method": clip.method,
        "race": clip.race,
        "gender": clip.gender,
        "num_frames": 0,
        "source_fingerprint": fingerprint,
        "recipe_hash": recipe_hash,
        "status": STATUS_FAILED,
        "error": "",
        "node_id": "",
        "dataset": clip.dataset,
        "labelled": clip.labelled,
        "official_split": clip.official_split,
        "source_split": clip.source_split,
        "original": clip.original,
        "fake_segments": _segment_lists(clip.fake_segments),
        "audio_fake_segments": _segment_lists(clip.audio_fake_segments),
        "video_fake_segments": _segment_lists(clip.video_fake_segments),
    }


def _segment_lists(segments: Segments | None) -> list[list[float]] | None:
    """Segments as JSON- and Arrow-friendly ``[[start_s, end_s], ...]`` (None stays None)."""
    return None if segments is None else [[float(s), float(e)] for s, e in segments]


def process_clip(
    source: str,
    store: str,
    clip: ClipSource,
    recipe_dict: dict[str, Any],
    durable: bool = True,
) -> dict[str, Any]:
    """Turn one source file into a committed clip; return its manifest record.

    Bad media end as a failed record (``error`` says why), never as an exception,
    so one odd file cannot stop the run. The record's fingerprint is that of the
    file decoded: taken from the open descriptor before the decode, and the clip
    fails if the file changed before the decode ended.
    """
    from pipeline.errors import ClipError
    from pipeline.frame_labels import clip_frame_labels
    from pipeline.transform import preprocess_clip

    started = time.perf_counter()
    recipe = Recipe(**recipe_dict)
    record = base_record(clip, "", recipe.hash())
    record["node_id"] = _node_id()
    try:
        tensors = _decode_unchanged(Path(source), recipe, record, preprocess_clip)
    except ClipError as exc:
        record["error"] = str(exc)
    except Exception as exc:  # a bug or an unforeseen input: record it, keep going
        record["error"] = f"internal error: {type(exc).__name__}: {exc}"
    else:
        record.update(
            num_frames=int(tensors.video.shape[0]),
            source_fps=float(tensors.source_fps),
            source_duration_s=float(tensors.source_duration_s),
            source_width=int(tensors.source_width),
            source_height=int(tensors.source_height),
            face_detection_rate=float(tensors.face_detection_rate),
            trimmed_frames=int(tensors.trimmed_frames),
            audio_offset_s=float(tensors.audio_offset_s),
            audio_coverage=float(tensors.audio_coverage),
            cut=bool(tensors.cut),
            low_face_rate=float(tensors.face_detection_rate) < recipe.min_face_rate,
            landmark_rate=_optional_float(tensors.landmark_rate),
            landmark_jitter=_optional_float(tensors.landmark_jitter),
            shot_cuts=int(tensors.shot_cuts),
            status=STATUS_OK,
        )
        # The record travels inside the commit, so it is final before the write.
        record["elapsed_s"] = time.perf_counter() - started
        try:
            frame_labels = clip_frame_labels(
                clip, record["num_frames"], float(recipe.fps), record["trimmed_frames"]
            )
            schemas.write_clip(
                store, clip.clip_id, tensors.video, tensors.audio, record, recipe,
                extra=tensors.extra_arrays(), frame_labels=frame_labels, durable=durable,
            )  # fmt: skip
        except OSError as exc:  # e.g. disk full: nothing half-written stays visible
            # A failed row holds no frames (the schema's contract for failed rows).
            record.update(status=STATUS_FAILED, num_frames=0, error=f"cannot write to store: {exc}")
        except ValueError as exc:  # segments an adapter should have refused: fail the clip
            record.update(status=STATUS_FAILED, num_frames=0, error=f"internal error: {exc}")
        return record
    record["elapsed_s"] = time.perf_counter() - started
    return record


def _optional_float(value: float | None) -> float | None:
    return None if value is None else float(value)


def _decode_unchanged(
    source: Path,
    recipe: Recipe,
    record: dict[str, Any],
    preprocess: Callable[..., Any],
) -> Any:
    """``preprocess(source, recipe)`` of a regular file that stays the same throughout.

    Sets the record's ``source_fingerprint``, ``source_size`` and ``source_mtime_ns``
    from the descriptor held open across the decode. Raises ``ClipError`` for a
    missing or non-regular file (never opened) and for a file that changed.
    """
    from pipeline.errors import ClipError
    from pipeline.fingerprint import changed, fingerprint_fd, open_source

    with contextlib.ExitStack() as stack:  # the descriptor stays open across the decode
        try:
            fd, before = stack.enter_context(open_source(source))
            fingerprint = fingerprint_fd(fd)
        except NotRegularFile:
            raise ClipError("not a regular file") from None
        except FileNotFoundError:
            raise ClipError("file not found") from None
        except OSError as exc:
            raise ClipError(f"cannot read file: {exc.strerror or exc}") from None
        record.update(
            source_fingerprint=fingerprint,
            source_size=before.st_size,
            source_mtime_ns=before.st_mtime_ns,
        )
        tensors = preprocess(source, recipe)
        reason = changed(before, fd, source)
    if reason:
        raise ClipError(f"source changed while it was processed ({reason}); rerun to redo it")
    return tensors


def _node_id() -> str:
    try:
        import ray

        return ray.get_runtime_context().get_node_id() or ""
    except Exception:
        return ""


# --------------------------------------------------------------------------- driver


#: The name of the unlabelled clips (category ``""``) in summaries.
UNLABELLED = "unlabelled"


def select_clips(
    scan: ScanResult, categories: Iterable[str], limit: int | None
) -> list[ClipSource]:
    """Filter by category, then take the first ``limit`` clips round-robin over categories,
    so that a small ``--limit`` still covers all four (and the unlabelled clips, category
    ``""``, as a fifth; a ``categories`` filter names labelled categories only)."""
    wanted = set(categories) or {*schemas.CATEGORIES, ""}
    order = (*schemas.CATEGORIES, "")
    by_category: dict[str, list[ClipSource]] = {c: [] for c in order}
    for clip in scan.clips:
        if clip.category in wanted and clip.category in by_category:
            by_category[clip.category].append(clip)
    queues = [by_category[c] for c in order]
    chosen: list[ClipSource] = []
    index = 0
    while any(index < len(q) for q in queues):
        chosen.extend(q[index] for q in queues if index < len(q))
        index += 1
    return chosen[:limit] if limit is not None else chosen


def run_ingest(
    root: Path,
    options: IngestOptions,
    on_progress: Callable[[dict[str, Any]], None] | None = None,
    on_start: Callable[[int, int], None] | None = None,
) -> IngestResult:
    """Scan ``root``, process every clip not yet committed, write the manifest.

    ``on_start(to_process, skipped)`` is called once before the first task,
    ``on_progress(record)`` after every finished clip.
    """
    started = time.perf_counter()
    if options.limit is not None and options.limit < 0:
        raise ValueError(f"--limit must be 0 or more, not {options.limit}")
    if options.recipe.landmarks:
        from pipeline.landmarks import MISSING_PREDICTOR, landmarks_available

        if not landmarks_available():  # refuse before any task would fail on it
            raise ValueError(MISSING_PREDICTOR)
    store = options.store.resolve()
    # Refuse a store that is not ours before anything (the lock file included) is
    # written into it; create_store checks again under the lock.
    schemas.check_store_target(store, overwrite=options.overwrite)
    scan = datasets.scan(root, options.dataset)
    clips = select_clips(scan, options.categories, options.limit)
    with store_lock(store):
        schemas.create_store(store, options.recipe, overwrite=options.overwrite)
        schemas.sweep_staging(store)  # leftovers of killed tasks; we hold the only write lock
        book = ManifestBook(store, options.recipe.hash(), durable=options.fsync)
        todo = [
            clip
            for clip in clips
            if not book.is_current(clip, scan.root / clip.path, verify=options.verify)
        ]
        if on_start:
            on_start(len(todo), len(clips) - len(todo))
        if todo:
            _run_tasks(scan.root, store, todo, options, book, on_progress)
        manifest = book.flush(final=True)
    ok = sum(1 for r in book.session if r["status"] == STATUS_OK)
    return IngestResult(
        scan=scan,
        submitted=len(todo),
        skipped=len(clips) - len(todo),
        ok=ok,
        failed=len(book.session) - ok,
        elapsed_s=time.perf_counter() - started,
        manifest=manifest,
    )


def _run_tasks(
    dataset: Path,
    store: Path,
    todo: list[ClipSource],
    options: IngestOptions,
    book: ManifestBook,
    on_progress: Callable[[dict[str, Any]], None] | None,
) -> None:
    import ray

    from pipeline.ray_runtime import ray_session

    recipe_dict = options.recipe.to_dict()
    with ray_session(options.address, options.workers) as cpus:
        task = ray.remote(num_cpus=1, max_retries=TASK_RETRIES, retry_exceptions=False)(
            process_clip
        )
        max_in_flight = max(2, 2 * cpus)  # keeps every worker busy, bounds driver memory
        pending: dict[Any, ClipSource] = {}
        queue = list(reversed(todo))
        last_flush = time.monotonic()
        while queue or pending:
            while queue and len(pending) < max_in_flight:
                clip = queue.pop()
                source = str(dataset / clip.path)
                ref = task.remote(source, str(store), clip, recipe_dict, options.fsync)
                pending[ref] = clip
            done, _ = ray.wait(list(pending), num_returns=1, timeout=1.0)
            for ref in done:
                clip = pending.pop(ref)
                try:
                    record = ray.get(ref)
                except ray.exceptions.RayError as exc:
                    record = base_record(clip, "", options.recipe.hash())
                    reason = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
                    record["error"] = (
                        f"worker died {TASK_RETRIES + 1} times: {type(exc).__name__} {reason}"
                    )[:500]
                book.add(record)
                if on_progress:
                    on_progress(record)
            if time.monotonic() - last_flush > 2.0:
                book.flush()
                last_flush = time.monotonic()


#: The record fields a clip's labels live in; a change of any of them redoes the clip.
LABEL_FIELDS = (
    "category",
    "audio_label",
    "video_label",
    "label",
    "labelled",
    "fake_segments",
    "audio_fake_segments",
    "video_fake_segments",
)


def _labels_unchanged(record: dict[str, Any], clip: ClipSource) -> bool:
    """Whether the labels a committed record holds are those the scan gives ``clip`` now
    (fields the record lacks, written before they existed, are not compared)."""
    now = base_record(clip, "", "")
    return all(record[key] == now[key] for key in LABEL_FIELDS if key in record)


class ManifestBook:
    """The driver's view of the manifest while a run goes on.

    ok rows come from committed clip records only; failed rows from this run's
    failures, plus older failures of clips this run did not touch.
    """

    def __init__(self, store: Path, recipe_hash: str, *, durable: bool = True) -> None:
        self.store = store
        self.recipe_hash = recipe_hash
        self.durable = durable
        self.unreadable = False  # the manifest on disk could not be read (see repair)
        self.committed = {r["clip_id"]: r for r in schemas.committed_records(store)}
        self.failed: dict[str, dict[str, Any]] = {}
        self.session: list[dict[str, Any]] = []
        try:
            self.written: pa.Table | None = schemas.read_manifest(store)
        except schemas.StoreError:
            self.written = None
            self.unreadable = (store / schemas.layout.MANIFEST_FILE).exists()
        previous = self.written.to_pylist() if self.written is not None else []
        for row in previous:
            if row["status"] == STATUS_FAILED and row["clip_id"] not in self.committed:
                self.failed[row["clip_id"]] = row

    def is_current(self, clip: ClipSource, source: Path, *, verify: bool = False) -> bool:
        """Whether the committed clip was made from ``source`` as it is now, same recipe,
        with the labels the scan gives it now.

        Compares size and mtime (``stat``, no byte read); with ``verify`` also the
        content fingerprint. A missing or non-regular source is never current: its
        task fails it with the reason. (Records of stores older than these fields are
        never compared: such stores are refused by their recipe's pipeline_version.)
        Labels are compared only where the record has them: a clip committed before a
        label field existed is not redone for its absence.
        """
        record = self.committed.get(clip.clip_id)
        if record is None or record.get("recipe_hash") != self.recipe_hash:
            return False
        if not _labels_unchanged(record, clip):
            return False  # its stored frame labels (and manifest row) would be stale
        try:
            info = source_stat(source)
            recorded = (record.get("source_size"), record.get("source_mtime_ns"))
            if recorded != (info.st_size, info.st_mtime_ns):
                return False
            if verify:
                return source_fingerprint(source) == record.get("source_fingerprint")
        except OSError:  # NotRegularFile included
            return False
        return True

    def add(self, record: dict[str, Any]) -> None:
        self.session.append(record)
        clip_id = record["clip_id"]
        if record["status"] == STATUS_OK:
            self.committed[clip_id] = record
            self.failed.pop(clip_id, None)
        else:
            # A clip that failed now must not stay visible from an older commit.
            if clip_id in self.committed:
                schemas.remove_clip(self.store, clip_id, durable=self.durable)
                del self.committed[clip_id]
            self.failed[clip_id] = record

    def table(self) -> pa.Table:
        rows = {**self.failed, **self.committed}
        ordered = [rows[k] for k in sorted(rows)]
        return schemas.rows_to_table(ordered, schemas.MANIFEST_SCHEMA)

    def flush(self, *, final: bool = False) -> pa.Table:
        """Rewrite ``manifest.parquet`` if its content changed (a no-op rerun changes no byte).

        A periodic flush that cannot write (disk full) is retried at the next one, since
        committed clips are safe without it; the ``final`` one raises ``StoreError``.
        """
        table = self.table()
        if self.written is None or not table.equals(self.written):
            try:
                schemas.write_manifest(self.store, table, durable=self.durable)
            except schemas.StoreError:
                if final:
                    raise
                return table
            self.written = table
        return table


@dataclass
class RepairResult:
    committed: int  # ok rows, one per committed clip
    failed_kept: int  # failed rows kept from the old manifest
    rewritten: bool  # False when the manifest already said exactly this
    old_unreadable: bool  # the old manifest was missing or unreadable (its failed rows are lost)


def repair_manifest(store: Path) -> RepairResult:
    """Rebuild ``manifest.parquet`` from the records committed in ``clips/``.

    The ok rows are exactly the committed records (what an ingest would write);
    failed rows are kept from the old manifest when it is readable, else lost
    (a rerun of ingest retries those clips anyway). Takes the store's write lock.
    """
    store = store.resolve()
    info = schemas.open_store(store)
    with store_lock(store):
        schemas.sweep_staging(store)
        book = ManifestBook(store, info.recipe.hash())
        before = book.written
        table = book.flush(final=True)
    return RepairResult(
        committed=len(book.committed),
        failed_kept=len(book.failed),
        rewritten=before is None or not table.equals(before),
        old_unreadable=before is None,
    )


# --------------------------------------------------------------------------- summary


@dataclass
class CategorySummary:
    ok: int = 0
    failed: int = 0
    frames: int = 0
    face_rate_sum: float = 0.0

    @property
    def mean_face_rate(self) -> float:
        return self.face_rate_sum / self.ok if self.ok else float("nan")


def summarize(manifest: pa.Table) -> dict[str, CategorySummary]:
    """Per-category counts of a manifest (plus ``unlabelled`` where it has unlabelled
    clips, category ``""``, and ``total``)."""
    counts = {c: CategorySummary() for c in (*schemas.CATEGORIES, UNLABELLED)}
    total = CategorySummary()
    for row in manifest.to_pylist():
        category = row["category"] or UNLABELLED
        for entry in (counts.setdefault(category, CategorySummary()), total):
            if row["status"] == STATUS_OK:
                entry.ok += 1
                entry.frames += row["num_frames"]
                entry.face_rate_sum += row["face_detection_rate"] or 0.0
            else:
                entry.failed += 1
    if not counts[UNLABELLED].ok and not counts[UNLABELLED].failed:
        del counts[UNLABELLED]  # a labelled dataset's summary stays as it always was
    return {**counts, "total": total}


def quality_summary(manifest: pa.Table) -> dict[str, Any]:
    """The landmark and track flags of a manifest's ok clips, summarised.

    ``landmark_rate`` / ``landmark_jitter``: mean, min / max and the number of clips
    that have them (None without landmarks); ``clips_with_cuts``: clips with a
    shot cut, of ``clips_checked`` (clips that record the count).
    """
    ok = [r for r in manifest.to_pylist() if r["status"] == STATUS_OK]

    def stats(name: str, worst: Callable[..., float], label: str) -> dict[str, Any] | None:
        values = [r[name] for r in ok if r.get(name) is not None]
        if not values:
            return None
        return {"mean": sum(values) / len(values), label: worst(values), "clips": len(values)}

    cuts = [r["shot_cuts"] for r in ok if r.get("shot_cuts") is not None]
    return {
        "landmark_rate": stats("landmark_rate", min, "min"),
        "landmark_jitter": stats("landmark_jitter", max, "max"),
        "clips_with_cuts": sum(1 for c in cuts if c > 0),
        "clips_checked": len(cuts),
    }


def quality_line(summary: dict[str, Any]) -> str:
    """One line of :func:`quality_summary` for ``inspect``."""
    rate, jitter = summary["landmark_rate"], summary["landmark_jitter"]
    parts = ["landmarks: none stored"]
    if rate is not None and jitter is not None:
        parts = [
            f"landmark fit rate mean {rate['mean']:.2f} (min {rate['min']:.2f}) over "
            f"{rate['clips']} clips",
            f"jitter mean {jitter['mean']:.2f} crop px (max {jitter['max']:.2f})",
        ]
    if summary["clips_checked"]:
        parts.append(
            f"{summary['clips_with_cuts']} of {summary['clips_checked']} clips with shot cuts"
        )
    return "quality: " + "; ".join(parts)


def failure_reasons(manifest: pa.Table) -> Counter[str]:
    return Counter(r["error"] for r in manifest.to_pylist() if r["status"] == STATUS_FAILED)


def result_dict(result: IngestResult) -> dict[str, Any]:
    """A JSON-able summary of a run (used by ``--json`` and the benchmarks)."""
    return {
        "submitted": result.submitted,
        "skipped": result.skipped,
        "ok": result.ok,
        "failed": result.failed,
        "elapsed_s": round(result.elapsed_s, 3),
        "clips_per_s": round(result.submitted / result.elapsed_s, 3) if result.elapsed_s else None,
        "missing": result.scan.missing,
        "unlisted": result.scan.unlisted,
        "refused": result.scan.refused,
        "merged": result.scan.merged,
        "categories": {k: asdict(v) for k, v in summarize(result.manifest).items()},
    }
