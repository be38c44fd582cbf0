"""Committing one clip into a packed store from an ingest task: the process's writer.

An ingest's tasks run in worker processes that each hold one
:class:`schemas.packed_write.ShardWriter` per store and run, so a worker fills its own
shards clip after clip, and no two workers (or runs) share one.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from schemas.layout import LABELS_DIR
from schemas.packed_write import ShardWriter
from schemas.recipe import Recipe

# One writer per process, store and run: an ingest's tasks in a worker process share
# it, so the worker fills its shards clip after clip. Keyed by the process id too: a
# forked child never appends to its parent's shard.
_WRITERS: dict[tuple[int, str, int], ShardWriter] = {}


def process_writer(store: str | Path, recipe: Recipe, run: int, *, durable: bool) -> ShardWriter:
    """This process's writer of run ``run`` into ``store``. Writers of the store's earlier
    runs are dropped unsealed: their run ended, and its driver sealed their shards."""
    from schemas.layout import DEFAULT_SHARD_TARGET, SHARD_TARGET_KEY
    from schemas.lifecycle import open_store

    key = (os.getpid(), os.path.realpath(store), run)
    writer = _WRITERS.get(key)
    if writer is None:
        for other in [k for k in _WRITERS if k[1] == key[1]]:
            stale = _WRITERS.pop(other)
            if stale.shard is not None:
                stale.shard.close()
        target = open_store(store).extra.get(SHARD_TARGET_KEY, DEFAULT_SHARD_TARGET)
        writer = ShardWriter(store, recipe, run, int(target), durable=durable)
        _WRITERS[key] = writer
    return writer


def write_packed_clip(
    store: str | Path,
    run: int,
    clip_id: str,
    video: np.ndarray,
    audio: np.ndarray,
    record: dict[str, Any],
    recipe: Recipe,
    *,
    extra: Mapping[str, np.ndarray] | None = None,
    frame_labels: Mapping[str, np.ndarray] | None = None,
    durable: bool = True,
) -> dict[str, Any]:
    """:func:`schemas.write_clip` for a packed store: the same checks, the clip appended
    to this process's shard of run ``run``. Returns the record naming where it lies;
    the clip is committed once the manifest holds that record."""
    from schemas.clips import EXTRA_ARRAYS, _check_extra, _check_tensors, _checked_frame_labels
    from schemas.layout import check_name

    check_name(clip_id, "clip id")
    _check_tensors(video, audio, recipe)
    extras = dict(extra or {})
    _check_extra(extras, video.shape[0], recipe)
    labels = _checked_frame_labels(frame_labels, video.shape[0])
    arrays = {"video": video, "audio": audio, **{n: extras[n] for n in EXTRA_ARRAYS if n in extras}}
    for name, data in (labels or {}).items():
        arrays[f"{LABELS_DIR}/{name}"] = data
    writer = process_writer(store, recipe, run, durable=durable)
    return writer.append(arrays, {**record, "clip_id": clip_id})
