"""Find the clips of a FakeAVCeleb tree and label them.

``meta_data.csv`` is read when present; otherwise labels are inferred from the
folder layout ``<type>/<race>/<gender>/<identity>/<file>.mp4``. The CSV's
quirks (see DESIGN.md): a trailing comma in the header, the file *name* in the
``path`` column and its directory in an unnamed 10th column that starts with
``FakeAVCeleb/`` rather than the real root folder name.

Every path is confined to the dataset root: a row that climbs out (``..``,
absolute paths, symlinks pointing outside) is refused and reported, never read.
"""

from __future__ import annotations

import csv
import hashlib
import os
import re
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

from schemas import LETTER_TO_CATEGORY, TYPE_DIR_TO_CATEGORY

CSV_NAME = "meta_data.csv"
CSV_HEADER = [
    "source",
    "target1",
    "target2",
    "method",
    "category",
    "type",
    "race",
    "gender",
    "path",
]
VIDEO_SUFFIXES = {".mp4"}

# Some copies of the release spell race folders with spaces and parentheses.
_RACE_SPELLINGS = {
    "Asian_East": "Asian (East)",
    "Asian_South": "Asian (South)",
    "Caucasian_American": "Caucasian (American)",
    "Caucasian_European": "Caucasian (European)",
}
_RACE_SPELLINGS.update({v: k for k, v in _RACE_SPELLINGS.items()})

# Method tokens found in FakeAVCeleb file names, most specific first.
_METHOD_TOKENS = (
    ("faceswap-wav2lip", ("faceswap-wav2lip", "faceswap_wav2lip", "faceswap-wavtolip")),
    ("fsgan-wav2lip", ("fsgan-wav2lip", "fsgan_wav2lip", "fsgan-wavtolip")),
    ("wav2lip", ("wav2lip", "wavtolip")),
    ("faceswap", ("faceswap",)),
    ("fsgan", ("fsgan",)),
)
_DEFAULT_METHOD = {"RARV": "real", "FARV": "rtvc"}


class ScanError(ValueError):
    """The dataset root cannot be scanned at all (missing, wrong CSV header, ...)."""


@dataclass(frozen=True)
class ClipSource:
    """One clip named by the dataset, with its labels. ``path`` is relative, POSIX."""

    clip_id: str
    path: str
    category: str
    source_type: str
    identity: str
    method: str
    race: str = ""
    gender: str = ""
    target1: str = "-"
    target2: str = "-"


@dataclass
class ScanResult:
    root: Path  # the folder that holds the four type folders
    clips: list[ClipSource]
    used_csv: bool
    missing: list[str] = field(default_factory=list)  # rows naming files that do not exist
    unlisted: list[str] = field(default_factory=list)  # media files that no row names
    refused: list[str] = field(default_factory=list)  # "<row>: <reason>" (escaping, bad labels)
    respelled: int = 0  # rows found only under the other race-folder spelling


def make_clip_id(identity: str, category: str, rel_path: str) -> str:
    """Stable, file-system-safe id: readable prefix plus a hash of the relative path."""
    digest = hashlib.sha256(rel_path.encode()).hexdigest()[:12]
    safe_identity = re.sub(r"[^A-Za-z0-9_.-]", "_", identity)[:32].lstrip(".-_") or "x"
    return f"{safe_identity}_{category}_{digest}"


def find_dataset_root(root: Path) -> Path:
    """Accept the folder holding ``meta_data.csv`` / the type folders, or its parent."""
    root = Path(root)
    if not root.is_dir():
        raise ScanError(f"dataset root {root} is not a directory")
    if _looks_like_dataset(root):
        return root
    candidates = [p for p in sorted(root.iterdir()) if p.is_dir() and _looks_like_dataset(p)]
    if len(candidates) == 1:
        return candidates[0]
    if len(candidates) > 1:
        names = ", ".join(p.name for p in candidates)
        raise ScanError(f"{root} holds several datasets ({names}); pass one of them")
    raise ScanError(
        f"{root} does not look like FakeAVCeleb: no {CSV_NAME} and none of the folders "
        f"{', '.join(TYPE_DIR_TO_CATEGORY)}"
    )


def _looks_like_dataset(path: Path) -> bool:
    return (path / CSV_NAME).is_file() or any((path / t).is_dir() for t in TYPE_DIR_TO_CATEGORY)


def scan_dataset(root: str | Path) -> ScanResult:
    """List and label every clip under ``root`` (CSV first, folder layout otherwise)."""
    dataset = find_dataset_root(Path(root)).resolve()
    csv_path = dataset / CSV_NAME
    media = sorted(_media_files(dataset))  # one walk of the tree serves both purposes
    result = _scan_csv(dataset, csv_path) if csv_path.is_file() else _scan_tree(dataset, media)
    named = {c.path for c in result.clips}
    result.unlisted = [p for p in media if p not in named]
    result.clips.sort(key=lambda c: c.path)
    return result


def _media_files(dataset: Path) -> list[str]:
    found = []
    for dirpath, _dirnames, filenames in os.walk(dataset):
        for name in filenames:
            if Path(name).suffix.lower() in VIDEO_SUFFIXES:
                found.append((Path(dirpath) / name).relative_to(dataset).as_posix())
    return found


