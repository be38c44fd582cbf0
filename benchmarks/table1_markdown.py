"""Table 1 as Markdown, rendered from :mod:`benchmarks.bench_table1`'s JSON (never typed).

    .venv/bin/python -m benchmarks.table1_markdown [benchmarks/results/table1.json] [--out FILE]

Rows are the detectors in the result's order (``msct`` first); columns ACC and AUC as
in the paper, then balanced ACC, AP, EER, the audio and video heads' AUC, parameters
and seconds per epoch. Scores are percentages, mean ± sample std over the seeds (the
std left out when one seed was run); ``—`` marks a head the detector lacks or no loss
term trains, or a figure that is undefined. Notes under the table say the protocol, whether it was
followed, and which detectors read another store. A second table, where the runs were
audited, is the shortcut audit's headline (:func:`render_audit`).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from benchmarks.output import render_main

ROOT = Path(__file__).resolve().parents[1]
RESULT = ROOT / "benchmarks" / "results" / "table1.json"

#: (header, result key, how a value is shown): the table's columns after the detector.
COLUMNS: tuple[tuple[str, str, str], ...] = (
    ("ACC (%)", "test_acc", "percent"),
    ("AUC (%)", "test_auc", "percent"),
    ("Balanced ACC (%)", "test_balanced_acc", "percent"),
    ("AP (%)", "test_ap", "percent"),
    ("EER (%)", "test_eer", "percent"),
    ("Audio AUC (%)", "audio_auc", "percent"),
    ("Video AUC (%)", "video_auc", "percent"),
    ("Params", "params", "count"),
    ("s/epoch", "s_per_epoch", "seconds"),
)


def count(value: float) -> str:
    """A parameter count as ``73.9 K`` or ``1.23 M``."""
    if value >= 1e6:
        return f"{value / 1e6:.2f} M"
    return f"{value / 1e3:.1f} K" if value >= 1e3 else f"{value:.0f}"


def cell(stats: dict[str, Any], kind: str) -> str:
    """One cell: mean ± std of ``stats`` (``{"mean", "std", "n"}``) shown as ``kind``."""
    mean, std = stats.get("mean"), stats.get("std")
    if mean is None:
        return "—"
    if kind == "count":  # the same for every seed: no spread to show
        return count(mean)
    scale = 100.0 if kind == "percent" else 1.0
    text = f"{mean * scale:.1f}"
    return text if std is None else f"{text} ± {std * scale:.1f}"


def notes(result: dict[str, Any]) -> list[str]:
    """The lines under the table: protocol, departures, other stores, untrained heads."""
    seeds = ", ".join(map(str, result["seeds"]))
    protocol = result["protocol"]
    lines = [
        f"Mean ± sample std over seeds {seeds}; preset size `{protocol['size']}`, each "
        f"preset's own epochs; data: {result['store_source']}; checkpoint chosen by "
        f"{result['selection'].split(',')[0]}; test part evaluated once."
    ]
    if not result["protocol_followed"]:
        lines.append(f"**Departs from the protocol**: {'; '.join(result['departures'])}.")
    for key, store in result["stores"].items():
        if store["ingest"] != "mscct-pipeline ingest DATASET":
            readers = ", ".join(f"`{d}`" for d in store["detectors"])
            lines.append(
                f"{readers} read the {key} store (`{store['ingest']}`): the same clips and "
                "identity-disjoint split as the others (checked)."
            )
    untrained = [
        f"{detector}: {', '.join(row['untrained_heads'])}"
        for detector, row in result["detectors"].items()
        if row["untrained_heads"]
    ]
    if untrained:
        lines.append(
            f"—: a head the detector lacks or no loss term trains ({'; '.join(untrained)})."
        )
    return lines


def render(result: dict[str, Any]) -> str:
    """The Markdown table of a ``bench_table1`` result, with its notes."""
    header = ["Detector", *(name for name, _, _ in COLUMNS)]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for name, row in result["detectors"].items():
        cells = [cell(row["summary"][key], kind) for _, key, kind in COLUMNS]
        lines.append("| " + " | ".join([f"`{name}`", *cells]) + " |")
    table = "\n".join(lines) + "\n\n" + "\n\n".join(notes(result)) + "\n"
    audit = render_audit(result)
    return table + ("\n" + audit if audit else "")


def render_audit(result: dict[str, Any]) -> str:
    """The shortcut-audit headline of a result (:data:`benchmarks.table1_audit.HEADLINE`,
    the fused head), a row per detector whose runs were audited; '' if none was."""
    from benchmarks.table1_audit import HEADLINE

    rows = {name: row["audit"] for name, row in result["detectors"].items() if row.get("audit")}
    if not rows:
        return ""
    header = ["Detector", *(name for name, _, _ in HEADLINE)]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for name, audit in rows.items():
        cells = [cell(audit[column]["fused"][key], "percent") for _, column, key in HEADLINE]
        lines.append("| " + " | ".join([f"`{name}`", *cells]) + " |")
    note = (
        "Shortcut audit of the same checkpoints, fused head, test part, mean ± sample std "
        "over the seeds. real→fake: of the real clips a detector calls real as stored, the "
        "share it calls fake once perturbed (`mscct-train audit`; docs/audit.md)."
    )
    return "\n".join(lines) + "\n\n" + note + "\n"


def main(argv: list[str] | None = None) -> int:
    return render_main(__doc__ or "", RESULT, render, argv)


if __name__ == "__main__":
    raise SystemExit(main())
