"""Where things lie in a feature store, how they are named, and the store's error.

Layout (format version 2)::

    <store>/
      zarr.json                 root Zarr v3 group; attributes["mscct"] = store metadata
      clips/<clip_id>/          one Zarr group per committed clip
        zarr.json               attributes["record"] = the clip's manifest row
        video/                  (T, H, W, 3) uint8 face crops
        audio/                  (T, 104) float32 audio features, frame t <-> video frame t
        face_boxes/ landmarks/ mouth/   (T, ...) per-frame extras (schemas.clips.EXTRA_ARRAYS)
        labels/                 only where the dataset gives fake segments (version 2):
          fake/ audio_fake/ video_fake/   (T,) uint8 per-frame labels, 1 = fake
      manifest.parquet          one row per clip (ok or failed), schema MANIFEST_SCHEMA
      splits/<name>.parquet     split tables, schema SPLIT_SCHEMA, parameters in metadata
      .staging/                 clips being written; never read

Version 2 added ``labels/``; a version-1 store is a version-2 store without it and
is read as one (:data:`READABLE_VERSIONS`).

The store is created and opened by :mod:`schemas.lifecycle`, its clips written and
committed by :mod:`schemas.clips`, read by :mod:`schemas.readers`, and its tables
written and read by :mod:`schemas.table_io`.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

FORMAT_NAME = "mscct-store"
FORMAT_VERSION = 2
#: Format versions this software opens: every older one is a subset of the current.
READABLE_VERSIONS = (1, 2)
AUDIO_CHANNELS = 104

MANIFEST_FILE = "manifest.parquet"
LOCK_FILE = ".lock"  # held by the one process allowed to write clips (see pipeline.lock)
CLIPS_DIR = "clips"
LABELS_DIR = "labels"  # inside a clip's group: its per-frame labels
SPLITS_DIR = "splits"
STAGING_DIR = ".staging"
SPLIT_PARAMS_KEY = b"mscct.split_params"

_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$")


class StoreError(RuntimeError):
    """The store is missing, of another format or recipe, or inconsistent."""


def check_name(name: str, what: str) -> str:
    """Clip ids and split names become directory / file names: keep them tame."""
    if not _NAME_RE.match(name):
        raise StoreError(f"invalid {what} {name!r}: use letters, digits, '_', '.', '-'")
    return name


def clip_dir(store: str | Path, clip_id: str) -> Path:
    """The folder of a committed clip (the id checked, so it cannot leave ``clips/``)."""
    return Path(store) / CLIPS_DIR / check_name(clip_id, "clip id")


def read_json(path: Path) -> dict[str, Any]:
    """A store's JSON file; unreadable or malformed is a :class:`StoreError`, missing is not."""
    try:
        return json.loads(path.read_text())
    except FileNotFoundError:
        raise
    except (OSError, ValueError) as exc:
        raise StoreError(f"cannot read {path}: {exc}") from exc


def os_reason(exc: OSError) -> str:
    """``'Read-only file system'``-style text of an OSError, without the path repeated."""
    return exc.strerror or str(exc) or type(exc).__name__
