"""Per-frame scores, segment proposals, AV-Deepfake1M's AP/AR, and the frame report of a store."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
from frame_fixtures import build_segment_store, segment_frames

from trainer.data.dataset import WindowDataset, split_clips
from trainer.evaluate.frame_eval import WindowOutputs, frame_report
from trainer.evaluate.localisation import (
    AP_IOUS,
    AR_PROPOSALS,
    ap_ar,
    frame_scores,
    load_evaluation,
    propose_segments,
)

# CI installs the package (make install), so there a missing package fails the tests.
needs_package = pytest.mark.skipif(
    load_evaluation() is None and not os.environ.get("CI"),
    reason="the avdeepfake1m package is not installed (make install adds it)",
)


def test_each_frame_gets_the_mean_of_the_windows_covering_it() -> None:
    # Windows of 4 frames at 0, 2 and 4 over a 7-frame clip (the last one padded).
    scores = frame_scores([0, 2, 4], 4, 7, np.array([0.0, 1.0, 0.5]))
    np.testing.assert_allclose(scores, [0, 0, 0.5, 0.5, 0.75, 0.75, 0.5])
    per_frame = np.arange(12, dtype=float).reshape(3, 4)  # window i, frame j: 4i + j
    scores = frame_scores([0, 2, 4], 4, 7, per_frame)
    np.testing.assert_allclose(
        scores, [0, 1, (2 + 4) / 2, (3 + 5) / 2, (6 + 8) / 2, (7 + 9) / 2, 10]
    )


def test_proposals_are_runs_above_the_threshold_in_source_seconds() -> None:
    scores = np.array([0.1, 0.6, 0.9, 0.2, 0.5, 0.9, 0.7, 0.4, 0.2, 0.55])
    found = propose_segments(scores, fps=10, trimmed_frames=5)
    # Runs [1, 3), [4, 7) and [9, 10), shifted by 5 trimmed frames, by decreasing confidence.
    assert found == [
        pytest.approx((0.6, 0.8, 0.75)),
        pytest.approx((0.9, 1.2, 0.7)),
        pytest.approx((1.4, 1.5, 0.55)),
    ]
    assert found[1][2] == pytest.approx((0.5 + 0.9 + 0.7) / 3)
    assert propose_segments(np.full(5, 0.49), fps=25) == []


@needs_package
def test_proposals_equal_to_the_segments_are_all_found() -> None:
    segments = {f"clip{i}": [(1.0 + i, 2.0 + i)] for i in range(4)}
    exact = {clip: [(s, e, 0.9 - 0.1 * i)] for i, (clip, [(s, e)]) in enumerate(segments.items())}
    result = ap_ar(exact, segments)
    assert result is not None
    assert result["ar"] == {str(k): pytest.approx(1.0) for k in AR_PROPOSALS}
    # The package's precision-recall curve starts at the first true positive's recall:
    # n perfectly found segments give 1 - 1/n (1.0 in the limit of a real test set).
    assert result["ap"] == {str(iou): pytest.approx(0.75) for iou in AP_IOUS}
    # Proposals that overlap each segment with IoU 0.78: found at 0.5 and 0.75 only.
    short = {clip: [(s, s + 0.78, c)] for clip, [(s, _, c)] in exact.items()}
    result = ap_ar(short, segments)
    assert result is not None
    assert result["ap"]["0.75"] == pytest.approx(0.75) and result["ap"]["0.9"] == 0.0
    assert result["ar"]["5"] == pytest.approx(0.6)  # IoU 0.78 clears 6 of the 10 thresholds


@needs_package
def test_a_clip_without_proposals_counts_its_segments_as_missed() -> None:
    segments = {"a": [(1.0, 2.0)], "b": [(0.0, 0.5)], "real": []}
    proposals = {"a": [(1.0, 2.0, 0.9)], "b": [], "real": []}
    result = ap_ar(proposals, segments)
    assert result is not None
    assert result["ar"]["50"] == pytest.approx(0.5)  # a found, b missed


def _window_outputs(dataset: WindowDataset, fake_frames: dict[str, np.ndarray]) -> WindowOutputs:
    """What a perfect window model outputs: each window's score is its frames' label."""
    clip_index = np.array([c for c, _ in dataset.windows])
    fused = []
    for clip, start in dataset.windows:
        labels = fake_frames[dataset.clips[clip].clip_id][start : start + dataset.window]
        fused.append(float(labels.mean()))
    prob = np.stack([np.zeros(len(fused)), np.zeros(len(fused)), fused], axis=1)
    return WindowOutputs(clip_index, prob, np.zeros((len(fused), 2)), None)


def test_frame_report_scores_the_stored_frame_labels(tmp_path: Path) -> None:
    trimmed, fps, frames = 5, 25, 24
    store = build_segment_store(
        tmp_path / "s",
        frames=frames,
        trimmed=trimmed,
        fps=fps,
        counts={"train": 1, "val": 1, "test": 2},
    )
    clips = split_clips(store)["test"]
    # Windows of one frame: a perfect window score is a perfect frame score.
    dataset = WindowDataset(store, clips, 1, train=False)
    truth = {}
    for clip in clips:
        fake = np.zeros(frames)
        if clip.label:
            a, b = segment_frames(int(clip.clip_id[3:]), frames)
            fake[a:b] = 1
        truth[clip.clip_id] = fake
    report = frame_report(dataset, _window_outputs(dataset, truth), fps)
    assert report is not None
    assert report["clips"] == 4 and report["frames"] == 4 * frames
    assert report["auc"] == pytest.approx(1.0)
    assert report["score"] == "mean of window scores"
    for clip in clips:
        found = report["proposals"][clip.clip_id]
        if not clip.label:
            assert found == []
            continue
        a, b = segment_frames(int(clip.clip_id[3:]), frames)
        assert found == [pytest.approx([(a + trimmed) / fps, (b + trimmed) / fps, 1.0])]
    if load_evaluation() is not None:
        assert report["ar"]["5"] == pytest.approx(1.0) and report["note"] is None
    else:
        assert report["ap"] is None and "avdeepfake1m" in report["note"]


def test_no_frame_report_without_frame_labels(tmp_path: Path) -> None:
    from trainer_fixtures import build_store

    store = build_store(
        tmp_path / "s", crop_size=24, frames=8, counts={"train": 1, "val": 1, "test": 1}
    )
    dataset = WindowDataset(store, split_clips(store)["test"], 8, train=False)
    outputs = WindowOutputs(np.arange(4), np.zeros((4, 3)), np.zeros((4, 2)), None)
    assert frame_report(dataset, outputs, 25) is None
