"""Clip-level metrics: window → clip aggregation, ACC, AUC, per-category and per-modality scores.

Conventions (the design brief's "honest evaluation"):

* a clip's probability is the mean of its windows' softmax probabilities;
* fake is the positive class everywhere (label 1, probability of class 1);
* ACC thresholds the fused head's probability at 0.5;
* balanced ACC is the mean of the real and fake recalls at that threshold
  (``sklearn.metrics.balanced_accuracy_score``): with FakeAVCeleb's 1:1:1:1
  categories three clips in four are fake, so answering "fake" for every clip
  scores ACC 0.75 but balanced ACC 0.5;
* AUC and AP (average precision, fake positive) come from probabilities
  (``roc_auc_score``, ``average_precision_score``), never from hard labels;
* EER is the equal error rate: the error where the false-positive rate equals the
  false-negative rate along the ROC curve, linearly interpolated between its points;
* when only one class is present AUC, AP and EER are undefined (and balanced ACC is
  the one class's recall): NaN here and ``null`` in JSON.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from sklearn.metrics import (
    average_precision_score,
    balanced_accuracy_score,
    log_loss,
    roc_auc_score,
    roc_curve,
)

from schemas import CATEGORIES

HEADS = ("audio", "video", "fused")


@dataclass
class ClipScores:
    """Per-clip results of one evaluation pass.

    ``prob`` maps each head (``audio``, ``video``, ``fused``) to ``(N,)`` fake
    probabilities; ``embedding`` is ``(N, 2C)`` (the mean fused embedding over a
    clip's windows); the label arrays are ``(N,)`` int and ``categories`` has N names.
    ``window_counts`` ``(N,)`` is how many window predictions each clip's score averages
    (empty when unknown, e.g. scores made by hand).
    """

    prob: dict[str, np.ndarray]
    embedding: np.ndarray
    label: np.ndarray
    audio_label: np.ndarray
    video_label: np.ndarray
    categories: list[str]
    clip_ids: list[str]
    window_counts: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))


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


def _two_classes(y: np.ndarray) -> bool:
    return y.size > 0 and np.unique(y).size == 2


def average_precision(y_true: np.ndarray, score: np.ndarray) -> float:
    """Average precision of fake (1) as positive; NaN when fewer than two classes are present."""
    y = np.asarray(y_true).astype(int)
    if not _two_classes(y):
        return math.nan
    return float(average_precision_score(y, np.asarray(score, dtype=np.float64)))


def equal_error_rate(y_true: np.ndarray, score: np.ndarray) -> float:
    """The error rate where FPR = FNR (= 1 - TPR) on the ROC curve; NaN for one class.

    The ROC's points are joined by straight lines and the crossing of FPR and FNR
    is found on the segment where ``FNR - FPR`` changes sign, so a perfect ranking
    gives 0.0, a reversed one 1.0 and a constant score 0.5.
    """
    y = np.asarray(y_true).astype(int)
    if not _two_classes(y):
        return math.nan
    fpr, tpr, _ = roc_curve(y, np.asarray(score, dtype=np.float64), drop_intermediate=False)
    gap = (1.0 - tpr) - fpr  # decreases from 1 to -1 along the curve
    i = int(np.argmax(gap <= 0))  # first point at or past the crossing
    if i == 0 or gap[i] == 0:
        return float(fpr[i])
    t = gap[i - 1] / (gap[i - 1] - gap[i])  # where the segment's gap reaches zero
    return float(fpr[i - 1] + t * (fpr[i] - fpr[i - 1]))


def balanced_accuracy(y_true: np.ndarray, prob: np.ndarray, threshold: float = 0.5) -> float:
    """Mean per-class recall of ``prob >= threshold``; NaN for no clips."""
    y = np.asarray(y_true).astype(int)
    if y.size == 0:
        return math.nan
    pred = (np.asarray(prob) >= threshold).astype(int)
    with warnings.catch_warnings():
        # One class only: sklearn warns and averages the recall of the class present.
        warnings.simplefilter("ignore")
        return float(balanced_accuracy_score(y, pred))


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

    Returns ``{"n", "acc", "balanced_acc", "auc", "ap", "eer", "log_loss",
    "per_category_acc": {RARV, FARV, RAFV, FAFV}, "audio_<m>" and "video_<m>" for
    <m> in acc, balanced_acc, auc, ap, eer, "category_counts", "windows",
    "undefined": [names of NaN metrics]}``. The unprefixed metrics are the fused
    head's against the overall label; each modality head is scored against its own
    label. ``windows`` is ``{"total", "min_per_clip", "max_per_clip"}`` (null when the
    counts are unknown): what the clip scores average.
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
        **_binary_metrics("", scores.label, fused),
        "log_loss": binary_log_loss(scores.label, fused),
        "per_category_acc": per_cat,
        **_binary_metrics("audio_", scores.audio_label, scores.prob["audio"]),
        **_binary_metrics("video_", scores.video_label, scores.prob["video"]),
        "category_counts": counts,
        "windows": _window_summary(scores.window_counts),
    }
    out["undefined"] = sorted(_nan_keys(out))
    return out


#: The scores of one head, by report key (prefixed ``audio_`` / ``video_`` per modality).
SCORES: dict[str, Callable[[np.ndarray, np.ndarray], float]] = {
    "acc": accuracy,
    "balanced_acc": balanced_accuracy,
    "auc": safe_auc,
    "ap": average_precision,
    "eer": equal_error_rate,
}


def _binary_metrics(prefix: str, y_true: np.ndarray, prob: np.ndarray) -> dict[str, float]:
    """ACC, balanced ACC, AUC, AP and EER of one head, keys prefixed (``audio_auc``)."""
    return {f"{prefix}{key}": score(y_true, prob) for key, score in SCORES.items()}


def _window_summary(counts: np.ndarray) -> dict[str, int] | None:
    counts = np.asarray(counts, dtype=np.int64)
    if counts.size == 0:
        return None
    return {
        "total": int(counts.sum()),
        "min_per_clip": int(counts.min()),
        "max_per_clip": int(counts.max()),
    }


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
