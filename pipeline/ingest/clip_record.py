"""The manifest row of a clip before it is processed: every label its dataset gives.

Its own module because both the ingest (which fills the row in) and the manifest book
(which compares a committed row's labels with the scan's on resume) build it.
"""

from __future__ import annotations

from typing import Any

import schemas
from pipeline.datasets import ClipSource, Segments
from schemas import STATUS_FAILED


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
