"""FakeAVCeleb adapter: a v1.2 release's tree and ``meta_data.csv``, scanned into clips.

The tree's names (root, type folders, the CSV's columns) are in
:mod:`pipeline.datasets.fakeavceleb_tree`, re-exported here. The CSV's quirks
(see DESIGN.md): a trailing comma in the header, the file *name* in the ``path``
column and its directory in an unnamed 10th column that starts with
``FakeAVCeleb/`` rather than the real root folder name.

The scan reads ``meta_data.csv`` when present; otherwise labels are inferred from
the folder tree. The dataset gives no segments and no official split, so every
clip has ``fake_segments`` None and ``official_split`` ``""``.

Every path is confined to the dataset root: a row that climbs out (``..``,
absolute paths, symlinks pointing outside) is refused and reported, never read;
``meta_data.csv`` itself included. Only regular files are ever opened: a FIFO,
socket or device named ``.mp4`` (which would block or misbehave on ``open()``),
a symlink loop, or a name that is not valid UTF-8 is a refused row, found with
``lstat``/``stat`` alone. One bad CSV row (a NUL, an undecodable byte, a field
over csv's 128 KiB limit) is refused with its line number; the other rows are
scanned as usual.

The release lists 22 files twice, once per method (``faceswap-wav2lip`` and
then ``wav2lip``). Rows naming the same file with the same labels (category,
type, source, race, gender) are merged into one clip whose ``method`` (and
``target1``/``target2`` where they differ) joins the values with ``+``
(``faceswap-wav2lip+wav2lip``), and reported in ``ScanResult.merged``. A row
naming the same file with other labels is refused. The same file is the same real
path: a link inside the root is an alias of its target, never a second clip.
"""

from __future__ import annotations

import csv
import io
import os
from dataclasses import replace
from pathlib import Path, PurePosixPath
from typing import Any

from pipeline.datasets.aliases import drop_aliases
from pipeline.datasets.base import (
    LEAVES,
    MISSING,
    ClipSink,
    ClipSource,
    ScanError,
    ScanResult,
    clip_source,
    examine,
    shown,
    undecodable,
    walk_media,
)
from pipeline.datasets.fakeavceleb_tree import (
    CSV_COLUMNS,
    CSV_DIR_PREFIX,
    CSV_HEADER,
    CSV_NAME,
    DEFAULT_METHOD,
    RACE_SPELLINGS,
    ROOT_NAME,
    TYPE_DIRS,
    infer_method,
)
from schemas.labels import LETTER_TO_CATEGORY, TYPE_DIR_TO_CATEGORY
from schemas.safe_files import open_inside

NAME = "fakeavceleb"
#: What detection looks for, as the error message says it.
WANTED = "FakeAVCeleb: meta_data.csv or the folders RealVideo-RealAudio, ... (FakeVideo-FakeAudio)"


def looks_like(path: Path) -> bool:
    """True when ``path`` holds ``meta_data.csv`` or one of the four type folders."""
    return looks_like_dataset(path)


def scan(root: str | Path, sink: ClipSink | None = None) -> ScanResult:
    """Every clip of the FakeAVCeleb tree at ``root`` (or the one just under it).

    The release's own duplicate rows are merged across the whole CSV, so a ``sink``
    gets the clips once the scan is complete (21,566 paths take seconds).
    """
    result = scan_dataset(root)
    if sink is not None:
        sink.opened(result.root)
        for clip in result.clips:
            sink.found(clip)
    return result


def find_dataset_root(root: Path) -> Path:
    """Accept the folder holding ``meta_data.csv`` / the type folders, or its parent."""
    root = Path(root)
    if not root.is_dir():
        raise ScanError(f"dataset root {root} is not a directory")
    if looks_like_dataset(root):
        return root
    candidates = [p for p in sorted(root.iterdir()) if p.is_dir() and looks_like_dataset(p)]
    if len(candidates) == 1:
        return candidates[0]
    if len(candidates) > 1:
        names = ", ".join(p.name for p in candidates)
        raise ScanError(f"{root} holds several datasets ({names}); pass one of them")
    raise ScanError(
        f"{root} does not look like FakeAVCeleb: no {CSV_NAME} and none of the folders "
        f"{', '.join(TYPE_DIR_TO_CATEGORY)}"
    )


