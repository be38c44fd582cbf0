"""The feature store: layout, format version, recipe, atomic clip commit, readers.

Layout (format version 1)::

    <store>/
      zarr.json                 root Zarr v3 group; attributes["mscct"] = store metadata
      clips/<clip_id>/          one Zarr group per committed clip
        zarr.json               attributes["record"] = the clip's manifest row
        video/                  (T, H, W, 3) uint8 face crops
        audio/                  (T, 104) float32 audio features, frame t <-> video frame t
      manifest.parquet          one row per clip (ok or failed), schema MANIFEST_SCHEMA
      splits/<name>.parquet     split tables, schema SPLIT_SCHEMA, parameters in metadata
      .staging/                 clips being written; never read

The default ``raw`` layout stores each tensor as a single uncompressed chunk
(Zarr's ``bytes`` codec only), so the chunk file *is* the C-ordered array and
readers ``np.memmap`` it (:func:`open_clip`) or ``pread`` rows out of it
(:func:`open_raw_chunk`): no decode. The ``zstd`` layout trades
that for disk space and is read through zarr.

A clip is written under ``.staging/`` and renamed into ``clips/`` only when
complete, so a crash never leaves a half clip that looks valid, and the clip's
manifest row travels inside the same rename (the group attributes). The
``manifest.parquet`` file is a consolidated view of those records plus the
failures of the last run; it can always be rebuilt from ``clips/``.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import shutil
import stat
import uuid
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from schemas.tables import (
    MANIFEST_SCHEMA,
    SPLIT_SCHEMA,
    STATUS_OK,
    SchemaError,
    validate_table,
)

FORMAT_NAME = "mscct-store"
FORMAT_VERSION = 1
AUDIO_CHANNELS = 104
LAYOUTS = ("raw", "zstd")
AUDIO_FEATURES = ("mfcc", "fbank")

MANIFEST_FILE = "manifest.parquet"
LOCK_FILE = ".lock"  # held by the one process allowed to write clips (see pipeline.lock)
CLIPS_DIR = "clips"
SPLITS_DIR = "splits"
STAGING_DIR = ".staging"
SPLIT_PARAMS_KEY = b"mscct.split_params"

_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$")


class StoreError(RuntimeError):
    """The store is missing, of another format or recipe, or inconsistent."""


def default_store_path() -> Path:
    """``$MSCCT_STORE`` if set, else ``./mscct-store``."""
    return Path(os.environ.get("MSCCT_STORE", "mscct-store"))


def software_version() -> str:
    try:
        from importlib.metadata import version

        return version("mscct")
    except Exception:  # running from a source tree that is not installed
        return "0+unknown"


@dataclass(frozen=True)
class Recipe:
    """Settings that determine the stored tensors. A store holds one recipe."""

    features: str = "mfcc"  # mfcc | fbank
    crop_size: int = 112
    fps: int = 25
    sample_rate: int = 16000
    face_stride: int = 5
    trim_silence: bool = False
    audio_dtype: str = "float32"
    layout: str = "raw"  # raw (memmap-able) | zstd

    def __post_init__(self) -> None:
        if self.features not in AUDIO_FEATURES:
            raise ValueError(f"features must be one of {AUDIO_FEATURES}, not {self.features!r}")
        if self.layout not in LAYOUTS:
            raise ValueError(f"layout must be one of {LAYOUTS}, not {self.layout!r}")
        if self.audio_dtype not in ("float32", "float16"):
            raise ValueError(f"audio_dtype must be float32 or float16, not {self.audio_dtype!r}")
        if self.crop_size < 16 or self.face_stride < 1 or self.fps < 1:
            raise ValueError("crop_size must be >= 16, face_stride >= 1 and fps >= 1")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Recipe:
        known = {f for f in cls.__dataclass_fields__}
        unknown = set(data) - known
        if unknown:
            raise StoreError(f"store recipe has unknown key(s) {sorted(unknown)}")
        return cls(**data)

    def hash(self) -> str:
        """Short stable hash of the recipe; part of every clip's fingerprint."""
        blob = json.dumps(self.to_dict(), sort_keys=True).encode()
        return hashlib.sha256(blob).hexdigest()[:16]

    def diff(self, other: Recipe) -> list[str]:
        a, b = self.to_dict(), other.to_dict()
        return [f"{k}: {a[k]!r} != {b[k]!r}" for k in a if a[k] != b[k]]


