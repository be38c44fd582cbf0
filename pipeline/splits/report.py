"""Reporting on a split table: its summary, its counts per part, the printed table.

:func:`pipeline.splits.split.make_split` and :mod:`pipeline.splits.imports` store a JSON
summary of what they left out in the table's schema metadata under
``SUMMARY_KEY``; this module reads it back, counts clips and identities per part
and category, and renders both as the table the CLI prints.
"""

from __future__ import annotations

import json
from typing import Any

import pyarrow as pa
from rich.table import Table as RichTable

from schemas import CATEGORIES, SPLITS

SUMMARY_KEY = b"mscct.split_summary"


def split_summary(split: pa.Table) -> dict[str, Any]:
    """What ``make_split`` left out and why (empty for a table read back from the store).

    Keys: ``ok_clips``, ``failed_clips``, ``unlabelled_clips``,
    ``low_face_rate_clips`` (ok clips left out for a low face rate),
    ``little_speech_clips`` (ok clips left out for little speech, with
    ``leave_out_little_speech`` only), ``low_frontal_rate_clips`` (the same for
    ``low_frontal_rate``, with ``leave_out_low_frontal_rate`` only),
    ``identities``, ``cross_part_references``, and where they apply
    ``dropped_identities``, ``identities_lacking`` (category -> count),
    ``capped_identities``, ``capped_clips``, ``strict_excluded_clips``,
    ``strict_dropped_identities``, ``strict_components``; an imported split's
    keys are listed in :mod:`pipeline.splits.imports`.
    """
    meta = split.schema.metadata or {}
    raw = meta.get(SUMMARY_KEY)
    return json.loads(raw) if raw else {}


def split_counts(split: pa.Table) -> dict[str, dict[str, int]]:
    """Counts per part: ``{part: {category: clips, 'total': clips, 'identities': n}}``.

    Parts are ``train``, ``val``, ``test`` and ``total``.
    """
    counts: dict[str, dict[str, int]] = {
        part: {**{cat: 0 for cat in CATEGORIES}, "total": 0, "identities": 0}
        for part in (*SPLITS, "total")
    }
    identities: dict[str, set[str]] = {part: set() for part in (*SPLITS, "total")}
    parts = split.column("split").to_pylist()
    cats = split.column("category").to_pylist()
    idents = split.column("identity").to_pylist()
    for part, cat, ident in zip(parts, cats, idents, strict=True):
        for key in (part, "total"):
            counts[key][cat] = counts[key].get(cat, 0) + 1
            counts[key]["total"] += 1
            identities[key].add(ident)
    for part, seen in identities.items():
        counts[part]["identities"] = len(seen)
    return counts


def render_counts(split: pa.Table) -> RichTable:
    """A printable table: rows train / val / test / total; columns categories, total, identities.

    When the table comes straight from ``make_split``, the caption says what was left out.
    """
    counts = split_counts(split)
    table = RichTable(title="split: clips per part and category")
    table.add_column("part")
    for column in (*CATEGORIES, "total", "identities"):
        table.add_column(column, justify="right")
    for part in (*SPLITS, "total"):
        row = counts[part]
        table.add_row(
            part,
            *(str(row[c]) for c in (*CATEGORIES, "total", "identities")),
            end_section=part == SPLITS[-1],
        )
    caption = _caption(split_summary(split))
    if caption:
        table.caption = caption
    return table


def _caption(summary: dict[str, Any]) -> str:
    notes: list[str] = []
    for line in summary.get("notes", []):  # what an imported split found in its files
        notes.append(line)
    if summary.get("failed_clips"):
        notes.append(f"{summary['failed_clips']} failed clips excluded")
    if summary.get("unlabelled_clips"):
        notes.append(f"{summary['unlabelled_clips']} unlabelled clips never enter a split")
    if summary.get("low_face_rate_clips"):
        notes.append(
            f"{summary['low_face_rate_clips']} clips with a low face detection rate left out "
            "(--keep-low-face-rate keeps them)"
        )
    if summary.get("little_speech_clips"):
        notes.append(
            f"{summary['little_speech_clips']} clips with little speech left out "
            "(--leave-out-little-speech)"
        )
    if summary.get("low_frontal_rate_clips"):
        notes.append(
            f"{summary['low_frontal_rate_clips']} clips seen mostly off frontal left out "
            "(--leave-out-low-frontal-rate)"
        )
    if summary.get("dropped_identities"):
        lacking = fmt_counts(summary.get("identities_lacking", {}))
        notes.append(f"{summary['dropped_identities']} identities dropped for balance ({lacking})")
    if summary.get("capped_identities"):
        notes.append(f"{summary['capped_identities']} identities left out by --per-category")
    if summary.get("capped_clips"):
        notes.append(f"{summary['capped_clips']} clips left out by --per-category")
    if "strict_excluded_clips" in summary:
        notes.append(
            f"--strict-identities excluded {summary['strict_excluded_clips']} clips whose "
            "targets sit in another part"
            + (
                f" and dropped {summary['strict_dropped_identities']} identities"
                if summary.get("strict_dropped_identities")
                else ""
            )
        )
    if summary.get("identities_in_several_parts"):
        notes.append(
            f"{summary['identities_in_several_parts']} identities have clips in several parts"
        )
    if "cross_part_references" in summary:
        notes.append(
            f"{summary['cross_part_references']} cross-part target references (a fake's "
            "target1/target2 identity has clips in another part)"
        )
    return "; ".join(notes)


def fmt_counts(counts: dict[str, int]) -> str:
    return ", ".join(f"{n} without {cat}" for cat, n in counts.items() if n) or "none"
