"""Splits whose parts are given: a published split's files, or the dataset's own split.

:func:`import_split` applies parsed split files (:mod:`pipeline.splits.formats`)
to a store's manifest: a clip path names one clip (matched against the
manifest's ``path``, relative to the dataset root), an identity names all of its
clips. :func:`official_split` takes the parts from the manifest's
``official_split`` column (LAV-DF's and AV-Deepfake1M's own ``split`` field).

Only labelled ok clips enter (clips flagged ``low_face_rate`` too are left out
unless ``keep_low_face_rate``, as in :func:`pipeline.splits.split.make_split`). Nothing
named is dropped silently: the summary counts, and lists in full, the paths the
store lacks (``missing``), names of failed or unlabelled clips, identities the
store lacks, and clips whose category or label in the file disagrees with the
store's (kept, with the store's labels). A clip or identity named in two parts
is refused. The parts are the files'; none is balanced or re-cut, and a part the
files do not give stays empty (such a split serves ``mscct-train eval --split``).
"""

from __future__ import annotations

from collections import defaultdict
from typing import Any

import pyarrow as pa

from pipeline.splits.formats import Entry, SplitFile
from pipeline.splits.params import SplitError
from pipeline.splits.split import manifest_rows, split_table
from schemas import SPLITS, STATUS_OK

#: How many names a one-line note shows before "...".
SHOWN = 3


class _Import:
    """What applying the files found, gathered while they are applied."""

    def __init__(self, rows: list[dict[str, Any]], keep_low_face_rate: bool) -> None:
        self.by_path = {r["path"]: r for r in rows}
        self.by_identity: dict[str, list[dict[str, Any]]] = defaultdict(list)
        for row in rows:
            self.by_identity[row["identity"]].append(row)
        self.keep_low_face_rate = keep_low_face_rate
        self.part_of: dict[str, tuple[str, str]] = {}  # clip_id -> (part, where named)
        self.identity_part: dict[str, tuple[str, str]] = {}
        self.found: dict[str, list[str]] = defaultdict(list)  # problem -> names

    def take(self, row: dict[str, Any], part: str, where: str) -> None:
        """Put a clip named by the files into ``part`` unless it cannot take part."""
        if not row["labelled"]:
            self.found["unlabelled"].append(row["path"])
        elif row["status"] != STATUS_OK:
            self.found["failed"].append(row["path"])
        elif row["low_face_rate"] is True and not self.keep_low_face_rate:
            self.found["low_face_rate"].append(row["path"])
        else:
            earlier = self.part_of.get(row["clip_id"])
            if earlier is not None and earlier[0] != part:
                raise SplitError(
                    f"clip {row['path']} is named in {earlier[0]} ({earlier[1]}) and in "
                    f"{part} ({where}); a clip can be in one part only"
                )
            if earlier is not None:
                self.found["duplicates"].append(row["path"])
            self.part_of[row["clip_id"]] = (part, where)

    def entry(self, entry: Entry, where: str) -> None:
        if entry.kind == "identity":
            self.identity(entry.value, entry.part, where)
            return
        row = self.by_path.get(entry.value)
        if row is None:
            self.found["missing"].append(entry.value)
            return
        if entry.expected is not None and row["labelled"]:
            stored = row["category"] if isinstance(entry.expected, str) else row["label"]
            if stored != entry.expected:
                self.found["label_mismatches"].append(entry.value)
        self.take(row, entry.part, where)

    def identity(self, identity: str, part: str, where: str) -> None:
        earlier = self.identity_part.get(identity)
        if earlier is not None and earlier[0] != part:
            raise SplitError(
                f"identity {identity} is listed in {earlier[0]} ({earlier[1]}) and in "
                f"{part} ({where}); an identity can be in one part only"
            )
        self.identity_part[identity] = (part, where)
        rows = self.by_identity.get(identity)
        if not rows:
            self.found["missing_identities"].append(identity)
        for row in rows or []:
            self.take(row, part, where)


