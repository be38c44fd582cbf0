"""Clip-level metrics: window → clip aggregation, ACC, AUC, per-category and per-modality scores.

Conventions (the design brief's "honest evaluation"):

* a clip's probability is the mean of its windows' softmax probabilities;
* fake is the positive class everywhere (label 1, probability of class 1);
* ACC thresholds the fused head's probability at 0.5;
* AUC comes from probabilities (``sklearn.metrics.roc_auc_score``), never from hard labels;
* when only one class is present AUC is undefined: it is NaN here and ``null`` in JSON.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from sklearn.metrics import log_loss, roc_auc_score

from schemas import CATEGORIES

HEADS = ("audio", "video", "fused")


@dataclass
class ClipScores:
    """Per-clip results of one evaluation pass.

    ``prob`` maps each head (``audio``, ``video``, ``fused``) to ``(N,)`` fake
    probabilities; ``embedding`` is ``(N, 2C)`` (the mean fused embedding over a
    clip's windows); the label arrays are ``(N,)`` int and ``categories`` has N names.
    """

    prob: dict[str, np.ndarray]
    embedding: np.ndarray
    label: np.ndarray
    audio_label: np.ndarray
    video_label: np.ndarray
    categories: list[str]
    clip_ids: list[str]


def aggregate_windows(
    clip_index: np.ndarray, values: np.ndarray, num_clips: int
) -> tuple[np.ndarray, np.ndarray]:
    """Mean of window ``values`` ``(W, ...)`` per clip → ``((num_clips, ...), counts (num_clips,))``.

    Clips with no window get NaN (the caller decides whether that is an error).
    """
    clip_index = np.asarray(clip_index, dtype=np.int64)
    values = np.asarray(values, dtype=np.float64)
    if clip_index.shape[0] != values.shape[0]:
        raise ValueError("clip_index and values must have the same length")
    sums = np.zeros((num_clips, *values.shape[1:]), dtype=np.float64)
    np.add.at(sums, clip_index, values)
    counts = np.bincount(clip_index, minlength=num_clips)
    with np.errstate(invalid="ignore", divide="ignore"):
        means = sums / counts.reshape(-1, *([1] * (values.ndim - 1)))
    return means, counts


def safe_auc(y_true: Sequence[int] | np.ndarray, score: Sequence[float] | np.ndarray) -> float:
    """ROC AUC with fake (1) as positive; NaN when fewer than two classes are present."""
    y = np.asarray(y_true).astype(int)
    if y.size == 0 or np.unique(y).size < 2:
        return math.nan
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return float(roc_auc_score(y, np.asarray(score, dtype=np.float64)))


def accuracy(y_true: np.ndarray, prob: np.ndarray, threshold: float = 0.5) -> float:
    y = np.asarray(y_true).astype(int)
    if y.size == 0:
        return math.nan
    return float(np.mean((np.asarray(prob) >= threshold).astype(int) == y))


def binary_log_loss(y_true: np.ndarray, prob: np.ndarray) -> float:
    """Mean binary cross-entropy of probabilities of class 1 (fake); NaN for no clips.

    Probabilities are clipped to ``[1e-7, 1 - 1e-7]`` so one confident mistake counts
    heavily but finitely.
    """
    y = np.asarray(y_true).astype(int)
    if y.size == 0:
        return math.nan
    p = np.clip(np.asarray(prob, dtype=np.float64), 1e-7, 1 - 1e-7)
    return float(log_loss(y, p, labels=[0, 1]))


def category_confusion(scores: ClipScores) -> dict[str, list[int]]:
    """Per category: ``[clips predicted real, clips predicted fake]`` by the fused head."""
    pred = scores.prob["fused"] >= 0.5
    cats = np.asarray(scores.categories)
    return {c: [int(np.sum(~pred[cats == c])), int(np.sum(pred[cats == c]))] for c in CATEGORIES}


def compute_metrics(scores: ClipScores) -> dict[str, Any]:
    """The report block of one split.

    Returns ``{"n", "acc", "auc", "log_loss", "per_category_acc": {RARV, FARV, RAFV,
    FAFV}, "audio_auc", "video_auc", "audio_acc", "video_acc", "category_counts",
    "undefined": [names of NaN metrics]}``; ``log_loss`` is the fused head's.
    """
    fused = scores.prob["fused"]
    cats = np.asarray(scores.categories)
    per_cat = {}
    counts = {}
    for c in CATEGORIES:
        sel = cats == c
        counts[c] = int(sel.sum())
        per_cat[c] = accuracy(scores.label[sel], fused[sel])
    out: dict[str, Any] = {
        "n": len(scores.label),
        "acc": accuracy(scores.label, fused),
        "auc": safe_auc(scores.label, fused),
        "log_loss": binary_log_loss(scores.label, fused),
        "per_category_acc": per_cat,
        "audio_auc": safe_auc(scores.audio_label, scores.prob["audio"]),
        "video_auc": safe_auc(scores.video_label, scores.prob["video"]),
        "audio_acc": accuracy(scores.audio_label, scores.prob["audio"]),
        "video_acc": accuracy(scores.video_label, scores.prob["video"]),
        "category_counts": counts,
    }
    out["undefined"] = sorted(_nan_keys(out))
    return out


def _nan_keys(data: dict[str, Any], prefix: str = "") -> list[str]:
    keys = []
    for key, value in data.items():
        if isinstance(value, dict):
            keys += _nan_keys(value, f"{prefix}{key}.")
        elif isinstance(value, float) and math.isnan(value):
            keys.append(f"{prefix}{key}")
    return keys


def json_safe(value: Any) -> Any:
    """Replace NaN / inf floats by None (``null``) and numpy / torch scalars by Python ones,
    recursively."""
    if isinstance(value, dict):
        return {str(k): json_safe(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [json_safe(v) for v in value]
    if isinstance(value, np.generic) or getattr(value, "ndim", None) == 0:
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value
