"""Ingest: dataset tree -> feature store, one Ray task per clip.

Data flows one way::

    scan (driver) -> process_clip (Ray task: decode, faces, features, commit) -> record -> manifest

The scan is the dataset's adapter (:func:`pipeline.datasets.scan`); everything after
it is the same for every dataset. Where the dataset gives fake segments, the task
turns them into per-frame labels of the stored frames (:mod:`pipeline.clip.frame_labels`)
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
import itertools
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pyarrow as pa

import schemas
from pipeline import datasets
from pipeline.datasets import ClipSource, ScanResult
from pipeline.ingest.clip_record import base_record
from pipeline.ingest.fingerprint import NotRegularFile
from pipeline.ingest.in_flight import Tally, clips_to_do, drive
from pipeline.ingest.manifest_book import ManifestBook
from pipeline.ingest.packing import commit_clip, end_of_run, open_for_ingest
from pipeline.ingest.scan_stream import ScanStream
from pipeline.ingest.selection import start_scan
from pipeline.ingest.stop_signals import IngestInterrupted, StopSignals
from schemas import STATUS_FAILED, STATUS_OK, Recipe
from schemas.lock import store_lock

if TYPE_CHECKING:
    from pipeline.clip.transform import ClipTensors
    from pipeline.ingest.ray_runtime import RayStart

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
    packed: bool = False  # a new store packs its clips into shards (format 4)
    shard_bytes: int | None = None  # a new packed store's shard size; None: the default


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


def process_clip(
    source: str,
    store: str,
    clip: ClipSource,
    recipe_dict: dict[str, Any],
    durable: bool = True,
    shard_run: int | None = None,
) -> dict[str, Any]:
    """Turn one source file into a committed clip; return its manifest record.

    Bad media end as a failed record (``error`` says why), never as an exception,
    so one odd file cannot stop the run. The record's fingerprint is that of the
    file decoded: taken from the open descriptor before the decode, and the clip
    fails if the file changed before the decode ended.
    """
    from pipeline.clip.frame_labels import clip_frame_labels
    from pipeline.clip.speech import little_speech
    from pipeline.clip.transform import preprocess_clip
    from pipeline.errors import ClipError

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
            num_frames=int(tensors.face.shape[0]),
            **_source_facts(tensors),
            face_detection_rate=float(tensors.face_detection_rate),
            trimmed_frames=int(tensors.trimmed_frames),
            audio_offset_s=float(tensors.audio_offset_s),
            audio_coverage=float(tensors.audio_coverage),
            cut=bool(tensors.cut),
            low_face_rate=float(tensors.face_detection_rate) < recipe.min_face_rate,
            **_face_flags(tensors),
            speech_fraction=float(tensors.speech_fraction),
            little_speech=little_speech(float(tensors.speech_fraction)),
            status=STATUS_OK,
        )
        # The record travels inside the commit, so it is final before the write.
        record["elapsed_s"] = time.perf_counter() - started
        try:
            frame_labels = clip_frame_labels(
                clip, record["num_frames"], float(recipe.fps), record["trimmed_frames"]
            )
            record = commit_clip(
                store, shard_run, clip.clip_id, tensors.face, tensors.audio, record, recipe,
                extra=tensors.extra_arrays(), frame_labels=frame_labels, durable=durable,
            )  # fmt: skip
        except OSError as exc:  # e.g. disk full: nothing half-written stays visible
            # A failed row holds no frames (the schema's contract for failed rows).
            record.update(status=STATUS_FAILED, num_frames=0, error=f"cannot write to store: {exc}")
        except schemas.StoreError:  # the store's fault, not the clip's (a ValueError too)
            raise
        except ValueError as exc:  # segments an adapter should have refused: fail the clip
            record.update(status=STATUS_FAILED, num_frames=0, error=f"internal error: {exc}")
        return record
    record["elapsed_s"] = time.perf_counter() - started
    return record


def _optional_float(value: float | None) -> float | None:
    return None if value is None else float(value)


def _source_facts(tensors: ClipTensors) -> dict[str, Any]:
    """The manifest's facts about a processed clip's source, and the decoder that read it."""
    return {
        "source_fps": float(tensors.source_fps),
        "source_duration_s": float(tensors.source_duration_s),
        "source_width": int(tensors.source_width),
        "source_height": int(tensors.source_height),
        "decoded_by": tensors.decoded_by,
        "decoded_width": int(tensors.decoded_width),
        "decoded_height": int(tensors.decoded_height),
        "decode_scale": float(tensors.decode_scale),
    }


def _face_flags(tensors: ClipTensors) -> dict[str, Any]:
    """The manifest's face-track, landmark and head-pose flags of a processed clip."""
    from pipeline.clip.head_pose import frontal_measures
    from pipeline.clip.speaker import manifest_columns

    return {
        "landmark_rate": _optional_float(tensors.landmark_rate),
        "landmark_jitter": _optional_float(tensors.landmark_jitter),
        "shot_cuts": int(tensors.shot_cuts),
        "faceless_frames": int(tensors.faceless_frames),
        **manifest_columns(tensors.speaker),
        **vars(frontal_measures(tensors.pose)),
    }


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
    from pipeline.ingest.fingerprint import changed, fingerprint_fd, open_source

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