def import_split(
    manifest: pa.Table, files: list[SplitFile], keep_low_face_rate: bool = False
) -> pa.Table:
    """The split the files give, as a ``SPLIT_SCHEMA`` table with its summary.

    Raises ``SplitError`` for a clip or identity named in two parts, two files
    that each claim the identities they do not list, or files that name no
    clip the store can use.
    """
    rows = manifest_rows(manifest)
    state = _Import(rows, keep_low_face_rate)
    for split_file in files:
        _check_header(split_file, state)
        where = split_file.path.name
        for entry in split_file.entries:
            state.entry(entry, f"{where} line {entry.line}")
    rests = [f for f in files if f.rest_part is not None]
    if len(rests) > 1:
        names = ", ".join(f.path.name for f in rests)
        raise SplitError(f"{names}: only one file may give the identities it does not list")
    for split_file in rests:
        assert split_file.rest_part is not None
        where = f"not in {split_file.path.name}"
        for identity in sorted(set(state.by_identity) - set(state.identity_part)):
            # Only the usable clips: failed ones the file never named are not its problem.
            for row in state.by_identity[identity]:
                if row["labelled"] and row["status"] == STATUS_OK:
                    state.take(row, split_file.rest_part, where)
    by_id = {r["clip_id"]: r for r in rows}
    out = [{**by_id[cid], "split": part} for cid, (part, _) in state.part_of.items()]
    if not out:
        raise SplitError(
            f"the split files name no ok clip of the store ({_problems(state.found)}); "
            "are they for this dataset?"
        )
    summary = _summary(rows, state.found, out)
    summary["files"] = [f.record() for f in files]
    return split_table(out, summary)


def _check_header(split_file: SplitFile, state: _Import) -> None:
    """Refuse a detected MRDF fold whose skipped first line is an identity of the store.

    The line would be dropped as a header on a guess; the user says which it is.
    """
    header = split_file.header
    if split_file.detected and header is not None and header in state.by_identity:
        raise SplitError(
            f"{split_file.path}: its first line {header!r} is an identity of the store, yet "
            "the file reads as an MRDF fold whose first line is a header; give --format ids "
            "(with PART=) or --format mrdf-fold"
        )


def official_split(manifest: pa.Table, keep_low_face_rate: bool = False) -> pa.Table:
    """The dataset's own split (``official_split``: train / val / test) of the ok clips.

    Clips without an official part (``""``) are counted in the summary
    (``no_official_split``). A store with no official split at all raises ``SplitError``.
    """
    rows = manifest_rows(manifest)
    given = {r["official_split"] for r in rows if r["official_split"]}
    bad = sorted(given - set(SPLITS))
    if bad:
        raise SplitError(f"manifest has unknown official_split value(s) {', '.join(bad)}")
    if not given:
        raise SplitError(
            "this store has no official split (its manifest's official_split column is "
            "empty; LAV-DF and AV-Deepfake1M give one, FakeAVCeleb does not)"
        )
    state = _Import(rows, keep_low_face_rate)
    for row in rows:
        if row["official_split"]:
            state.take(row, row["official_split"], "official_split")
        elif row["labelled"] and row["status"] == STATUS_OK:
            state.found["no_official_split"].append(row["path"])
    by_id = {r["clip_id"]: r for r in rows}
    out = [{**by_id[cid], "split": part} for cid, (part, _) in state.part_of.items()]
    if not out:
        raise SplitError(f"no ok labelled clip has an official part ({_problems(state.found)})")
    return split_table(out, _summary(rows, state.found, out))


_NOTES = {
    "missing": "named in the files but missing from the store",
    "missing_identities": "identities listed but missing from the store",
    "failed": "named clips failed in the store",
    "unlabelled": "named clips are unlabelled (never in a split)",
    "low_face_rate": "named clips have a low face detection rate, left out "
    "(--keep-low-face-rate keeps them)",
    "duplicates": "clips named twice in the same part",
    "label_mismatches": "clips whose category or label in the file differs from the store's "
    "(the store's kept)",
    "no_official_split": "ok clips have no official part",
}


def _summary(
    rows: list[dict[str, Any]], found: dict[str, list[str]], out: list[dict[str, Any]]
) -> dict[str, Any]:
    """Counts, full lists and one-line notes of what the files named and did not get."""
    ok = [r for r in rows if r["labelled"] and r["status"] == STATUS_OK]
    summary: dict[str, Any] = {
        "ok_clips": len(ok),
        "identities": len({r["identity"] for r in out}),
        "not_in_split": len(ok) - len(out),
    }
    notes = []
    for key, what in _NOTES.items():
        names = sorted(set(found.get(key, [])))
        if names:
            summary[key] = names
            summary[f"{key}_count"] = len(names)
            notes.append(f"{len(names)} {what} ({_first(names)})")
    empty = [p for p in SPLITS if p not in {r["split"] for r in out}]
    if empty:
        notes.append(f"no {', '.join(empty)} part: for evaluation (mscct-train eval --split)")
    summary["notes"] = notes
    return summary


def _first(names: list[str]) -> str:
    shown = ", ".join(names[:SHOWN])
    return f"first: {shown}, ..." if len(names) > SHOWN else shown


def _problems(found: dict[str, list[str]]) -> str:
    return "; ".join(f"{len(v)} {k}" for k, v in found.items() if v) or "they name nothing"