@dataclass(frozen=True)
class StoreInfo:
    path: Path
    recipe: Recipe
    format_version: int
    software_version: str
    extra: dict[str, Any] = field(default_factory=dict)


def check_name(name: str, what: str) -> str:
    """Clip ids and split names become directory / file names: keep them tame."""
    if not _NAME_RE.match(name):
        raise StoreError(f"invalid {what} {name!r}: use letters, digits, '_', '.', '-'")
    return name


def _root_meta_path(store: Path) -> Path:
    return store / "zarr.json"


def _read_json(path: Path) -> dict[str, Any]:
    try:
        return json.loads(path.read_text())
    except FileNotFoundError:
        raise
    except (OSError, ValueError) as exc:
        raise StoreError(f"cannot read {path}: {exc}") from exc


def _write_json_atomic(path: Path, data: dict[str, Any]) -> None:
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex}.tmp")
    tmp.write_text(json.dumps(data, indent=2, sort_keys=True))
    os.replace(tmp, path)


def create_store(path: str | Path, recipe: Recipe, *, overwrite: bool = False) -> StoreInfo:
    """Create an empty store, or open an existing one made with the same recipe.

    With ``overwrite`` an existing store at ``path`` is deleted first. A store
    made with another recipe is refused: its tensors would not be comparable.
    """
    store = Path(path)
    if overwrite and store.exists():
        _wipe(store)
    if _root_meta_path(store).exists():
        info = open_store(store)
        if info.recipe != recipe:
            raise StoreError(
                f"store {store} was made with another recipe "
                f"({'; '.join(info.recipe.diff(recipe))}); use another --store or --overwrite"
            )
        return info
    if store.exists() and (not store.is_dir() or _entries(store)):
        raise StoreError(f"{store} exists and is not a store")
    (store / CLIPS_DIR).mkdir(parents=True, exist_ok=True)
    (store / SPLITS_DIR).mkdir(exist_ok=True)
    (store / STAGING_DIR).mkdir(exist_ok=True)
    meta = {
        "format": FORMAT_NAME,
        "format_version": FORMAT_VERSION,
        "recipe": recipe.to_dict(),
        "software_version": software_version(),
    }
    _write_json_atomic(store / CLIPS_DIR / "zarr.json", _group_json({}))
    _write_json_atomic(_root_meta_path(store), _group_json({"mscct": meta}))
    return open_store(store)


def _entries(store: Path) -> list[Path]:
    """What a directory holds besides the writer's lock file."""
    return [p for p in store.iterdir() if p.name != LOCK_FILE]


def _wipe(store: Path) -> None:
    """Delete a store's content (keeping the lock file); refuse anything that is not a store."""
    if not store.is_dir():
        raise StoreError(f"{store} is not a directory; not deleting it")
    entries = _entries(store)
    if entries and not _root_meta_path(store).exists():
        raise StoreError(f"{store} is a non-empty directory that is not a store; not deleting it")
    for entry in entries:
        shutil.rmtree(entry) if entry.is_dir() and not entry.is_symlink() else entry.unlink()


def _group_json(attributes: dict[str, Any]) -> dict[str, Any]:
    return {"zarr_format": 3, "node_type": "group", "attributes": attributes}


