"""The numbers of ``mscct-train audit`` and their table.

For each perturbation and each head (``audio``, ``video``, ``fused``), against that
head's label as ``eval`` scores it (``audio_label``, ``video_label``, ``label``):

* ``auc``: ROC AUC of the perturbed clips' scores (the labels stay the clips' own);
* ``balanced_acc``: the mean of the real and fake recalls at the trainer's decision
  threshold, :data:`THRESHOLD` (:func:`trainer.evaluate.metrics.balanced_accuracy`);
* ``real_flipped``: of the real clips the baseline calls real, the share called fake
  once perturbed; ``fake_flipped``: of the fake clips the baseline calls fake, the share
  called real. None where the baseline calls no clip of that class right.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from trainer.evaluate.metrics import HEADS, ClipScores, balanced_accuracy, json_safe, safe_auc

#: The decision threshold of every head (``trainer.evaluate.metrics``: ACC thresholds at 0.5).
THRESHOLD = 0.5
#: The numbers of one head under one perturbation, in the table's order.
AUDIT_SCORES = ("auc", "balanced_acc", "real_flipped", "fake_flipped")

#: What each perturbation changes, for the report and the table.
DESCRIPTIONS = {
    "baseline": "the clips as stored",
    "swap_audio": "audio of a real clip of another identity",
    "shift_audio_-5": "audio 5 frames early",
    "shift_audio_-2": "audio 2 frames early",
    "shift_audio_+2": "audio 2 frames late",
    "shift_audio_+5": "audio 5 frames late",
    "silence_audio": "audio replaced by silence",
    "freeze_video": "video frozen on its middle frame",
    "cut_silence": "leading silence cut from both streams",
    "add_silence": "leading silence added, first frame held",
    "jitter": "a few frames dropped and repeated in both streams",
}


def head_labels(scores: ClipScores) -> dict[str, np.ndarray]:
    """The label each head is scored against, ``(N,)`` int: as ``eval``'s."""
    return {"audio": scores.audio_label, "video": scores.video_label, "fused": scores.label}


def flipped(label: np.ndarray, base: np.ndarray, prob: np.ndarray, cls: int) -> float | None:
    """Of the clips of class ``cls`` whose ``base`` score (``(N,)``) calls them right, the
    share whose perturbed score ``prob`` ``(N,)`` calls them the other class."""
    right = (label == cls) & ((base >= THRESHOLD) == bool(cls))
    if not right.any():
        return None
    return float(np.mean((prob[right] >= THRESHOLD) != bool(cls)))


def head_scores(label: np.ndarray, base: np.ndarray, prob: np.ndarray) -> dict[str, Any]:
    """:data:`AUDIT_SCORES` of one head: ``label``, baseline and perturbed scores ``(N,)``."""
    return {
        "auc": safe_auc(label, prob),
        "balanced_acc": balanced_accuracy(label, prob, THRESHOLD),
        "real_flipped": flipped(label, base, prob, 0),
        "fake_flipped": flipped(label, base, prob, 1),
    }


def audit_report(
    provenance: Mapping[str, Any], scores: Mapping[str, ClipScores], skipped: Mapping[str, str]
) -> dict[str, Any]:
    """The audit's report: ``provenance``, ``n``, ``threshold`` and ``perturbations``,
    by name (:data:`DESCRIPTIONS`' order): ``{"description", "skipped" (None or why),
    "audio" | "video" | "fused": {auc, balanced_acc, real_flipped, fake_flipped}}`` (the
    heads' numbers None where skipped). ``scores`` holds the baseline's."""
    base = scores["baseline"]
    labels = head_labels(base)
    perturbations: dict[str, Any] = {}
    for name, description in DESCRIPTIONS.items():
        entry: dict[str, Any] = {"description": description, "skipped": skipped.get(name)}
        for head in HEADS:
            if name in scores:
                prob = scores[name].prob[head]
                entry[head] = head_scores(labels[head], base.prob[head], prob)
            else:
                entry[head] = dict.fromkeys(AUDIT_SCORES)
        perturbations[name] = entry
    report = {**provenance, "n": len(base.label), "threshold": THRESHOLD}
    return json_safe({**report, "perturbations": perturbations})


def print_audit(report: Mapping[str, Any], title: str) -> None:
    """The report as a table: a row per perturbation, the four numbers of each head."""
    from rich.console import Console
    from rich.table import Table

    table = Table(title=title)
    table.add_column("perturbation", no_wrap=True)
    short = {"auc": "AUC", "balanced_acc": "bal ACC", "real_flipped": "real→fake",
             "fake_flipped": "fake→real"}  # fmt: skip
    for head in ("fused", "audio", "video"):
        for key in AUDIT_SCORES:
            table.add_column(f"{head}\n{short[key]}", justify="right")
    for name, entry in report["perturbations"].items():
        cells = [_fmt(entry[head][key]) for head in ("fused", "audio", "video")
                 for key in AUDIT_SCORES]  # fmt: skip
        table.add_row(name if entry["skipped"] is None else f"{name} (skipped)", *cells)
    console = Console(width=max(160, Console().width))
    console.print(table)
    for name, entry in report["perturbations"].items():
        if entry["skipped"]:
            console.print(f"{name} skipped: {entry['skipped']}", markup=False)
    silence = report["leading_silence_frames"]
    console.print(
        f"leading silence (frames, median): real {_fmt(silence['real']['median'], 1)}, "
        f"fake {_fmt(silence['fake']['median'], 1)}; add_silence adds "
        f"{report['added_frames']} frames; docs/audit.md explains how to read this table",
        markup=False,
    )


def _fmt(value: float | None, digits: int = 3) -> str:
    return "n/a" if value is None else f"{value:.{digits}f}"
