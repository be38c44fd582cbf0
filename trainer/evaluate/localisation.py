"""Temporal localisation: per-frame scores from window scores, segment proposals, AP and AR.

Rules (what ``mscct-train eval`` reports for clips with frame labels):

* **Per-frame scores.** Evaluation scores every window of :func:`trainer.data.dataset.eval_starts`
  (stride ``eval_stride``, default the window: the windows tile the clip, and the
  last one is flush with its end, so every frame is covered at least once). Frame ``t``
  gets the mean of the scores of the windows covering it: a window's fake probability
  (one value for all its frames, from the fused, audio or video head), or, with a
  frame head, the window's per-frame probability at ``t``.
* **Proposals.** The maximal runs of frames whose fused per-frame score is at least
  :data:`THRESHOLD` (0.5, the clip decision's threshold) are the clip's proposed fake
  segments; a run's confidence is the mean score of its frames. Times are seconds of
  the source clip, as the datasets give their segments: stored frame ``t`` covers
  ``[(t + trimmed_frames) / fps, (t + trimmed_frames + 1) / fps)``, so a run of frames
  ``a .. b`` is ``[(a + trimmed) / fps, (b + 1 + trimmed) / fps]``. Proposals are listed
  by decreasing confidence (AR@k reads the first k).
* **AP@IoU and AR@k** are AV-Deepfake1M's, computed by its package's own evaluation
  (``avdeepfake1m.evaluation.ap_ar_1d``, the ``eval`` extra) on those proposals against
  the manifest's ``fake_segments``: AP at IoU 0.5, 0.75, 0.9 and 0.95, AR at 50, 30,
  20, 10 and 5 proposals averaged over IoU 0.5:0.05:0.95, as the benchmark reports them.
  Two facts of that implementation show on small sets: its precision-recall curve starts
  at the first true positive's recall, so perfect proposals for ``n`` segments give
  AP ``1 - 1/n``; and it cannot read an empty proposal list, so a clip with no run above
  the threshold is given one placeholder ``[0, 0, 0]`` (confidence 0, zero length) in
  the package's input only: it overlaps no segment and ranks last, which leaves AP as
  it is and counts that clip's segments as missed in AR.

Without the package only the frame-level AUCs are reported, and the report says why.
"""

from __future__ import annotations

import importlib.machinery
import importlib.util
import json
import math
import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np

THRESHOLD = 0.5
AP_IOUS = (0.5, 0.75, 0.9, 0.95)
AR_PROPOSALS = (50, 30, 20, 10, 5)
AR_IOUS = tuple(round(0.5 + 0.05 * i, 2) for i in range(10))  # 0.5, 0.55, ..., 0.95
PACKAGE_HINT = "the AP/AR localisation metrics need the avdeepfake1m package: " + (
    "pip install --no-deps 'avdeepfake1m==0.0.4'"
)

Segment = tuple[float, float]
Proposal = tuple[float, float, float]  # start_s, end_s, confidence


def frame_scores(
    starts: Sequence[int] | np.ndarray, window: int, num_frames: int, values: np.ndarray
) -> np.ndarray:
    """Per-frame scores of one clip: each frame's mean over the windows covering it.

    Args:
        starts: ``(W,)`` first frame of each scored window.
        window: frames per window (a window may run past the clip's end: padding).
        num_frames: ``T`` of the clip.
        values: ``(W,)`` one score per window, or ``(W, window)`` one per window frame.

    Returns:
        ``(T,)`` float64; NaN for a frame no window covers (eval windows cover all).
    """
    values = np.asarray(values, dtype=np.float64)
    sums = np.zeros(num_frames, dtype=np.float64)
    counts = np.zeros(num_frames, dtype=np.int64)
    for i, start in enumerate(starts):
        stop = min(start + window, num_frames)
        sums[start:stop] += values[i] if values.ndim == 1 else values[i, : stop - start]
        counts[start:stop] += 1
    with np.errstate(invalid="ignore", divide="ignore"):
        return sums / counts


