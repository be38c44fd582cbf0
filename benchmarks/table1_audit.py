"""Table 1's shortcut audits: every run's chosen checkpoint audited as it is trained.

``mscct-train audit`` (:func:`trainer.audit.run.audit_checkpoint`) is run on the test
part right after a run is tested, and its numbers are kept in the run's record, so the
audit of every Table 1 run survives without its checkpoint (a run record is a few KB; a
checkpoint is MBs, and the checkpoints of 35 runs are not results to commit).

The headline (``benchmarks.table1_markdown``'s second table, :data:`HEADLINE`) is the
fused head under the perturbations a detector that relies on audio-visual consistency
should notice, as shares of verdicts that flip
(docs/audit.md says how to read them): a real clip whose voice is swapped for another
identity's, whose audio is 5 frames late, whose video is frozen, or whose audio is
silenced should be called fake (``real_flipped``); AUC under each says whether the
detector still ranks fakes above reals.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from benchmarks.bench_train import mean_std
from trainer.audit.report import AUDIT_SCORES as SCORES
from trainer.evaluate.metrics import HEADS

#: The headline's columns: (header, perturbation, number), all of the fused head.
HEADLINE: tuple[tuple[str, str, str], ...] = (
    ("AUC as stored (%)", "baseline", "auc"),
    ("Swapped voice: real→fake (%)", "swap_audio", "real_flipped"),
    ("Swapped voice: AUC (%)", "swap_audio", "auc"),
    ("Audio 5 frames late: real→fake (%)", "shift_audio_+5", "real_flipped"),
    ("Video frozen: real→fake (%)", "freeze_video", "real_flipped"),
    ("Audio silenced: real→fake (%)", "silence_audio", "real_flipped"),
    ("Jitter: AUC (%)", "jitter", "auc"),
)


def audit_run(run_dir: Path, store: Path, split: str, seed: int = 0) -> dict[str, Any]:
    """The audit of ``run_dir``'s chosen checkpoint (``checkpoints/best.pt``) on the
    test part: ``{"n", "added_frames", "leading_silence_frames", "skipped",
    "perturbations": {name: {head: {auc, balanced_acc, real_flipped, fake_flipped}}}}``."""
    from trainer.audit.run import audit_checkpoint

    report = audit_checkpoint(
        run_dir / "checkpoints" / "best.pt", store, split, "test", seed, log=lambda *_: None
    )
    perturbations = report["perturbations"]
    return {
        "n": report["n"],
        "added_frames": report["added_frames"],
        "leading_silence_frames": report["leading_silence_frames"],
        "skipped": {name: p["skipped"] for name, p in perturbations.items() if p["skipped"]},
        "perturbations": {
            name: {head: {k: p[head][k] for k in SCORES} for head in HEADS}
            for name, p in perturbations.items()
        },
    }


def summarize(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """Mean ± sample std over the runs' audits, by perturbation, head and number."""
    audits = [run["audit"] for run in runs]
    names = list(audits[0]["perturbations"]) if audits else []
    return {
        name: {
            head: {
                key: mean_std([a["perturbations"][name][head][key] for a in audits])
                for key in SCORES
            }
            for head in HEADS
        }
        for name in names
    }
