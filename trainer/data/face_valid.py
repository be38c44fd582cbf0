"""Which stored frames have a face: the part of a window's mask that is not padding.

The pipeline marks the frames of a clip where no face was found (a shot without the
face, black frames between shots: ``docs/pipeline.md``) in a ``(T,)`` uint8 array
``face_valid`` beside the crops (``schemas.read_face_valid``). Their crops show no face,
so a window's mask (:func:`trainer.data.dataset.window_arrays`) leaves them out as it leaves out
the padding after a short clip's end: the model zeroes their frames and attends to no
token of theirs, and the frame losses skip them. A clip stored before ``face_valid``
existed reads as a face in every frame, its masks as before.
"""

from __future__ import annotations

import functools
from collections import OrderedDict
from collections.abc import Sequence
from pathlib import Path

import numpy as np

import schemas
from trainer.config.settings import TrainerError

#: Clips whose flags one process keeps in memory (T bytes each; None for an old clip).
VALID_CACHE = 1 << 14


class FaceValidReader:
    """The ``face_valid`` flags of one store's clips, read once per clip and process and
    kept for up to :data:`VALID_CACHE` clips."""

    def __init__(self, store: Path | str) -> None:
        self.store = store
        self.cache: OrderedDict[str, np.ndarray | None] = OrderedDict()

    def clip(self, clip_id: str, num_frames: int) -> np.ndarray | None:
        """``(T,)`` bool, True = the frame has a face; None when every frame has one."""
        if clip_id in self.cache:
            self.cache.move_to_end(clip_id)
            return self.cache[clip_id]
        valid: np.ndarray | None = schemas.read_face_valid(self.store, clip_id)
        if valid is not None and len(valid) != num_frames:
            raise TrainerError(
                f"clip {clip_id} of store {self.store}: its face_valid has {len(valid)} "
                f"frames, its manifest {num_frames}; re-ingest the clip"
            )
        if valid is not None and valid.all():
            valid = None  # the usual case: nothing to mask, nothing kept
        self.cache[clip_id] = valid
        if len(self.cache) > VALID_CACHE:
            self.cache.popitem(last=False)
        return valid

    def window(self, clip_id: str, num_frames: int, start: int, window: int) -> np.ndarray:
        """``(window,)`` bool of frames ``[start, start + window)``: False on a frame
        without a face, True elsewhere (padding included: the padding mask covers it)."""
        out = np.ones(window, dtype=np.bool_)
        valid = self.clip(clip_id, num_frames)
        if valid is not None:
            part = valid[start : start + window]
            out[: len(part)] = part
        return out


@functools.lru_cache(maxsize=8)
def _reader(store: str) -> FaceValidReader:
    """One reader per store and process (a forked DataLoader worker starts from a copy)."""
    return FaceValidReader(store)


def face_window(
    store: Path | str, clip_id: str, num_frames: int, start: int, window: int
) -> np.ndarray:
    """:meth:`FaceValidReader.window` of the store's reader in this process: ``(window,)`` bool."""
    return _reader(str(store)).window(clip_id, num_frames, start, window)


def face_flags(valid: np.ndarray, starts: Sequence[int], window: int) -> np.ndarray:
    """The face flags ``valid (T,)`` of an in-memory clip cut into windows of ``window``
    frames from ``starts``: ``(N, window)`` bool, False on a frame without a face and
    True on padding (the padding mask covers it), as :meth:`FaceValidReader.window`."""
    out = np.ones((len(starts), window), np.bool_)
    for row, start in enumerate(starts):
        part = np.asarray(valid[start : start + window]).astype(np.bool_)
        out[row, : len(part)] = part
    return out
