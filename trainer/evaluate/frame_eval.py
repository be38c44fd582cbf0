"""Frame-level evaluation of one eval pass: frame AUCs, segment proposals, AP and AR.

Applies :mod:`trainer.evaluate.localisation`'s rules to the clips of an evaluation that have
frame labels (:mod:`trainer.data.frame_labels`); clips without them are scored at the clip
level only.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

import schemas
from trainer.data.dataset import WindowDataset
from trainer.data.frame_labels import FAKE, FrameLabelReader
from trainer.evaluate.localisation import (
    PACKAGE_HINT,
    THRESHOLD,
    Proposal,
    Segment,
    ap_ar,
    frame_scores,
    propose_segments,
)
from trainer.evaluate.metrics import safe_auc

#: The per-frame label each head's frame scores are compared with.
HEAD_LABELS = {"fused": FAKE, "audio": "audio_fake", "video": "video_fake"}


@dataclass
class WindowOutputs:
    """The model's outputs for every window of an eval dataset, in its window order."""

    clip_index: np.ndarray  # (W,) index into the dataset's clips
    prob: np.ndarray  # (W, 3) fake probability of the audio, video and fused heads
    embedding: np.ndarray  # (W, 2C)
    frame_prob: np.ndarray | None  # (W, window) the frame head's fake probability, or None


def frame_report(
    dataset: WindowDataset, outputs: WindowOutputs, fps: float
) -> dict[str, Any] | None:
    """Frame metrics of the dataset's clips that have frame labels; None when none has.

    Returns ``{"clips", "frames", "auc", "audio_auc", "video_auc", "score", "threshold",
    "ap", "ar", "note", "proposals": {clip_id: [[start_s, end_s, confidence], ...]}}``;
    ``ap``/``ar`` are None (and ``note`` says why) without the AV-Deepfake1M package.
    """
    chosen = [i for i, clip in enumerate(dataset.clips) if clip.has_frame_labels]
    if not chosen:
        return None
    starts = np.array([start for _, start in dataset.windows], dtype=np.int64)
    columns = _manifest_columns(dataset, "trimmed_frames", "fake_segments")
    labels = FrameLabelReader(dataset.store)
    scored: dict[str, list[np.ndarray]] = {head: [] for head in HEAD_LABELS}
    truth: dict[str, list[np.ndarray]] = {head: [] for head in HEAD_LABELS}
    proposals: dict[str, list[Proposal]] = {}
    segments: dict[str, list[Segment]] = {}
    for index in chosen:
        clip = dataset.clips[index]
        rows = np.flatnonzero(outputs.clip_index == index)
        clip_labels = labels.clip(clip.clip_id, clip.num_frames)
        per_head = _clip_frame_scores(dataset, outputs, rows, starts[rows], clip.num_frames)
        for head, label in HEAD_LABELS.items():
            scored[head].append(per_head[head])
            truth[head].append(clip_labels[label])
        trimmed, given = columns[clip.clip_id]
        proposals[clip.clip_id] = propose_segments(per_head["fused"], fps, trimmed or 0)
        segments[clip.clip_id] = [(float(s), float(e)) for s, e in given or []]
    aucs = {
        f"{'' if head == 'fused' else head + '_'}auc": safe_auc(
            np.concatenate(truth[head]), np.concatenate(scored[head])
        )
        for head in HEAD_LABELS
    }
    localisation = ap_ar(proposals, segments)
    return {
        "clips": len(chosen),
        "frames": int(sum(len(t) for t in truth["fused"])),
        **aucs,
        "score": "frame head" if outputs.frame_prob is not None else "mean of window scores",
        "threshold": THRESHOLD,
        "ap": None if localisation is None else localisation["ap"],
        "ar": None if localisation is None else localisation["ar"],
        "note": PACKAGE_HINT if localisation is None else None,
        "proposals": {clip: [list(p) for p in found] for clip, found in proposals.items()},
    }


def _clip_frame_scores(
    dataset: WindowDataset,
    outputs: WindowOutputs,
    rows: np.ndarray,
    starts: np.ndarray,
    num_frames: int,
) -> dict[str, np.ndarray]:
    """``(T,)`` per-frame scores of one clip per head, from its windows ``rows``."""
    out = {
        head: frame_scores(starts, dataset.window, num_frames, outputs.prob[rows, column])
        for column, head in enumerate(("audio", "video", "fused"))
    }
    if outputs.frame_prob is not None:
        out["fused"] = frame_scores(starts, dataset.window, num_frames, outputs.frame_prob[rows])
    return out


def _manifest_columns(dataset: WindowDataset, *names: str) -> dict[str, tuple[Any, ...]]:
    """The manifest's ``names`` columns of every clip, by clip id."""
    table = schemas.read_manifest(dataset.store).select(["clip_id", *names]).to_pylist()
    return {row["clip_id"]: tuple(row[n] for n in names) for row in table}
