"""Per-frame labels of the clips a run reads: which clips have them, and their windows.

A store made from a dataset that gives fake segments (LAV-DF, AV-Deepfake1M, a csv
with ``fake_segments``) holds, per clip, ``(T,)`` uint8 labels ``fake``, ``audio_fake``
and ``video_fake`` aligned to the stored frames (``schemas.read_frame_labels``); a
clip-level dataset (FakeAVCeleb) holds none. The manifest says which clips have them:
exactly those whose ``fake_segments`` is not null.

The frame head (``model.frame_head``) trains on the ``fake`` labels of each window, and
``mscct-train eval`` scores frames against all three; both refuse, in one line, a clip
that has none.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

import schemas
from trainer.config.settings import TrainerError

if TYPE_CHECKING:  # trainer.data.dataset reads labels through this module
    from trainer.data.dataset import ClipInfo

#: The label the frame head learns and the fused per-frame scores are compared with.
FAKE = "fake"
#: Clips whose labels one process keeps in memory (T bytes each per label).
LABEL_CACHE = 1 << 14


def lacking_frame_labels(clips: Sequence[ClipInfo]) -> list[str]:
    """Clip ids among ``clips`` that have no frame labels."""
    return [c.clip_id for c in clips if not c.has_frame_labels]


def check_frame_labels(clips: Sequence[ClipInfo], store: Path | str, reader: str) -> None:
    """Refuse, in one line, clips without frame labels that ``reader`` (a setting, a
    command) needs them for."""
    lacking = lacking_frame_labels(clips)
    if lacking:
        raise TrainerError(
            f"{reader} needs frame labels, but {len(lacking)} of the {len(clips)} clips of "
            f"store {store} to read have none (e.g. {lacking[0]}): only a dataset that gives "
            "fake segments (lavdf, avdeepfake1m, a csv with fake_segments) has them"
        )


class FrameLabelReader:
    """The frame labels of one store's clips, read once per clip and process and kept
    for up to :data:`LABEL_CACHE` clips (a few hundred bytes each)."""

    def __init__(self, store: Path | str) -> None:
        self.store = Path(store)
        self.cache: OrderedDict[str, dict[str, np.ndarray]] = OrderedDict()

    def clip(self, clip_id: str, num_frames: int) -> dict[str, np.ndarray]:
        """All of a clip's labels, ``{"fake", "audio_fake", "video_fake"}`` → ``(T,)`` uint8."""
        labels = self.cache.get(clip_id)
        if labels is not None:
            self.cache.move_to_end(clip_id)
            return labels
        labels = schemas.read_frame_labels(self.store, clip_id)
        if labels is None:
            raise TrainerError(
                f"clip {clip_id} of store {self.store} has no frame labels, though its "
                "manifest row gives fake segments; re-ingest the clip"
            )
        if any(len(v) != num_frames for v in labels.values()):
            raise TrainerError(
                f"clip {clip_id} of store {self.store}: its frame labels do not have its "
                f"{num_frames} frames; re-ingest the clip"
            )
        self.cache[clip_id] = labels
        if len(self.cache) > LABEL_CACHE:
            self.cache.popitem(last=False)
        return labels

    def window(self, clip_id: str, num_frames: int, start: int, window: int) -> np.ndarray:
        """``fake`` labels of frames ``[start, start + window)`` as ``(window,)`` float32,
        0 after the clip's end (the padding, which the mask leaves out of the loss)."""
        fake = self.clip(clip_id, num_frames)[FAKE][start : start + window]
        out = np.zeros(window, dtype=np.float32)
        out[: len(fake)] = fake
        return out
