"""Ingest into a packed store (format 4): the run's shards, opened and sealed.

The driver, holding the store's lock, makes or opens the store, seals the shards a
killed run left open (their torn tails cut away: :func:`schemas.packed_write.recover_shards`)
and takes the run's number; each task appends its clip to its worker's own shard
(:func:`commit_clip`), and when the tasks are done the driver seals the shards the
workers still hold open. A store of another format is written as it is.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

import schemas
from schemas.packed_commit import write_packed_clip
from schemas.packed_index import next_run
from schemas.packed_write import recover_shards

if TYPE_CHECKING:
    from collections.abc import Mapping

    from pipeline.ingest.driver import IngestOptions


def open_for_ingest(store: Path, options: IngestOptions) -> int | None:
    """Create or open the store (call under its lock); for a packed one, seal what a
    killed run left open and return this run's number, else None."""
    schemas.create_store(
        store, options.recipe, overwrite=options.overwrite, packed=options.packed,
        shard_target_bytes=options.shard_bytes,
    )  # fmt: skip
    if not schemas.is_packed(store):
        return None
    recover_shards(store, options.recipe, durable=options.fsync)
    return next_run(store)


def end_of_run(store: Path, options: IngestOptions, run: int | None) -> None:
    """Seal the shards this run's workers left open (call once its tasks are done)."""
    if run is not None:
        recover_shards(store, options.recipe, durable=options.fsync)


def commit_clip(
    store: str,
    run: int | None,
    clip_id: str,
    video: np.ndarray,
    audio: np.ndarray,
    record: dict[str, Any],
    recipe: schemas.Recipe,
    *,
    extra: Mapping[str, np.ndarray],
    frame_labels: Mapping[str, np.ndarray] | None,
    durable: bool,
) -> dict[str, Any]:
    """Commit one clip's tensors and record: its own group (``run`` None) or appended to
    this worker's shard of run ``run``. Returns the record as committed (a packed one
    names its shard and rows)."""
    if run is None:
        schemas.write_clip(
            store, clip_id, video, audio, record, recipe,
            extra=extra, frame_labels=frame_labels, durable=durable,
        )  # fmt: skip
        return record
    return write_packed_clip(
        store, run, clip_id, video, audio, record, recipe,
        extra=extra, frame_labels=frame_labels, durable=durable,
    )  # fmt: skip
