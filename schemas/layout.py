"""Where things lie in a feature store, how they are named, and the store's error.

Layout (format version 3)::

    <store>/
      zarr.json                 root Zarr v3 group; attributes["mscct"] = store metadata
      clips/<h0>/<h1>/<clip_id>/   one Zarr group per committed clip, h0 h1 = the
                                first two byte pairs of sha256(clip_id) in hex
        zarr.json               attributes["record"] = the clip's manifest row
        video/                  (T, H, W, 3) uint8 face crops
        audio/                  (T, 104) float32 audio features, frame t <-> video frame t
        face_boxes/ landmarks/ mouth/   (T, ...) per-frame extras (schemas.clips.EXTRA_ARRAYS)
        labels/                 only where the dataset gives fake segments (version 2):
          fake/ audio_fake/ video_fake/   (T,) uint8 per-frame labels, 1 = fake
      manifest.parquet          one row per clip (ok or failed), schema MANIFEST_SCHEMA
      splits/<name>.parquet     split tables, schema SPLIT_SCHEMA, parameters in metadata
      .staging/                 clips being written; never read

Version 2 added ``labels/``; version 3 shards ``clips/`` (root metadata
``"clip_layout": "sharded"``) and keeps the manifest as fragments (``"manifest":
"fragments"``). A version-1 or 2 store has neither key: its clips lie flat in
``clips/<clip_id>/`` and stay so when clips are added to it (a store is never
migrated); every older version is read as a subset of the current one
(:data:`READABLE_VERSIONS`).

Why two levels of 256: at 2 million clips a flat ``clips/`` would be one directory of
2 M entries (every listing, lookup and ``rm`` of it slow on ext4, and worse on network
file systems); sharded, ``clips/`` holds 256 folders, each of them 256, and each of
those 65 536 leaves about 30 clips (2e6 / 65 536). The hash spreads any naming scheme
evenly, and the path needs nothing but the clip id.

The store is created and opened by :mod:`schemas.lifecycle`, its clips written and
committed by :mod:`schemas.clips`, read by :mod:`schemas.readers`, and its tables
written and read by :mod:`schemas.table_io`. :func:`clip_dir` and
:func:`clip_parts` are the one way to a clip's folder, whatever the layout.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from pathlib import Path
from typing import Any

from schemas.cli_errors import UserError
from schemas.safe_files import RefusedFile, read_text_inside
from schemas.store_url import store_url

FORMAT_NAME = "mscct-store"
FORMAT_VERSION = 3
#: The format of a packed store (``ingest --packed``, ``convert --to packed``): clips
#: packed into shards (:mod:`schemas.packed_write`); new stores are still made in
#: :data:`FORMAT_VERSION` unless asked.
PACKED_VERSION = 4
#: Format versions this software opens: every older one is a subset of the current.
READABLE_VERSIONS = (1, 2, 3, 4)
#: Root metadata key naming how ``clips/`` is laid out; absent (versions 1 and 2) = flat.
CLIP_LAYOUT_KEY = "clip_layout"
LAYOUT_FLAT = "flat"  # clips/<clip_id>/
LAYOUT_SHARDED = "sharded"  # clips/<h0>/<h1>/<clip_id>/ (new stores)
LAYOUT_PACKED = "packed"  # shards/<name>/, many clips each (format 4, schemas.packed_index)
CLIP_LAYOUTS = (LAYOUT_FLAT, LAYOUT_SHARDED, LAYOUT_PACKED)
AUDIO_CHANNELS = 104

MANIFEST_FILE = "manifest.parquet"
LOCK_FILE = ".lock"  # held by the one process allowed to write clips (see schemas.lock)
CLIPS_DIR = "clips"
SHARDS_DIR = "shards"  # format 4: the shards that hold the clips
#: The root metadata key of a packed store's shard size (bytes of rows, all arrays).
SHARD_TARGET_KEY = "shard_target_bytes"
#: A shard is sealed once its arrays hold this many bytes (or when its writer ends): 1 GiB
#: keeps a store of ten-second 112-pixel clips near one file per clip and a half, and a
#: shard small beside what a cluster file system stripes.
DEFAULT_SHARD_TARGET = 1 << 30
LABELS_DIR = "labels"  # inside a clip's group: its per-frame labels
SPLITS_DIR = "splits"
STAGING_DIR = ".staging"
SPLIT_PARAMS_KEY = b"mscct.split_params"
#: The largest JSON file of a store that is read (a clip's ``zarr.json`` carries its
#: manifest record, segments included); anything bigger is damage, refused unread.
STORE_JSON_MAX_BYTES = 64 * 1024 * 1024

_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$")


class StoreError(UserError, RuntimeError):
    """The store is missing, of another format or recipe, or inconsistent."""


def check_name(name: str, what: str) -> str:
    """Clip ids and split names become directory / file names: keep them tame."""
    if not _NAME_RE.match(name):
        raise StoreError(f"invalid {what} {name!r}: use letters, digits, '_', '.', '-'")
    return name


def shard_of(clip_id: str) -> tuple[str, str]:
    """The two shard folder names of a clip in a sharded store: byte pairs 0 and 1 of
    ``sha256(clip_id)`` in lower-case hex."""
    digest = hashlib.sha256(clip_id.encode()).hexdigest()
    return digest[0:2], digest[2:4]


# A store's layout is fixed when it is created and never changes while it exists, so
# it is read once per process and store: clip paths are built per training item.
_LAYOUT_OF_ROOT: dict[str, str] = {}  # resolved store path -> its clip layout
_ROOT_OF_PATH: dict[str, str] = {}  # absolute store path as callers spell it -> resolved


def clip_layout(store: str | Path) -> str:
    """The store's clip layout, :data:`LAYOUT_FLAT` or :data:`LAYOUT_SHARDED`.

    Read from the root ``zarr.json`` the first time a store is asked about, then
    cached by its resolved path (:func:`forget_layout` drops it; ``create_store`` calls
    that). A path that holds no store yet answers :data:`LAYOUT_SHARDED`, the layout a
    new store gets, and is not cached. Once cached, an absolute path costs two dict
    look-ups and no system call.

    Raises:
        StoreError: the root metadata is unreadable or names an unknown layout.
    """
    given = os.fspath(store)
    if not os.path.isabs(given):
        given = os.path.abspath(given)
    root = _ROOT_OF_PATH.get(given)
    layout = _LAYOUT_OF_ROOT.get(root) if root is not None else None
    if layout is not None:
        return layout
    url = store_url(store)  # after the cache: a known local store never gets here
    if url is not None:  # a remote store's layout: learnt by open_store
        return _LAYOUT_OF_ROOT.get(url, LAYOUT_SHARDED)
    root = os.path.realpath(given)
    layout = _LAYOUT_OF_ROOT.get(root)
    if layout is None:
        layout = _read_layout(root)
        if layout is None:
            return LAYOUT_SHARDED
        _LAYOUT_OF_ROOT[root] = layout
    _ROOT_OF_PATH[given] = root
    return layout


def _read_layout(root: str) -> str | None:
    """The layout a store's root metadata records; None where there is no store."""
    path = Path(root) / "zarr.json"
    try:
        meta = read_json(path, root)
    except FileNotFoundError:
        return None
    attributes = meta.get("attributes") if isinstance(meta, dict) else None
    mscct = attributes.get("mscct") if isinstance(attributes, dict) else None
    if not isinstance(mscct, dict):
        return None  # not one of ours: the caller's open_store says so
    layout = mscct.get(CLIP_LAYOUT_KEY, LAYOUT_FLAT)
    if layout not in CLIP_LAYOUTS:
        raise StoreError(
            f"store {root} has clip layout {layout!r}; this software reads "
            f"{', '.join(CLIP_LAYOUTS)}"
        )
    return str(layout)


