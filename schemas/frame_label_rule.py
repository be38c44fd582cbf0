"""The frame-label rule: fake segments (seconds of the source) -> labels of stored frames.

This is part of the store's contract (the pipeline writes labels by it, the trainer
and the localisation metrics read them by it), so it lives in ``schemas``.

Stored frame ``t`` covers the source time ``[(t + trimmed) / fps, (t + trimmed + 1) / fps)``,
where ``trimmed`` is the number of leading frames the silence trim removed (the
manifest's ``trimmed_frames``) and ``fps`` the recipe's frame rate; its label is 1 when
the frame's midpoint ``(t + trimmed + 0.5) / fps`` lies in a segment ``[start, end)``.

Why these times: the decode resamples the source to ``fps`` on the container's
timeline starting at 0, the trim removes whole frames from the front, and the length
cut (``max_seconds``) removes frames from the end only, so a cut clip's labels are
those of its first ``T`` frames. The midpoint makes a segment that starts or ends on a
frame boundary label exactly the frames inside it, and one that covers less than half
of a frame leaves it real.
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np

#: Which segments of a clip each stored label comes from (``schemas.FRAME_LABELS``).
LABEL_SEGMENTS: dict[str, str] = {
    "fake": "fake_segments",
    "audio_fake": "audio_fake_segments",
    "video_fake": "video_fake_segments",
}


def segment_frame_labels(
    segments: Iterable[tuple[float, float]], num_frames: int, fps: float, trimmed_frames: int = 0
) -> np.ndarray:
    """``(num_frames,)`` uint8: 1 where the stored frame's midpoint lies in a segment."""
    midpoints = (np.arange(num_frames, dtype=np.float64) + trimmed_frames + 0.5) / fps
    labels = np.zeros(num_frames, dtype=bool)
    for start, end in segments:
        labels |= (midpoints >= start) & (midpoints < end)
    return labels.astype(np.uint8)
