"""The frame labels of one clip, by the store's frame-label rule.

The rule itself (which stored frame a fake segment labels) is part of the store's
contract and lives in :mod:`schemas.frame_label_rule`; this module applies it to a
dataset adapter's :class:`~pipeline.datasets.source.ClipSource`.
"""

from __future__ import annotations

import numpy as np

from pipeline.datasets.source import ClipSource
from schemas.frame_label_rule import LABEL_SEGMENTS, segment_frame_labels

__all__ = ["LABEL_SEGMENTS", "clip_frame_labels", "segment_frame_labels"]


def clip_frame_labels(
    clip: ClipSource, num_frames: int, fps: float, trimmed_frames: int = 0
) -> dict[str, np.ndarray] | None:
    """The frame labels ``schemas.write_clip`` stores for ``clip``, or None when its dataset
    gives no segments (``fake_segments`` is None: a clip-level dataset).

    Returns ``{"fake", "audio_fake", "video_fake"}`` -> ``(num_frames,)`` uint8.

    Raises:
        ValueError: the clip gives fake segments but not the per-modality ones (every
            adapter fills all three or none).
    """
    if clip.fake_segments is None:
        return None
    out = {}
    for name, attribute in LABEL_SEGMENTS.items():
        segments = getattr(clip, attribute)
        if segments is None:
            raise ValueError(f"clip {clip.clip_id} has fake_segments but no {attribute}")
        out[name] = segment_frame_labels(segments, num_frames, fps, trimmed_frames)
    return out