def confine(dataset: Path, rel: str) -> Path | None:
    """``dataset / rel`` if it stays inside ``dataset`` after resolving links, else None."""
    pure = PurePosixPath(rel)
    if pure.is_absolute() or ".." in pure.parts or not pure.parts:
        return None
    resolved = (dataset / pure).resolve()
    return resolved if resolved.is_relative_to(dataset) else None


def _scan_csv(dataset: Path, csv_path: Path) -> ScanResult:
    result = ScanResult(root=dataset, clips=[], used_csv=True)
    with csv_path.open(newline="", encoding="utf-8-sig") as handle:
        reader = csv.reader(handle)
        header = next(reader, None)
        if header is None or [h.strip() for h in header[:9]] != CSV_HEADER:
            raise ScanError(
                f"{csv_path}: unexpected header {header!r}; expected "
                f"'{','.join(CSV_HEADER)},' (FakeAVCeleb's meta_data.csv)"
            )
        seen: set[str] = set()
        for line_no, row in enumerate(reader, start=2):
            if not any(cell.strip() for cell in row):
                continue
            clip, problem = _clip_from_row(dataset, row, result)
            where = f"{csv_path.name}:{line_no}"
            if problem == "missing":
                result.missing.append(f"{where}: {clip}")
            elif problem:
                result.refused.append(f"{where}: {problem}")
            elif clip.path in seen:
                result.refused.append(f"{where}: duplicate row for {clip.path}")
            else:
                seen.add(clip.path)
                result.clips.append(clip)
    return result


def _clip_from_row(dataset: Path, row: list[str], result: ScanResult):
    """Return ``(clip, None)``, ``(relpath, "missing")`` or ``(None, reason)``."""
    if len(row) < 10:
        return None, f"expected 10 fields, found {len(row)}"
    source, target1, target2, method, letter, type_dir, race, gender, name, directory = (
        cell.strip() for cell in row[:10]
    )
    category = LETTER_TO_CATEGORY.get(letter)
    if category is None:
        return None, f"unknown category {letter!r}"
    if TYPE_DIR_TO_CATEGORY.get(type_dir, category) != category:
        return None, f"category {letter} disagrees with type {type_dir}"
    # The 10th field starts with the release's folder name ("FakeAVCeleb/"): drop it.
    dir_path = PurePosixPath(directory.replace("\\", "/"))
    if dir_path.is_absolute():
        return None, f"path {directory}/{name} is absolute: it leaves the dataset root; refused"
    dir_parts = dir_path.parts
    if not dir_parts or PurePosixPath(name).name != name or not name:
        return None, f"bad path fields {name!r}, {directory!r}"
    rel = PurePosixPath(*dir_parts[1:], name).as_posix()
    if confine(dataset, rel) is None:
        return None, f"path {directory}/{name} leaves the dataset root; refused"
    found = _existing_spelling(dataset, rel)
    if found is None:
        return rel, "missing"
    if found != rel:
        result.respelled += 1
    clip = ClipSource(
        clip_id=make_clip_id(source, category, found),
        path=found,
        category=category,
        source_type=type_dir,
        identity=source,
        method=method or _DEFAULT_METHOD.get(category, "unknown"),
        race=race,
        gender=gender,
        target1=target1,
        target2=target2,
    )
    return clip, None


def _existing_spelling(dataset: Path, rel: str) -> str | None:
    """``rel`` if it is a file, else the same path under the other race spelling, else None."""
    resolved = confine(dataset, rel)
    if resolved is not None and resolved.is_file():
        return rel
    parts = list(PurePosixPath(rel).parts)
    if len(parts) >= 2 and parts[1] in _RACE_SPELLINGS:
        parts[1] = _RACE_SPELLINGS[parts[1]]
        alt = PurePosixPath(*parts).as_posix()
        resolved = confine(dataset, alt)
        if resolved is not None and resolved.is_file():
            return alt
    return None


def _scan_tree(dataset: Path, media: list[str]) -> ScanResult:
    result = ScanResult(root=dataset, clips=[], used_csv=False)
    for rel in media:
        parts = PurePosixPath(rel).parts
        category = TYPE_DIR_TO_CATEGORY.get(parts[0]) if len(parts) == 5 else None
        if category is None:
            continue  # reported as unlisted: not in the <type>/<race>/<gender>/<id>/ layout
        if confine(dataset, rel) is None:
            result.refused.append(f"{rel}: links outside the dataset root; refused")
            continue
        type_dir, race, gender, identity, name = parts
        result.clips.append(
            ClipSource(
                clip_id=make_clip_id(identity, category, rel),
                path=rel,
                category=category,
                source_type=type_dir,
                identity=identity,
                method=infer_method(category, name),
                race=race,
                gender=gender,
            )
        )
    return result


def infer_method(category: str, file_name: str) -> str:
    """Manipulation method from a file name (used when there is no CSV)."""
    if category in _DEFAULT_METHOD:
        return _DEFAULT_METHOD[category]
    lowered = file_name.lower()
    for method, tokens in _METHOD_TOKENS:
        if any(token in lowered for token in tokens):
            return method
    return "unknown"


__all__ = [
    "ClipSource",
    "ScanError",
    "ScanResult",
    "confine",
    "find_dataset_root",
    "infer_method",
    "make_clip_id",
    "scan_dataset",
]
