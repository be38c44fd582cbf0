"""A static HTML report of a store: counts per category, the quality summary of
``inspect``, failures with reasons, flagged clips, histograms and contact sheets, in one
folder that any browser opens (no server).

The page is the Jinja2 template ``templates/report.html.j2`` (package data) rendered with
autoescaping on: every value from the store (clip ids and paths come from file names,
methods from metadata, reasons from errors) is escaped for HTML by the template engine,
and cut to one line of at most :data:`HTML_TEXT_LIMIT` characters.

Where the report goes is checked first (:func:`schemas.output_targets.check_report_folder`):
a new or empty folder, or a previous report of ours (its marker file), never a user's
folder or one inside a store. The marker is written before anything else.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np

import schemas
from pipeline.ingest.summary import quality_lines, quality_summary
from pipeline.report import agg_pyplot, save_figure
from pipeline.report.clips import choose, face_rate, flags, ok_rows
from pipeline.report.sheet import write_sheet
from schemas.durable import atomic_write
from schemas.output_targets import check_report_folder, mark_report, writing
from schemas.picture_text import plain

HIST_COLOUR = "#1c7ed6"
INDEX = "index.html"
TEMPLATE = "report.html.j2"
#: The longest text of a table cell, in characters (a longer one ends with an ellipsis).
HTML_TEXT_LIMIT = 300
SHEETS = (("random", "a seeded sample"), ("worst", "the worst clips first"))
#: The measures drawn as histograms: (manifest column, title, ok clips only).
HISTOGRAMS = (
    ("source_duration_s", "source duration (s), all clips", False),
    ("face_detection_rate", "face detection rate, ok clips", True),
    ("landmark_rate", "confident landmark fits, ok clips", True),
    ("landmark_jitter", "landmark jitter (px per frame), ok clips", True),
    ("frontal_rate", "share of frames seen near frontal, ok clips", True),
    ("speech_fraction", "share of frames with speech, ok clips", True),
    ("speaker_correlation", "speaker mouth-voice correlation, ok clips", True),
    ("faceless_frames", "frames without a face, ok clips", True),
)
#: Every file a report may write into its folder (the marker lists those it wrote).
REPORT_FILES = (
    INDEX,
    *(f"sheet_{sort}.png" for sort, _ in SHEETS),
    *(f"hist_{column}.png" for column, _, _ in HISTOGRAMS),
)


@dataclass
class Table:
    """One table of the page: its header, its rows and which columns hold text."""

    header: tuple[str, ...]
    rows: list[list[Any]]
    text_columns: frozenset[int] = field(default_factory=frozenset)


def write_report(store: Path, folder: Path, *, per_category: int = 8, seed: int = 0) -> Path:
    """Write ``index.html`` and its PNGs into ``folder``; returns the index's path.

    ``folder`` must be new, empty or a previous report (see :mod:`schemas.output_targets`);
    a previous report's files that this one does not write are removed.
    """
    previous = check_report_folder(folder, "--html")
    info = schemas.open_store(store)
    manifest = schemas.read_manifest(store)
    rows = manifest.to_pylist()
    with writing(folder):
        folder.mkdir(parents=True, exist_ok=True)
    # The marker first: an interrupted report is still recognised as ours.
    mark_report(folder, [*previous, *REPORT_FILES])
    sheets = _write_sheets(store, rows, folder, per_category, seed)
    histograms = _write_histograms(rows, folder)
    page = _template().render(
        store=store,
        store_name=store.name,
        format_version=info.format_version,
        software_version=info.software_version,
        recipe=", ".join(f"{k}={v}" for k, v in info.recipe.to_dict().items()),
        counts=Table(_COUNT_HEADER, _count_rows(rows)),
        quality=quality_lines(quality_summary(manifest)),
        failures=Table(
            ("clip id", "file", "category", "reason"), _failure_rows(rows), frozenset({1, 3})
        ),
        flagged=Table(
            ("clip id", "category", "face rate", "flags"), _flag_rows(rows), frozenset({3})
        ),
        histograms=histograms,
        sheets=sheets,
    )
    index = folder / INDEX
    with writing(index), atomic_write(index, durable=False) as tmp:
        tmp.write_text(page, encoding="utf-8")
    written = [INDEX, *(name for name, _ in sheets), *(name for name, _ in histograms)]
    _remove_stale(folder, [name for name in previous if name not in written])
    mark_report(folder, written)
    return index


@lru_cache(maxsize=1)
def _template() -> Any:
    """The page template, from the package's ``templates`` folder, autoescaping on."""
    import jinja2

    env = jinja2.Environment(
        loader=jinja2.PackageLoader("pipeline.report", "templates"),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters["plain"] = lambda value, limit=HTML_TEXT_LIMIT: plain(value, limit)
    return env.get_template(TEMPLATE)


def _write_sheets(
    store: Path, rows: list[dict[str, Any]], folder: Path, per_category: int, seed: int
) -> list[tuple[str, str]]:
    """The two contact sheets (a seeded sample, the worst clips); ``(name, title)`` each."""
    totals = {c: len(m) for c, m in choose(rows, None, "id").items()}
    sheets = []
    for sort, caption in SHEETS:
        groups = choose(rows, per_category, sort, seed)
        if groups:
            name = f"sheet_{sort}.png"
            title = f"{plain(store.name)}: {caption}"
            write_sheet(store, groups, folder / name, title=title, totals=totals)
            sheets.append((name, f"Contact sheet, {caption} (up to {per_category} per category)"))
    return sheets


def _remove_stale(folder: Path, names: list[str]) -> None:
    """Remove files an earlier report wrote that this one did not (named by its marker)."""
    for name in names:
        path = folder / name
        if path.is_file() and not path.is_symlink():
            with writing(path):
                path.unlink()


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
    return [[r["clip_id"], r["path"], r["category"], r["error"] or ""] for r in failed]


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
    written = []
    for column, title, ok_only in HISTOGRAMS:
        members = ok_rows(rows) if ok_only else rows
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
