"""A static HTML report of a store: counts per category, failures with reasons, flagged
clips, histograms and contact sheets, in one folder that any browser opens (no server).

Every text that comes from the store (clip ids come from file names, reasons from
errors) is written through :func:`html.escape`.
"""

from __future__ import annotations

import html
import math
from pathlib import Path
from typing import Any

import numpy as np

import schemas
from pipeline.report import agg_pyplot, save_figure
from pipeline.report.clips import choose, face_rate, flags, ok_rows
from pipeline.report.sheet import write_sheet

HIST_COLOUR = "#1c7ed6"

STYLE = """
body { font-family: sans-serif; margin: 1.5em; color: #222; }
table { border-collapse: collapse; margin: 0.5em 0 1.5em; }
th, td { border: 1px solid #bbb; padding: 3px 8px; text-align: right; }
th:first-child, td:first-child, td.text { text-align: left; }
img { max-width: 100%; border: 1px solid #ddd; margin: 4px; }
.hist img { width: 32%; min-width: 300px; }
"""


def write_report(store: Path, folder: Path, *, per_category: int = 8, seed: int = 0) -> Path:
    """Write ``index.html`` and its PNGs into ``folder``; returns the index's path."""
    info = schemas.open_store(store)
    rows = schemas.read_manifest(store).to_pylist()
    folder.mkdir(parents=True, exist_ok=True)
    totals = {c: len(m) for c, m in choose(rows, None, "id").items()}
    sheets = []
    for sort, caption in (("random", "a seeded sample"), ("worst", "the worst clips first")):
        groups = choose(rows, per_category, sort, seed)
        if groups:
            name = f"sheet_{sort}.png"
            write_sheet(
                store, groups, folder / name, title=f"{store.name}: {caption}", totals=totals
            )
            sheets.append((name, f"Contact sheet, {caption} (up to {per_category} per category)"))
    histograms = _write_histograms(rows, folder)
    recipe = ", ".join(f"{k}={v}" for k, v in info.recipe.to_dict().items())
    body = [
        f"<h1>Feature store {_e(store)}</h1>",
        f"<p>format {info.format_version}, written by mscct {_e(info.software_version)}; "
        f"recipe: {_e(recipe)}</p>",
        "<h2>Clips per category</h2>",
        _table(_COUNT_HEADER, _count_rows(rows), "counts"),
        f"<h2>Failures ({sum(r['status'] != schemas.STATUS_OK for r in rows)})</h2>",
        _table(("clip id", "category", "reason"), _failure_rows(rows), "failures"),
        "<h2>Flagged clips</h2>",
        _table(("clip id", "category", "face rate", "flags"), _flag_rows(rows), "flagged"),
        "<h2>Distributions</h2>",
        '<div class="hist">' + "".join(_img(n, t) for n, t in histograms) + "</div>",
        "<h2>Contact sheets</h2>",
        *(f"<h3>{_e(title)}</h3>{_img(name, title)}" for name, title in sheets),
    ]
    page = (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        f"<title>mscct store {_e(store.name)}</title><style>{STYLE}</style></head>"
        "<body>\n" + "\n".join(body) + "\n</body></html>\n"
    )
    index = folder / "index.html"
    index.write_text(page, encoding="utf-8")
    return index


def _e(value: Any) -> str:
    return html.escape(str(value), quote=True)


def _img(name: str, alt: str) -> str:
    return f'<img src="{_e(name)}" alt="{_e(alt)}">'


def _table(header: tuple[str, ...], rows: list[list[Any]], name: str) -> str:
    if not rows:
        return f'<p id="{name}">none</p>'
    head = "".join(f"<th>{_e(h)}</th>" for h in header)
    cells = "".join(
        "<tr>" + "".join(_cell(k, v) for k, v in enumerate(row)) + "</tr>\n" for row in rows
    )
    return f'<table id="{name}"><tr>{head}</tr>\n{cells}</table>'


def _cell(column: int, value: Any) -> str:
    # Text after the first column (reasons, flags) reads better left-aligned; numbers right.
    left = column > 0 and isinstance(value, str) and not value[:1].isdigit()
    return f'<td class="text">{_e(value)}</td>' if left else f"<td>{_e(value)}</td>"


_COUNT_HEADER = ("category", "ok", "failed", "frames", "mean face rate", "low_face_rate", "cut")


def _count_rows(rows: list[dict[str, Any]]) -> list[list[Any]]:
    """One row per category plus ``total``: counts of ok and failed clips, stored frames,
    mean face detection rate of the ok clips and how many carry each flag."""
    table = []
    for category in (*schemas.CATEGORIES, "total"):
        members = [r for r in rows if category in ("total", r["category"])]
        ok = ok_rows(members)
        rates = [face_rate(r) for r in ok if not math.isnan(face_rate(r))]
        table.append(
            [
                category,
                len(ok),
                len(members) - len(ok),
                sum(r["num_frames"] for r in ok),
                f"{np.mean(rates):.3f}" if rates else "-",
                sum(bool(r.get("low_face_rate")) for r in ok),
                sum(bool(r.get("cut")) for r in ok),
            ]
        )
    return table


def _failure_rows(rows: list[dict[str, Any]]) -> list[list[Any]]:
    failed = [r for r in rows if r["status"] != schemas.STATUS_OK]
    return [[r["clip_id"], r["category"], r["error"] or ""] for r in failed]


def _flag_rows(rows: list[dict[str, Any]]) -> list[list[Any]]:
    flagged = [(r, flags(r)) for r in ok_rows(rows)]
    return [
        [r["clip_id"], r["category"], f"{face_rate(r):.2f}", ", ".join(marks)]
        for r, marks in flagged
        if marks
    ]


def _write_histograms(rows: list[dict[str, Any]], folder: Path) -> list[tuple[str, str]]:
    """``hist_<column>.png`` for each measure the manifest has values of; ``(name, title)``."""
    plt = agg_pyplot()
    measures = (
        ("source_duration_s", "source duration (s), all clips", rows),
        ("face_detection_rate", "face detection rate, ok clips", ok_rows(rows)),
        ("landmark_rate", "confident landmark fits, ok clips", ok_rows(rows)),
        ("landmark_jitter", "landmark jitter (px per frame), ok clips", ok_rows(rows)),
    )
    written = []
    for column, title, members in measures:
        values = [float(r[column]) for r in members if r.get(column) is not None]
        values = [v for v in values if not math.isnan(v)]
        if not values:
            continue  # a store without landmarks has no jitter to show
        fig, ax = plt.subplots(figsize=(4.8, 3.2))
        ax.hist(values, bins=min(30, max(5, len(values) // 2)), color=HIST_COLOUR)
        ax.set(title=title, ylabel="clips")
        fig.tight_layout()
        name = f"hist_{column}.png"
        save_figure(fig, folder / name, 100)
        plt.close(fig)
        written.append((name, title))
    return written