def refuse_url(store: str | Path) -> None:
    """Refuse a store named by a URL to a writer (one line): stores are written locally
    and synced to a bucket once finished; nothing local is made for the URL."""
    url = store_url(store)
    if url is not None:
        raise StoreError(
            f"--store {url} is in object storage: stores are written locally (sync the "
            "finished store to the bucket, then read it from there)"
        )


def remember_layout(url: str, layout: str) -> None:
    """Record the clip layout of the remote store at ``url`` (its root metadata was read)."""
    _LAYOUT_OF_ROOT[url] = layout


def forget_layout(store: str | Path) -> None:
    """Drop what :func:`clip_layout` cached for ``store`` (it is being emptied or made)."""
    _LAYOUT_OF_ROOT.pop(os.path.realpath(os.fspath(store)), None)


def clip_parts(store: str | Path, clip_id: str) -> tuple[str, ...]:
    """The path components of a clip's folder below the store root:
    ``("clips", h0, h1, clip_id)`` (sharded) or ``("clips", clip_id)`` (flat).

    The id is checked first, so no component can leave ``clips/``. A packed store's
    clips have no folder of their own (:func:`is_packed`): asking is an error.
    """
    check_name(clip_id, "clip id")
    layout = clip_layout(store)
    if layout == LAYOUT_FLAT:
        return (CLIPS_DIR, clip_id)
    if layout == LAYOUT_PACKED:
        raise StoreError(
            f"store {store} packs its clips into shards: clip {clip_id} has no folder of its own"
        )
    return (CLIPS_DIR, *shard_of(clip_id), clip_id)


