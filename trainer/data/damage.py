"""The one error for a committed clip whose stored tensors are not what was committed
(its wording is the store's: :func:`schemas.layout.damaged_clip`)."""

from __future__ import annotations

from pathlib import Path

import schemas
from schemas.layout import damaged_clip, is_packed
from schemas.packed_index import damaged_packed_clip


def damaged(store: Path | str, clip_id: str, problem: str) -> schemas.StoreError:
    """The error for a committed clip whose tensors are not what was committed: the
    clip, the problem, and the fix that works (remove its folder, rerun ``ingest``; in
    a packed store: remove its shard, ``repair``, rerun ``ingest``)."""
    if is_packed(store):
        return damaged_packed_clip(store, clip_id, problem)
    return damaged_clip(store, clip_id, problem)