def run_ingest(
    root: Path,
    options: IngestOptions,
    on_progress: Callable[[dict[str, Any]], None] | None = None,
    on_start: Callable[[int], None] | None = None,
    on_skip: Callable[[int], None] | None = None,
) -> IngestResult:
    """Scan ``root``, process every clip not yet committed, write the manifest.

    Ray starts in the background while the dataset is scanned, and the scan runs in
    a thread that hands each clip over as it is found (:mod:`pipeline.ingest.scan_stream`):
    clips are skip-checked and submitted a few at a time (:mod:`pipeline.ingest.in_flight`)
    while the scan goes on, so the first task starts after the first record, not the
    last. With ``limit`` the whole scan comes first (the round-robin over categories
    needs it). ``on_start(clips)`` is called once, when the scan has ended, with the
    number of clips selected; as clips are decided, ``on_skip(n)`` for ``n`` more
    clips already current in the store and ``on_progress(record)`` after every
    finished clip (skipped + finished = clips at the end of a complete run). A scan
    that fails part-way stops the submitting; the tasks in flight finish, the
    manifest is written, then its error is raised.

    On SIGINT or SIGTERM (when called from the main thread) it stops submitting,
    cancels running tasks (their clips stay to do: no record), writes the manifest,
    releases the store's lock and shuts Ray down, then raises
    :class:`~pipeline.ingest.stop_signals.IngestInterrupted` (a ``KeyboardInterrupt``
    carrying the signal and the clips this run committed); a second signal while it
    stops raises at once.
    """
    from pipeline.ingest.ray_runtime import ray_background

    started = time.perf_counter()
    _check_options(options)
    store = options.store.resolve()
    # Refuse a store that is not ours before anything (the lock file included) is
    # written into it; create_store checks again under the lock.
    schemas.check_store_target(store, overwrite=options.overwrite)
    dataset = options.dataset if options.dataset is not None else datasets.detect(root)
    tally = Tally()
    try:
        with (
            StopSignals() as signals,
            ray_background(options.address, options.workers) as ray_start,
        ):
            stream, clips = start_scan(root, dataset, options, signals, on_start)
            signals.reinstall()  # if Ray is up by now, it took SIGTERM: take it back
            manifest = _ingest_locked(
                store, stream, clips, options, ray_start, signals, tally,
                _Callbacks(on_progress, on_skip),
            )  # fmt: skip
            scan = stream.result()  # a scan that failed part-way raises here, manifest written
    except IngestInterrupted as exc:
        exc.committed = tally.ok  # also when a second signal cut the cleanup short
        raise
    return IngestResult(
        scan=scan,
        submitted=tally.submitted,
        skipped=tally.skipped,
        ok=tally.ok,
        failed=tally.failed,
        elapsed_s=time.perf_counter() - started,
        manifest=manifest,
    )