def open_store(path: str | Path, *, recipe: Recipe | None = None) -> StoreInfo:
    """Open a store and check its format version (and recipe, when given)."""
    store = Path(path)
    meta_path = _root_meta_path(store)
    if not meta_path.exists():
        raise StoreError(
            f"no store at {store} (run `mscct-pipeline ingest` first, or pass --store)"
        )
    meta = _read_json(meta_path).get("attributes", {}).get("mscct")
    if not isinstance(meta, dict) or meta.get("format") != FORMAT_NAME:
        raise StoreError(f"{store} is a Zarr group but not an mscct store")
    version = meta.get("format_version")
    if version != FORMAT_VERSION:
        raise StoreError(
            f"store {store} has format version {version}; this software reads version {FORMAT_VERSION}"
        )
    found = Recipe.from_dict(meta.get("recipe", {}))
    if recipe is not None and found != recipe:
        raise StoreError(f"store {store} has another recipe: {'; '.join(found.diff(recipe))}")
    return StoreInfo(
        path=store,
        recipe=found,
        format_version=version,
        software_version=str(meta.get("software_version", "")),
        extra={k: v for k, v in meta.items() if k not in ("format", "format_version", "recipe")},
    )


# --------------------------------------------------------------------------- clips


def clip_dir(store: str | Path, clip_id: str) -> Path:
    return Path(store) / CLIPS_DIR / check_name(clip_id, "clip id")


def write_clip(
    store: str | Path,
    clip_id: str,
    video: np.ndarray,
    audio: np.ndarray,
    record: dict[str, Any],
    recipe: Recipe,
) -> None:
    """Write one clip's tensors and manifest record, then commit them atomically.

    ``video`` is ``(T, H, W, 3)`` uint8 and ``audio`` ``(T, 104)``; both must have
    the same ``T >= 1``. Safe with many writers on one store as long as each
    clip id has one writer: nothing is shared between clips.
    """
    import zarr

    store = Path(store)
    _check_tensors(video, audio, recipe)
    target = clip_dir(store, clip_id)
    staging = store / STAGING_DIR / f"{clip_id}.{uuid.uuid4().hex}"
    staging.parent.mkdir(exist_ok=True)
    try:
        group = zarr.open_group(str(staging), mode="w", zarr_format=3)
        for name, data in (
            ("video", video),
            ("audio", audio.astype(recipe.audio_dtype, copy=False)),
        ):
            arr = group.create_array(
                name,
                shape=data.shape,
                chunks=_chunks(data.shape, recipe.layout),
                dtype=data.dtype,
                compressors=_compressors(recipe.layout),
                filters=None,
                fill_value=0,
                config={"write_empty_chunks": True},  # the raw layout needs every chunk on disk
            )
            arr[...] = data
        group.attrs["record"] = record
        _replace_dir(staging, target)
    finally:
        if staging.exists():
            shutil.rmtree(staging, ignore_errors=True)


def _check_tensors(video: np.ndarray, audio: np.ndarray, recipe: Recipe) -> None:
    if video.ndim != 4 or video.shape[-1] != 3 or video.dtype != np.uint8:
        raise ValueError(f"video must be (T, H, W, 3) uint8, got {video.shape} {video.dtype}")
    if audio.ndim != 2 or audio.shape[1] != AUDIO_CHANNELS:
        raise ValueError(f"audio must be (T, {AUDIO_CHANNELS}), got {audio.shape}")
    if video.shape[0] != audio.shape[0] or video.shape[0] < 1:
        raise ValueError(
            f"video and audio must share T >= 1, got {video.shape[0]} and {audio.shape[0]}"
        )
    if video.shape[1:3] != (recipe.crop_size, recipe.crop_size):
        raise ValueError(f"video crops are {video.shape[1:3]}, recipe says {recipe.crop_size}")


def _chunks(shape: tuple[int, ...], layout: str) -> tuple[int, ...]:
    if layout == "raw":
        return tuple(shape)  # one chunk: the chunk file is the whole array, memmap-able
    return (min(shape[0], 25), *shape[1:])  # one second of frames per compressed chunk