def looks_like_dataset(path: Path) -> bool:
    """True when ``path`` holds ``meta_data.csv`` or one of the four type folders."""
    return (path / CSV_NAME).is_file() or any((path / t).is_dir() for t in TYPE_DIR_TO_CATEGORY)


def scan_dataset(root: str | Path) -> ScanResult:
    """List and label every clip under ``root`` (CSV first, folder tree otherwise).

    Raises ``ScanError`` when the root cannot be scanned at all (not a dataset,
    a wrong CSV header, a ``meta_data.csv`` that is not a regular file inside
    the root). Everything smaller is a row of ``missing``, ``refused``,
    ``merged`` or ``unlisted``, each listed once.
    """
    dataset = find_dataset_root(Path(root)).resolve()
    csv_path = _confined_csv(dataset)
    walk = walk_media(dataset)  # one walk of the tree serves both purposes
    result, examined = (
        _scan_csv(dataset, csv_path) if csv_path else (_scan_tree(dataset, walk.media), set())
    )
    aliases = drop_aliases(dataset, result)  # in the tree: a link labels one video twice
    # Odd files no row already reported (in a tree without CSV: all of them), once each.
    result.refused.extend(
        f"{shown(rel)}: {reason}; refused" for rel, reason in walk.odd if rel not in examined
    )
    named = {c.path for c in result.clips} | aliases
    result.unlisted = [p for p in walk.media if p not in named]
    result.unsupported = walk.unsupported
    result.clips.sort(key=lambda c: c.path)
    return result


def _confined_csv(dataset: Path) -> Path | None:
    """``meta_data.csv`` when present; ``ScanError`` when it is a link out of the root or odd.

    Checked with ``lstat``/``stat`` before anything opens it: a link to ``/etc/passwd``
    must not be read, not even for an error message.
    """
    csv_path = dataset / CSV_NAME
    if not os.path.lexists(csv_path):
        return None
    reason = examine(dataset, CSV_NAME)
    if reason is None:
        return csv_path
    if reason == LEAVES:
        reason = "a link to a file outside the dataset root"
    raise ScanError(f"{csv_path} is {reason}; refused (copy the file into the dataset root)")


def _scan_csv(dataset: Path, csv_path: Path) -> tuple[ScanResult, set[str]]:
    """Clips named by ``meta_data.csv``; also the relative paths its rows examined.

    Bytes that are not UTF-8 are decoded as surrogates (``surrogateescape``) so
    that the row holding them, and only that row, is refused.
    """
    result = ScanResult(root=dataset, clips=[], used_csv=True)
    examined: set[str] = set()
    with (
        open_inside(os.path.realpath(csv_path), dataset, what="metadata file") as raw,
        io.TextIOWrapper(raw, encoding="utf-8-sig", errors="surrogateescape", newline="") as text,
    ):
        reader = csv.reader(text)
        _read_header(reader, csv_path)
        first_seen: dict[str, tuple[int, int]] = {}  # real path -> (index in clips, CSV line)
        while True:
            line_no = reader.line_num + 1  # where this record starts
            where = f"{csv_path.name}:{line_no}"
            try:
                row = next(reader)
            except StopIteration:
                break
            except csv.Error as exc:  # e.g. "field larger than field limit (131072)"
                result.refused.append(f"{where}: not a valid CSV row ({exc}); refused")
                continue
            if not any(cell.strip() for cell in row):
                continue
            _add_row(dataset, row, (where, line_no), result, examined, first_seen)
    return result, examined