def _ingest_locked(
    store: Path,
    stream: ScanStream,
    clips: Iterator[ClipSource | None],
    options: IngestOptions,
    ray_start: RayStart,
    signals: StopSignals,
    tally: Tally,
    callbacks: _Callbacks,
) -> pa.Table:
    """Under the store's lock: create the store, run the tasks, write the manifest.

    Returns the manifest as written; a signal that stopped the run is raised here
    (:meth:`~pipeline.ingest.stop_signals.StopSignals.check`), after the manifest is written.
    """
    with store_lock(store):
        shard_run = open_for_ingest(store, options)
        schemas.sweep_staging(store)  # leftovers of killed tasks; ours is the only lock
        book = ManifestBook(store, options.recipe.hash(), durable=options.fsync)
        with signals.deferred():
            stopped = _run_tasks(
                stream.dataset_root, store, clips, options, book, ray_start,
                signals, tally, callbacks, shard_run,
            )  # fmt: skip
            end_of_run(store, options, shard_run)
            if not stopped and not stream.failed():
                for clip_id, method in stream.late_methods.items():
                    book.amend(clip_id, method=method)
            manifest = book.flush(final=True)
        if stopped:
            signals.check(tally.ok)
    return manifest


def _check_options(options: IngestOptions) -> None:
    """Refuse bad options (:class:`schemas.UserError`, one line) before anything starts."""
    if options.limit is not None and options.limit < 0:
        raise schemas.UserError(f"--limit must be 0 or more, not {options.limit}")
    if options.recipe.landmarks:
        from pipeline.clip.landmarks import MISSING_PREDICTOR, landmarks_available

        if not landmarks_available():  # refuse before any task would fail on it
            raise schemas.UserError(MISSING_PREDICTOR)
    if options.recipe.decoder == "pyav":
        from pipeline.media.inprocess import pyav_available

        if not pyav_available():  # the recipe would not say how its clips were decoded
            raise schemas.UserError(
                "the pyav decoder needs PyAV: pip install 'av>=18,<19' (the pipeline "
                "extra has it), or pass --decoder ffmpeg"
            )


@dataclass
class _Callbacks:
    on_progress: Callable[[dict[str, Any]], None] | None = None
    on_skip: Callable[[int], None] | None = None


def _run_tasks(
    dataset: Path,
    store: Path,
    clips: Iterator[ClipSource | None],
    options: IngestOptions,
    book: ManifestBook,
    ray_start: RayStart,
    signals: StopSignals,
    tally: Tally,
    callbacks: _Callbacks,
    shard_run: int | None = None,
) -> bool:
    """Skip-check, submit and book ``clips``, a bounded few in flight; True if a signal stopped it.

    Starts Ray, and waits for it, only once the first clip to do is found (a rerun
    with nothing to do never starts it). At most ``2 x CPUs`` tasks are in flight.
    """
    import ray

    def stopping() -> bool:
        return signals.stopping

    def is_current(clip: ClipSource) -> bool:
        return book.is_current(clip, dataset / clip.path, verify=options.verify)

    todo = clips_to_do(clips, is_current, tally, callbacks.on_skip, stopping)
    first = next((clip for clip in todo if clip is not None), None)
    if first is None:
        return stopping()
    cpus = ray_start.cpus()
    signals.reinstall()  # Ray's start replaced the SIGTERM handler
    task = ray.remote(num_cpus=1, max_retries=TASK_RETRIES, retry_exceptions=False)(process_clip)
    recipe_dict, recipe_hash = options.recipe.to_dict(), options.recipe.hash()

    def submit(clip: ClipSource) -> Any:
        tally.submitted += 1
        source = str(dataset / clip.path)
        return task.remote(source, str(store), clip, recipe_dict, options.fsync, shard_run)

    def add(record: dict[str, Any]) -> None:
        book.add(record)
        tally.count(record)
        if callbacks.on_progress:
            callbacks.on_progress(record)

    return drive(
        itertools.chain([first], todo),
        submit,
        lambda ref, clip: _task_record(ref, clip, recipe_hash),
        add,
        size=max(2, 2 * cpus),  # keeps every worker busy, bounds driver memory
        stopping=stopping,
        flush=book.flush,
    )


def _task_record(ref: Any, clip: ClipSource, recipe_hash: str) -> dict[str, Any]:
    """The record a finished task returned; a failed one if its worker died every try."""
    import ray

    try:
        record: dict[str, Any] = ray.get(ref)
    except ray.exceptions.RayError as exc:
        record = base_record(clip, "", recipe_hash)
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
        error = f"worker died {TASK_RETRIES + 1} times: {type(exc).__name__} {reason}"
        record["error"] = error[:500]
    return record
