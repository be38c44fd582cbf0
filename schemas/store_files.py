"""What counts as a store's own file: the names a store writes, folder by folder.

``ingest --overwrite`` deletes a store only when everything in it is something a store
writes (:func:`foreign_entries` finds nothing else); a file a user put anywhere in it
(``splits/my_notes.txt``, ``clips/README.md``, ``manifest.d/keep.txt``) makes it
refuse, naming the file. A store's own entries, by folder (``<id>`` a clip id, see
:func:`schemas.layout.check_name`; ``<hex>`` lower-case hex digits)::

    <store>/      zarr.json, manifest.parquet, .lock (plain files); clips/, splits/,
                  manifest.d/, .staging/ (folders); temporary files of an interrupted
                  atomic write: .zarr.json.<hex>.tmp, .manifest.parquet.<hex>.tmp
    clips/        zarr.json; sharded: <hh>/<hh>/<id>/ (two hex digits each);
                  flat (versions 1 and 2): <id>/
    clips/…/<id>/ zarr.json; video/ audio/ face_boxes/ landmarks/ mouth/ labels/
    an array      zarr.json; c/ holding digit-named folders and chunk files
    labels/       zarr.json; fake/ audio_fake/ video_fake/ (arrays)
    splits/       <name>.parquet, .<name>.parquet.<hex>.tmp
    manifest.d/   <seq:012d>-<hex8>.parquet, .<that name>.<hex>.tmp
    shards/       packed stores (format 4): r<run>-<writer>-<k>/ Zarr groups holding
                  zarr.json, journal.jsonl, index/ and the arrays above, each a zarr.json
                  and one chunk file c.0.0… (schemas.packed_index)
    .staging/     anything: the scratch space of writers, emptied by every ingest

A store never writes a link, so a link anywhere is foreign (and so is a FIFO, socket
or device, and a file where a folder belongs or the reverse). The walk reads every
folder of the store once (``os.scandir``: no ``stat`` per entry on common file
systems): about what deleting the store costs anyway.
"""

from __future__ import annotations

import contextlib
import os
import re
from collections.abc import Callable, Iterator
from pathlib import Path

from schemas.layout import (
    CLIPS_DIR,
    LABELS_DIR,
    LAYOUT_FLAT,
    LOCK_FILE,
    MANIFEST_FILE,
    SHARDS_DIR,
    SPLITS_DIR,
    STAGING_DIR,
    StoreError,
    check_name,
    clip_layout,
)
from schemas.streams import CLIP_ARRAY_PATHS, LABEL_NAMES

#: The folder of the manifest's fragments (``schemas.manifest_store.MANIFEST_DIR``,
#: which imports the modules this one is imported by).
MANIFEST_DIR = "manifest.d"
ROOT_FILES = frozenset({"zarr.json", MANIFEST_FILE, LOCK_FILE})
ROOT_DIRS = frozenset({CLIPS_DIR, SPLITS_DIR, MANIFEST_DIR, STAGING_DIR, SHARDS_DIR})
#: The arrays a clip folder may hold and its labels (the table of :mod:`schemas.streams`).
CLIP_ENTRIES = frozenset(CLIP_ARRAY_PATHS)
LABEL_ARRAYS = frozenset(LABEL_NAMES)

_TMP = r"\.[0-9a-f]{32}\.tmp"  # schemas.durable.atomic_write's suffix
_ROOT_TMP_RE = re.compile(rf"^\.(zarr\.json|{re.escape(MANIFEST_FILE)}){_TMP}$")
_FRAGMENT = r"\d{12}-[0-9a-f]{8}\.parquet"
_FRAGMENT_FILE_RE = re.compile(rf"^(?:{_FRAGMENT}|\.{_FRAGMENT}{_TMP})$")
_SPLIT_FILE_RE = re.compile(rf"^(?:(?P<name>[^.][^/]*)\.parquet|\.[^/]+\.parquet{_TMP})$")
_CLIPS_TMP_RE = re.compile(rf"^\.zarr\.json{_TMP}$")
_SHARD_RE = re.compile(r"^[0-9a-f]{2}$")
_DIGITS_RE = re.compile(r"^\d+$")
#: A packed store's shard folders, ``r<run>-<writer>-<k>`` (schemas.packed_index), their
#: open journal, their index array, and the one chunk key of a shard array (``c.0.0…``).
SHARD_NAME_RE = re.compile(r"^r(\d{6})-([0-9a-f]{8})-(\d{5})$")
JOURNAL_FILE = "journal.jsonl"
INDEX_ARRAY = "index"
_SHARD_CHUNK_RE = re.compile(r"^c(\.0)+$")
#: How many foreign entries a refusal names; the walk stops at the first this many.
NAMED = 5


class _Foreign(Exception):
    """Enough foreign entries were found: the walk stops."""


def foreign_entries(store: str | Path, limit: int = NAMED) -> list[str]:
    """The first ``limit`` entries of ``store`` that a store does not write, as paths
    relative to it (``splits/my_notes.txt``); empty when the store holds only its own.

    Call only for a directory carrying the store marker (its layout decides what
    ``clips/`` may hold).
    """
    root = Path(store)
    found: list[str] = []

    def foreign(entry: os.DirEntry[str]) -> None:
        found.append(os.path.relpath(entry.path, root))
        if len(found) >= limit:
            raise _Foreign

    with contextlib.suppress(_Foreign):
        _walk_root(root, foreign)
    return found