def _read_header(reader: Any, csv_path: Path) -> list[str]:
    try:
        header = next(reader, None)
    except csv.Error as exc:
        raise ScanError(f"{csv_path}: unreadable header ({exc})") from None
    if header is None or tuple(h.strip() for h in header[:9]) != CSV_COLUMNS:
        header_text = shown(repr(header))
        raise ScanError(
            f"{csv_path}: unexpected header {header_text}; expected "
            f"'{CSV_HEADER}' (FakeAVCeleb's meta_data.csv)"
        )
    return header


def _add_row(
    dataset: Path,
    row: list[str],
    at: tuple[str, int],
    result: ScanResult,
    examined: set[str],
    first_seen: dict[str, tuple[int, int]],
) -> None:
    """Turn one CSV row into a clip, a merge, or one ``missing``/``refused`` entry.

    ``at`` is ``("meta_data.csv:LINE", LINE)``.
    """
    where, line_no = at
    problem = _row_problem(row)
    if problem is None:
        try:
            clip, problem = _clip_from_row(dataset, row, result, examined)
        except (OSError, ValueError, RuntimeError) as exc:  # one odd row never stops the scan
            clip, problem = (
                None,
                f"cannot be examined ({shown(f'{type(exc).__name__}: {exc}')}); refused",
            )
    if problem == MISSING:
        result.missing.append(f"{where}: {shown(str(clip))}")
        return
    if problem:
        result.refused.append(f"{where}: {problem}")
        return
    assert isinstance(clip, ClipSource)
    real = os.path.realpath(dataset / clip.path)  # a link inside the root is an alias
    if real not in first_seen:
        first_seen[real] = (len(result.clips), line_no)
        result.clips.append(clip)
        return
    index, first_line = first_seen[real]
    earlier = result.clips[index]
    if _labels(earlier) != _labels(clip):
        result.refused.append(
            f"{where}: duplicate row for {shown(clip.path)} with other labels than line "
            f"{first_line} ({shown('/'.join(_labels(clip)))} vs {shown('/'.join(_labels(earlier)))}); refused"
        )
        return
    merged = _merge(earlier, clip)
    result.clips[index] = merged
    result.merged.append(
        f"{where}: {shown(clip.path)} merged with line {first_line} (method {shown(merged.method)})"
    )


def _row_problem(row: list[str]) -> str | None:
    """Why a row cannot even be looked at (a NUL, undecodable bytes), else None."""
    for cell in row:
        if "\x00" in cell:
            return "a field holds a NUL byte; refused"
        if undecodable(cell):
            byte = next(ord(ch) - 0xDC00 for ch in cell if "\udc80" <= ch <= "\udcff")
            return f"not valid UTF-8 (byte 0x{byte:02x}); refused"
    return None


def _labels(clip: ClipSource) -> tuple[str, ...]:
    """What must agree for two rows to be one clip: the label and the split's inputs."""
    return (clip.category, clip.source_type, clip.identity, clip.race, clip.gender)


def _merge(first: ClipSource, other: ClipSource) -> ClipSource:
    """One clip for two rows of the same file: how-it-was-made fields joined with ``+``."""
    return replace(
        first,
        method=_join(first.method, other.method),
        target1=_join(first.target1, other.target1),
        target2=_join(first.target2, other.target2),
    )


def _join(first: str, other: str) -> str:
    """``a`` + ``b`` -> ``a+b``; a value already present, or ``-`` (none), adds nothing."""
    values = [v for v in first.split("+") if v]
    for value in other.split("+"):
        if value and value != "-" and value not in values:
            values.append(value)
    if len(values) > 1 and "-" in values:
        values.remove("-")
    return "+".join(values) or first