def propose_segments(
    scores: np.ndarray, fps: float, trimmed_frames: int = 0, threshold: float = THRESHOLD
) -> list[Proposal]:
    """The runs of ``scores`` ``(T,)`` at or above ``threshold`` as ``(start_s, end_s,
    confidence)`` in seconds of the source clip, by decreasing confidence (module rules)."""
    above = np.concatenate([[False], np.asarray(scores) >= threshold, [False]])
    edges = np.flatnonzero(np.diff(above.astype(np.int8)))
    runs = zip(edges[::2], edges[1::2], strict=True)  # [first, stop) frame of each run
    found = [
        (
            (int(a) + trimmed_frames) / fps,
            (int(b) + trimmed_frames) / fps,
            float(np.mean(scores[a:b])),
        )
        for a, b in runs
    ]
    return sorted(found, key=lambda p: -p[2])


def load_evaluation() -> ModuleType | None:
    """AV-Deepfake1M's compiled evaluation module, or None when the package is absent.

    The package's ``__init__`` imports its video loader (OpenCV, torchvision, Lightning),
    which the trainer never imports; its AP/AR functions live in one compiled module that
    needs none of that, so that module is loaded from the installed package on its own.
    """
    spec = importlib.util.find_spec("avdeepfake1m")
    if spec is None or not spec.submodule_search_locations:
        return None
    for folder in spec.submodule_search_locations:
        for binary in sorted(Path(folder).glob("_evaluation.*")):
            if not binary.name.endswith(tuple(importlib.machinery.EXTENSION_SUFFIXES)):
                continue
            loader = importlib.machinery.ExtensionFileLoader(
                "avdeepfake1m._evaluation", str(binary)
            )
            found = importlib.util.spec_from_file_location(loader.name, binary, loader=loader)
            if found is None:
                continue
            module = importlib.util.module_from_spec(found)
            loader.exec_module(module)
            return module
    return None


def ap_ar(
    proposals: Mapping[str, Sequence[Proposal]],
    segments: Mapping[str, Sequence[Segment]],
    evaluation: ModuleType | None = None,
) -> dict[str, Any] | None:
    """AP@IoU and AR@k of ``proposals`` against the true ``segments`` (seconds, per clip
    id; every clip of ``segments`` must be in ``proposals``), by the AV-Deepfake1M
    package; None when it is not installed.

    Returns:
        ``{"ap": {"0.5": v, ...}, "ar": {"50": v, ...}}``; an AP is NaN when no clip
        has a segment (no positive to find).
    """
    evaluation = evaluation or load_evaluation()
    if evaluation is None:
        return None
    # The package's format: {file: [[confidence, start, end], ...]}, times / fps (1 here:
    # seconds), and a list of {file, fake_segments} records.
    predicted = {
        clip: [[c, s, e] for s, e, c in proposals[clip]] or [[0.0, 0.0, 0.0]] for clip in segments
    }
    truth = [
        {"file": clip, "fake_segments": [list(s) for s in segs]} for clip, segs in segments.items()
    ]
    with tempfile.TemporaryDirectory(prefix="mscct-loc-") as tmp:
        pred_path, truth_path = Path(tmp) / "proposals.json", Path(tmp) / "labels.json"
        pred_path.write_text(json.dumps(predicted))
        truth_path.write_text(json.dumps(truth))
        result = evaluation.ap_ar_1d(
            str(pred_path), str(truth_path), "file", "fake_segments", 1.0,
            list(AP_IOUS), list(AR_PROPOSALS), list(AR_IOUS),
        )  # fmt: skip
    ap = {str(iou): _value(result["ap"], iou) for iou in AP_IOUS}
    ar = {str(k): float(result["ar"][k]) for k in AR_PROPOSALS}
    return {"ap": ap, "ar": ar}


def _value(table: Mapping[float, float], iou: float) -> float:
    """The entry of ``iou`` in the package's result, keyed by its float32 rounding."""
    for key, value in table.items():
        if math.isclose(key, iou, rel_tol=1e-6):
            return float(value)
    raise KeyError(iou)