def is_packed(store: str | Path) -> bool:
    """Whether the store packs its clips into shards (format 4); cached per store, like
    :func:`clip_layout` (two dict look-ups once known)."""
    return clip_layout(store) == LAYOUT_PACKED


def clip_dir(store: str | Path, clip_id: str) -> Path:
    """The folder of a committed clip (the id checked, so it cannot leave ``clips/``),
    in the store's layout (:func:`clip_layout`)."""
    return Path(store).joinpath(*clip_parts(store, clip_id))


def damaged_clip(store: str | Path, clip_id: str, problem: str) -> StoreError:
    """The error for a committed clip whose stored files are not what was committed.

    Rerunning ``mscct-pipeline split`` would not help (the split names the clip, the
    clip is broken) and a plain ``ingest`` rerun skips committed clips; removing the
    clip's folder makes the rerun redo it, with the same id, so the split still holds.
    In a packed store the clip's shard goes, then ``repair`` forgets its clips and the
    rerun redoes them.
    """
    if is_packed(store):
        return damaged_shard_clip(
            store, clip_id, "its shard (the manifest's shard column)", problem
        )
    return StoreError(
        f"clip {clip_id} of store {store} is damaged: {problem}; remove "
        f"{clip_dir(store, clip_id)} and rerun `mscct-pipeline ingest` "
        f"on the dataset with --store {store} to redo it"
    )


def damaged_shard_clip(store: str | Path, clip_id: str, shard: str, problem: str) -> StoreError:
    """:func:`damaged_clip` for a clip of a packed store in ``shard`` (a path or words)."""
    return StoreError(
        f"clip {clip_id} of store {store} is damaged: {problem}; remove {shard}, run "
        f"`mscct-pipeline repair --store {store}`, then rerun `mscct-pipeline ingest` "
        f"on the dataset with --store {store} to redo the shard's clips"
    )


def read_json(path: Path, root: str | Path | None = None) -> dict[str, Any]:
    """A store's JSON object file, read inside ``root`` (default: its folder).

    Opened through :func:`schemas.safe_files.read_text_inside`: a link, a FIFO or
    directory, a path leading out of ``root`` or a file over
    :data:`STORE_JSON_MAX_BYTES` is refused without being read. Refused, unreadable,
    malformed (nested too deep included) or not a JSON object is a one-line
    :class:`StoreError`; missing is ``FileNotFoundError``.
    """
    try:
        text = read_text_inside(
            path, path.parent if root is None else root, max_bytes=STORE_JSON_MAX_BYTES,
            what="store file",
        )  # fmt: skip
        data = json.loads(text)
    except FileNotFoundError:
        raise
    except NotADirectoryError:  # a folder on the way is a file: nothing is there
        raise FileNotFoundError(f"no such file: {path}") from None
    except RefusedFile as exc:
        raise StoreError(str(exc)) from None
    except (OSError, ValueError, RecursionError) as exc:
        reason = "nested too deep" if isinstance(exc, RecursionError) else exc
        raise StoreError(f"cannot read {path}: {reason}") from None
    if not isinstance(data, dict):
        raise StoreError(
            f"cannot read {path}: it holds a JSON {type(data).__name__}, not an object"
        )
    return data


def os_reason(exc: OSError) -> str:
    """``'Read-only file system'``-style text of an OSError, without the path repeated."""
    return exc.strerror or str(exc) or type(exc).__name__