def _compressors(layout: str) -> Any:
    if layout == "raw":
        return None
    from zarr.codecs import ZstdCodec

    return ZstdCodec(level=3)


def _replace_dir(src: Path, dst: Path) -> None:
    """Rename ``src`` to ``dst``; an existing ``dst`` (a clip being redone) is replaced."""
    try:
        os.rename(src, dst)
        return
    except OSError:
        if not dst.exists():
            raise
    old = dst.parent.parent / STAGING_DIR / f"replaced.{dst.name}.{uuid.uuid4().hex}"
    os.rename(dst, old)
    os.rename(src, dst)
    shutil.rmtree(old, ignore_errors=True)


def sweep_staging(store: str | Path) -> int:
    """Delete what killed writers left in ``.staging/`` (call only while holding the lock)."""
    staging = Path(store) / STAGING_DIR
    removed = 0
    for entry in staging.iterdir() if staging.exists() else ():
        if entry.is_dir():
            shutil.rmtree(entry, ignore_errors=True)
        else:
            entry.unlink(missing_ok=True)
        removed += 1
    return removed


def read_clip_record(store: str | Path, clip_id: str) -> dict[str, Any] | None:
    """The manifest record committed with a clip, or None when it is not committed."""
    path = clip_dir(store, clip_id) / "zarr.json"
    try:
        return _read_json(path)["attributes"]["record"]
    except FileNotFoundError:
        return None
    except (KeyError, TypeError) as exc:
        raise StoreError(f"clip {clip_id}: group metadata has no record") from exc


def committed_records(store: str | Path) -> list[dict[str, Any]]:
    """Records of every committed clip, sorted by clip id (the store's ground truth)."""
    root = Path(store) / CLIPS_DIR
    records = []
    for entry in sorted(os.scandir(root), key=lambda e: e.name):
        if entry.is_dir() and not entry.name.startswith("."):
            record = read_clip_record(store, entry.name)
            if record is not None:
                records.append(record)
    return records


def remove_clip(store: str | Path, clip_id: str) -> None:
    """Uncommit a clip (rename away first, so readers never see a half-deleted clip)."""
    target = clip_dir(store, clip_id)
    if target.exists():
        trash = Path(store) / STAGING_DIR / f"removed.{clip_id}.{uuid.uuid4().hex}"
        os.rename(target, trash)
        shutil.rmtree(trash, ignore_errors=True)


@dataclass(frozen=True)
class ArraySpec:
    """Where and how one stored tensor lies on disk."""

    path: Path
    shape: tuple[int, ...]
    dtype: np.dtype
    raw: bool  # True: the single chunk file is the array (memmap-able)

    @property
    def chunk_file(self) -> Path:
        return self.path.joinpath(
            "c", *(["0"] * len(self.shape))
        )  # Zarr v3 key of chunk (0, ..., 0)


def array_spec(store: str | Path, clip_id: str, name: str) -> ArraySpec:
    path = clip_dir(store, clip_id) / name
    _refuse_links(store, clip_id, (CLIPS_DIR, clip_id, name))
    try:
        meta = _read_json(path / "zarr.json")
    except FileNotFoundError:
        raise StoreError(f"clip {clip_id!r} is not in store {store}") from None
    shape = tuple(int(s) for s in meta["shape"])
    dtype = np.dtype(meta["data_type"])
    codecs = meta.get("codecs", [])
    chunk_shape = tuple(meta["chunk_grid"]["configuration"]["chunk_shape"])
    endian = (codecs[0].get("configuration") or {}).get("endian", "little") if codecs else None
    raw = (
        len(codecs) == 1
        and codecs[0].get("name") == "bytes"
        and chunk_shape == shape
        and (dtype.itemsize == 1 or endian == "little")
    )
    return ArraySpec(path=path, shape=shape, dtype=dtype.newbyteorder("<"), raw=raw)


