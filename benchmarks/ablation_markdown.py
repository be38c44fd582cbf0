"""The ablation as Markdown, rendered from :mod:`benchmarks.bench_ablation`'s JSON (never typed).

    .venv/bin/python -m benchmarks.ablation_markdown [benchmarks/results/ablation.json] [--out FILE]

One row per measured variant, in the order of ``bench_ablation.VARIANTS`` (Table 2's four
rows, then the switches); columns test AUC, balanced ACC and the audio and video heads'
AUC, each mean ± sample std over the seeds. Under the table, the store's ceilings (what a
probe told where each cue is reaches), and any variant not measured yet, so a partial result
never reads as a whole one.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # run as a script: make the repository importable
    sys.path.insert(0, str(ROOT))

from benchmarks.bench_ablation import RESULT, VARIANTS  # noqa: E402
from benchmarks.bench_train import CEILING_META, recorded_protocol  # noqa: E402
from benchmarks.output import render_main  # noqa: E402

#: How each variant is named in the table.
LABELS: dict[str, str] = {
    "dca+mssa": "DCA+MSSA (the paper's blocks)",
    "dca+sa": "DCA+SA",
    "ca+mssa": "CA+MSSA",
    "ca+sa": "CA+SA",
    "mssa_kernel=time": "MSSA k×1 kernels",
    "dca_form=diff_transformer": "DCA in the Differential Transformer's form",
    "unimodal_head=cls": "CLS unimodal heads",
    "alignment=mean": "mean alignment (MRDF's)",
}
#: (header, result key): the columns after the variant.
COLUMNS: tuple[tuple[str, str], ...] = (
    ("test AUC", "test_auc"),
    ("balanced ACC", "test_balanced_acc"),
    ("audio AUC", "audio_auc"),
    ("video AUC", "video_auc"),
)


def cell(stats: dict[str, Any]) -> str:
    """``0.830 ± 0.044`` from ``{"mean", "std", "n"}``; ``—`` when undefined."""
    mean, std = stats.get("mean"), stats.get("std")
    if mean is None:
        return "—"
    return f"{mean:.3f}" if std is None else f"{mean:.3f} ± {std:.3f}"


def render(result: dict[str, Any]) -> str:
    """The table and the lines under it."""
    protocol = recorded_protocol(result)
    seeds = protocol.get("seeds", [])
    seed_text = f"{seeds[0]}–{seeds[-1]}" if len(seeds) > 1 else ", ".join(map(str, seeds))
    title = f"`{result.get('config', 'tiny')}`, `{protocol.get('difficulty')}`, seeds {seed_text}"
    measured = [name for name in VARIANTS if name in result.get("variants", {})]
    lines = [
        "| " + " | ".join([title, *(header for header, _ in COLUMNS)]) + " |",
        "|" + "---|" * (len(COLUMNS) + 1),
    ]
    for name in measured:
        row = result["variants"][name]
        cells = [cell(row[key]) for _, key in COLUMNS]
        lines.append("| " + " | ".join([LABELS.get(name, name), *cells]) + " |")
    if result.get("protocol_version", 1) < 2:  # before model.dca_form: its one DCA form
        lines += ["", "Measured before `model.dca_form`: every DCA here is the Differential "
                  "Transformer's form."]  # fmt: skip
        return "\n".join(lines) + "\n"
    ceiling = result.get("ceiling")
    if ceiling:  # the results stand next to what a probe told where the cue is reaches
        verdict = "valid" if ceiling.get("valid") else "NOT valid"
        source = f" (`{ceiling['from']}`)" if ceiling.get("from") else ""
        probes = ", ".join(
            f"{name} {auc:.3f}" for name, auc in ceiling.items() if name not in CEILING_META
        )
        lines += ["", f"Ceilings of this store{source}, clip AUC: {probes}; the store is "
                  f"{verdict} by the ceiling rule."]  # fmt: skip
    missing = [LABELS.get(name, name) for name in VARIANTS if name not in measured]
    if missing:
        lines += ["", f"Not measured yet: {', '.join(missing)}."]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    return render_main(__doc__ or "", RESULT, render, argv)


if __name__ == "__main__":
    raise SystemExit(main())