Report = Callable[[os.DirEntry[str]], None]


def _entries(folder: str | Path) -> Iterator[os.DirEntry[str]]:
    with os.scandir(folder) as listing:
        yield from sorted(listing, key=lambda e: e.name)


def _is_file(entry: os.DirEntry[str]) -> bool:
    return entry.is_file(follow_symlinks=False)


def _is_dir(entry: os.DirEntry[str]) -> bool:
    return entry.is_dir(follow_symlinks=False)


def _walk_root(root: Path, foreign: Report) -> None:
    flat = clip_layout(root) == LAYOUT_FLAT
    for entry in _entries(root):
        name = entry.name
        if _is_file(entry) and (name in ROOT_FILES or _ROOT_TMP_RE.match(name)):
            continue
        if not (_is_dir(entry) and name in ROOT_DIRS):
            foreign(entry)
        elif name == CLIPS_DIR:
            _walk_clips(entry.path, flat, foreign)
        elif name == SPLITS_DIR:
            _walk_files(entry.path, _is_split_file, foreign)
        elif name == MANIFEST_DIR:
            _walk_files(entry.path, _FRAGMENT_FILE_RE.match, foreign)
        elif name == SHARDS_DIR:
            _walk_shards(entry.path, foreign)
        # .staging/: the writers' scratch space, whatever it holds


def _walk_files(folder: str, owned: Callable[[str], object], foreign: Report) -> None:
    for entry in _entries(folder):
        if not (_is_file(entry) and owned(entry.name)):
            foreign(entry)


def _is_split_file(name: str) -> bool:
    match = _SPLIT_FILE_RE.match(name)
    if match is None:
        return False
    split = match.group("name")
    return split is None or _tame(split)


def _tame(name: str) -> bool:
    """Whether ``name`` is one a store could have given a clip or split."""
    try:
        check_name(name, "name")
    except StoreError:
        return False
    return True


def _walk_clips(folder: str, flat: bool, foreign: Report, depth: int = 0) -> None:
    """``clips/``: its group's ``zarr.json``, then two levels of shards (sharded) or
    none (flat), then clip folders."""
    for entry in _entries(folder):
        own_file = entry.name == "zarr.json" or _CLIPS_TMP_RE.match(entry.name)
        if depth == 0 and _is_file(entry) and own_file:
            continue
        if not _is_dir(entry):
            foreign(entry)
        elif not flat and depth < 2:
            if _SHARD_RE.match(entry.name):
                _walk_clips(entry.path, flat, foreign, depth + 1)
            else:
                foreign(entry)
        elif _tame(entry.name):
            _walk_group(entry.path, CLIP_ENTRIES | {LABELS_DIR}, foreign)
        else:
            foreign(entry)


def _walk_group(folder: str, arrays: frozenset[str], foreign: Report) -> None:
    """A Zarr group: its ``zarr.json`` and the named arrays (``labels/`` a group too)."""
    for entry in _entries(folder):
        if _is_file(entry) and entry.name == "zarr.json":
            continue
        if not (_is_dir(entry) and entry.name in arrays):
            foreign(entry)
        elif entry.name == LABELS_DIR:
            _walk_group(entry.path, LABEL_ARRAYS, foreign)
        else:
            _walk_array(entry.path, foreign)


def _walk_array(folder: str, foreign: Report) -> None:
    for entry in _entries(folder):
        if _is_file(entry) and entry.name == "zarr.json":
            continue
        if _is_dir(entry) and entry.name == "c":
            _walk_chunks(entry.path, foreign)
        else:
            foreign(entry)


def _walk_chunks(folder: str, foreign: Report) -> None:
    """Chunk keys below ``c/``: digit-named folders and files, any depth."""
    for entry in _entries(folder):
        if not _DIGITS_RE.match(entry.name):
            foreign(entry)
        elif _is_dir(entry):
            _walk_chunks(entry.path, foreign)
        elif not _is_file(entry):
            foreign(entry)


def _walk_shards(folder: str, foreign: Report) -> None:
    """``shards/``: shard folders (``r<run>-<writer>-<k>``), each a Zarr group of the
    named arrays, ``index/`` and, while open, ``journal.jsonl``."""

    def array(path: str) -> None:
        for entry in _entries(path):
            own = entry.name == "zarr.json" or _CLIPS_TMP_RE.match(entry.name)
            if not (_is_file(entry) and (own or _SHARD_CHUNK_RE.match(entry.name))):
                foreign(entry)

    def group(path: str, arrays: frozenset[str]) -> None:
        for entry in _entries(path):
            own = entry.name in ("zarr.json", JOURNAL_FILE) or _CLIPS_TMP_RE.match(entry.name)
            if _is_file(entry) and own:
                continue
            if not (_is_dir(entry) and entry.name in arrays):
                foreign(entry)
            elif entry.name == LABELS_DIR:
                group(entry.path, LABEL_ARRAYS)
            else:
                array(entry.path)

    for entry in _entries(folder):
        if _is_dir(entry) and SHARD_NAME_RE.match(entry.name):
            group(entry.path, CLIP_ENTRIES | {LABELS_DIR, INDEX_ARRAY})
        else:
            foreign(entry)