def _clip_from_row(dataset: Path, row: list[str], result: ScanResult, examined: set[str]):
    """Return ``(clip, None)``, ``(relpath, MISSING)`` or ``(None, reason)``."""
    if len(row) < 10:
        return None, f"expected 10 fields, found {len(row)}"
    source, target1, target2, method, letter, type_dir, race, gender, name, directory = (
        cell.strip() for cell in row[:10]
    )
    category = LETTER_TO_CATEGORY.get(letter)
    if category is None:
        return None, f"unknown category {shown(repr(letter))}"
    if TYPE_DIR_TO_CATEGORY.get(type_dir, category) != category:
        return None, f"category {letter} disagrees with type {shown(type_dir)}"
    # The 10th field starts with the release's folder name ("FakeAVCeleb/"): drop it.
    dir_path = PurePosixPath(directory.replace("\\", "/"))
    named = shown(f"{directory}/{name}")
    if dir_path.is_absolute():
        return None, f"path {named} is absolute: it leaves the dataset root; refused"
    dir_parts = dir_path.parts
    if not dir_parts or PurePosixPath(name).name != name or not name:
        return None, f"bad path fields {shown(repr(name))}, {shown(repr(directory))}"
    rel = PurePosixPath(*dir_parts[1:], name).as_posix()
    found, reason = _existing_spelling(dataset, rel, examined)
    if reason == LEAVES:
        return None, f"path {named} leaves the dataset root; refused"
    if reason == MISSING:
        return rel, MISSING
    if reason is not None:
        return None, f"{shown(found or rel)} is {reason}; refused"
    assert found is not None
    if found != rel:
        result.respelled += 1
    clip = clip_source(
        NAME,
        found,
        source,
        category,
        source_type=type_dir,
        method=method or DEFAULT_METHOD.get(category, "unknown"),
        race=race,
        gender=gender,
        target1=target1,
        target2=target2,
    )
    return clip, None


def _existing_spelling(
    dataset: Path, rel: str, examined: set[str]
) -> tuple[str | None, str | None]:
    """``(path, None)`` for the spelling of ``rel`` that is a regular file, else ``(path, why)``.

    ``rel`` first, then the same path under the other race spelling when ``rel``
    is missing; ``why`` is ``MISSING`` when neither exists. Every path tried is
    added to ``examined`` so the tree walk does not report it a second time.
    """
    examined.add(rel)
    reason = examine(dataset, rel)
    if reason != MISSING:
        return rel, reason
    parts = list(PurePosixPath(rel).parts)
    if len(parts) >= 2 and parts[1] in RACE_SPELLINGS:
        parts[1] = RACE_SPELLINGS[parts[1]]
        alt = PurePosixPath(*parts).as_posix()
        examined.add(alt)
        alt_reason = examine(dataset, alt)
        if alt_reason != MISSING:
            return alt, alt_reason
    return None, MISSING


def _scan_tree(dataset: Path, media: list[str]) -> ScanResult:
    """Label the regular files in ``media`` by their folders (the walk already vetted them)."""
    result = ScanResult(root=dataset, clips=[], used_csv=False)
    for rel in media:
        parts = PurePosixPath(rel).parts
        category = TYPE_DIR_TO_CATEGORY.get(parts[0]) if len(parts) == 5 else None
        if category is None:
            continue  # reported as unlisted: not in the <type>/<race>/<gender>/<id>/ tree
        type_dir, race, gender, identity, name = parts
        method = infer_method(category, name)
        result.clips.append(
            clip_source(
                NAME,
                rel,
                identity,
                category,
                source_type=type_dir,
                method=method,
                race=race,
                gender=gender,
            )
        )
    return result


__all__ = [
    "CSV_COLUMNS",
    "CSV_DIR_PREFIX",
    "CSV_HEADER",
    "CSV_NAME",
    "NAME",
    "ROOT_NAME",
    "TYPE_DIRS",
    "WANTED",
    "find_dataset_root",
    "infer_method",
    "looks_like",
    "looks_like_dataset",
    "scan",
    "scan_dataset",
]