def raw_chunk_path(store_root: str, clip_id: str, name: str, ndim: int) -> str:
    """Path of the single chunk file of a raw-layout tensor with ``ndim`` dimensions.

    Built from strings (readers call this per training item); the clip id is checked
    so that a manifest cannot steer it outside ``clips/``.
    """
    check_name(clip_id, "clip id")
    return f"{store_root}/{CLIPS_DIR}/{clip_id}/{name}/c/{'/'.join('0' * ndim)}"


def open_raw_chunk(store_root: str, clip_id: str, name: str, ndim: int) -> tuple[int, str]:
    """Open the single chunk file of a raw-layout tensor read-only: ``(descriptor, path)``.

    For readers that open a clip per training item: the raw layout fixes the chunk
    file's path, so no Zarr metadata is read, and the file is read with ``pread``
    rather than mapped. ``store_root`` must already be resolved
    (``os.path.realpath``, once per reader). Links below the root are refused as in
    :func:`array_spec`, here with one ``readlink`` of ``/proc/self/fd`` (the path
    the kernel actually opened) instead of an ``lstat`` per component; where that
    path differs for another reason (no ``/proc``, bind mounts) the component walk
    decides. The caller checks the file's size against the shape it expects and
    closes the descriptor.

    Raises:
        FileNotFoundError: no such chunk file (the clip is not in the store).
        StoreError: the clip id is malformed, or the path runs through a link.
    """
    path = raw_chunk_path(store_root, clip_id, name, ndim)
    fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    try:
        if _opened_path(fd) != path:
            _refuse_links(store_root, clip_id, (CLIPS_DIR, clip_id, name, "c", *("0" * ndim)))
    except BaseException:
        os.close(fd)
        raise
    return fd, path


def _opened_path(fd: int) -> str | None:
    try:
        return os.readlink(f"/proc/self/fd/{fd}")
    except OSError:
        return None


def _refuse_links(store: str | Path, clip_id: str, parts: tuple[str, ...]) -> None:
    """Refuse a clip whose path below the store root contains a symbolic link.

    The store root itself may be a link (the user named it); nothing inside may
    point elsewhere. One ``lstat`` per component: cheaper than resolving the
    whole path.
    """
    current = os.fspath(store)
    for part in parts:
        current = os.path.join(current, part)
        try:
            is_link = stat.S_ISLNK(os.lstat(current).st_mode)
        except FileNotFoundError:
            return  # a missing file is reported by whoever opens it
        if is_link:
            raise StoreError(f"clip {clip_id!r} of store {store} links outside the store; refused")


def load_array(spec: ArraySpec) -> np.ndarray:
    """Zero-copy read-only ``np.memmap`` for the raw layout, a zarr decode otherwise."""
    if spec.raw:
        return np.memmap(spec.chunk_file, dtype=spec.dtype, mode="r", shape=spec.shape)
    import zarr

    return zarr.open_array(str(spec.path), mode="r")[...]


def open_clip(store: str | Path, clip_id: str) -> tuple[np.ndarray, np.ndarray]:
    """Return ``(video, audio)``: ``(T, H, W, 3)`` uint8 and ``(T, 104)`` float arrays.

    For the default raw layout both are read-only ``np.memmap`` views of the
    chunk files (no copy, no decode); pages are read only when touched.
    """
    video = load_array(array_spec(store, clip_id, "video"))
    audio = load_array(array_spec(store, clip_id, "audio"))
    if video.shape[0] != audio.shape[0]:
        raise StoreError(
            f"clip {clip_id}: video has {video.shape[0]} frames, audio {audio.shape[0]}"
        )
    return video, audio


# --------------------------------------------------------------------------- tables


def write_manifest(store: str | Path, table: pa.Table) -> None:
    """Validate and atomically replace ``manifest.parquet``."""
    table = validate_table(table, MANIFEST_SCHEMA, "manifest")
    _write_parquet_atomic(Path(store) / MANIFEST_FILE, table)


