"""Fake segments (seconds of the source) -> per-frame labels of a clip's stored frames.

The rule (the store's contract, read by the trainer): stored frame ``t`` covers the
source time ``[(t + trimmed) / fps, (t + trimmed + 1) / fps)``, where ``trimmed`` is
the number of leading frames the silence trim removed (the manifest's
``trimmed_frames``) and ``fps`` the recipe's frame rate; its label is 1 when the
frame's midpoint ``(t + trimmed + 0.5) / fps`` lies in a segment ``[start, end)``.

Why these times: the decode resamples the source to ``fps`` on the container's
timeline starting at 0 (see :mod:`pipeline.transform`), the trim removes whole
frames from the front, and the length cut (``max_seconds``) removes frames from the
end only, so a cut clip's labels are those of its first ``T`` frames. The midpoint
makes a segment that starts or ends on a frame boundary label exactly the frames
inside it, and one that covers less than half of a frame leave it real.
"""

from __future__ import annotations

import numpy as np

from pipeline.datasets.source import ClipSource, Segments

#: Which segments of a clip each stored label comes from (``schemas.FRAME_LABELS``).
LABEL_SEGMENTS: dict[str, str] = {
    "fake": "fake_segments",
    "audio_fake": "audio_fake_segments",
    "video_fake": "video_fake_segments",
}


def segment_frame_labels(
    segments: Segments, num_frames: int, fps: float, trimmed_frames: int = 0
) -> np.ndarray:
    """``(num_frames,)`` uint8: 1 where the stored frame's midpoint lies in a segment."""
    midpoints = (np.arange(num_frames, dtype=np.float64) + trimmed_frames + 0.5) / fps
    labels = np.zeros(num_frames, dtype=bool)
    for start, end in segments:
        labels |= (midpoints >= start) & (midpoints < end)
    return labels.astype(np.uint8)


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