def read_manifest(store: str | Path) -> pa.Table:
    """The store's manifest: one row per clip, schema ``MANIFEST_SCHEMA``."""
    open_store(store)
    path = Path(store) / MANIFEST_FILE
    if not path.exists():
        raise StoreError(f"store {store} has no manifest yet (run `mscct-pipeline ingest`)")
    return validate_table(_read_parquet(path), MANIFEST_SCHEMA, f"manifest of {store}")


def write_split(
    store: str | Path,
    name: str,
    table: pa.Table,
    params: dict[str, Any],
    *,
    overwrite: bool = False,
) -> Path:
    """Store a split table under ``splits/<name>.parquet`` with its parameters."""
    open_store(store)
    path = Path(store) / SPLITS_DIR / f"{check_name(name, 'split name')}.parquet"
    if path.exists() and not overwrite:
        raise StoreError(
            f"split {name!r} already exists in {store}; pass --overwrite to replace it"
        )
    table = validate_table(table, SPLIT_SCHEMA, f"split {name!r}")
    bad = set(table.column("split").to_pylist()) - {"train", "val", "test"}
    if bad:
        raise SchemaError(f"split {name!r}: unknown part(s) {sorted(bad)}")
    meta = {SPLIT_PARAMS_KEY: json.dumps(params, sort_keys=True).encode()}
    path.parent.mkdir(exist_ok=True)
    _write_parquet_atomic(path, table.replace_schema_metadata(meta))
    return path


def read_split(store: str | Path, name: str = "default") -> pa.Table:
    """The split table ``name``: columns ``clip_id``, ``split`` (train/val/test), ..."""
    open_store(store)
    path = Path(store) / SPLITS_DIR / f"{check_name(name, 'split name')}.parquet"
    if not path.exists():
        names = list_splits(store)
        hint = f"available: {', '.join(names)}" if names else "run `mscct-pipeline split` first"
        raise StoreError(f"store {store} has no split {name!r} ({hint})")
    return validate_table(_read_parquet(path), SPLIT_SCHEMA, f"split {name!r}")


def split_params(store: str | Path, name: str = "default") -> dict[str, Any]:
    path = Path(store) / SPLITS_DIR / f"{check_name(name, 'split name')}.parquet"
    meta = pq.read_schema(path).metadata or {}
    return json.loads(meta.get(SPLIT_PARAMS_KEY, b"{}"))


def list_splits(store: str | Path) -> list[str]:
    root = Path(store) / SPLITS_DIR
    return sorted(p.stem for p in root.glob("*.parquet")) if root.exists() else []


def store_fingerprint(store: str | Path) -> str:
    """Hash of the recipe and of every ok clip's id and source fingerprint.

    Two stores with the same fingerprint hold the same clips made the same way;
    training runs record it so that results can be traced to their data.
    """
    info = open_store(store)
    manifest = read_manifest(store).filter(pc.field("status") == STATUS_OK)
    pairs = sorted(
        zip(
            manifest.column("clip_id").to_pylist(),
            manifest.column("source_fingerprint").to_pylist(),
            strict=True,
        )
    )
    digest = hashlib.sha256(info.recipe.hash().encode())
    for clip_id, fingerprint in pairs:
        digest.update(f"{clip_id}\t{fingerprint}\n".encode())
    return digest.hexdigest()[:16]


def _read_parquet(path: Path) -> pa.Table:
    try:
        return pq.read_table(path)
    except (OSError, pa.ArrowInvalid) as exc:
        raise StoreError(f"cannot read {path}: {exc}") from exc


def _write_parquet_atomic(path: Path, table: pa.Table) -> None:
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex}.tmp")
    try:
        pq.write_table(table, tmp)
        os.replace(tmp, path)
    finally:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
