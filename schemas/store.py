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
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field, fields
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


#: Version of the computation of the stored tensors (decode, alignment, faces, crops,
#: features, trimming) and of the per-clip verdicts. Bump it with any change to that
#: code that can change a stored byte or a clip's ok/failed verdict: it is part of the
#: recipe, so a rerun on an older store refuses instead of mixing old and new clips,
#: and store fingerprints change with it.
PIPELINE_VERSION = 2

#: What the recipe fields of a store written before a field existed meant: the values
#: the code of that time behaved as. Fields not listed here had a fixed constant equal
#: to today's default. Version 1 had no audio coverage check and no face-rate flag.
LEGACY_RECIPE = {"pipeline_version": 1, "min_audio_coverage": 0.0, "min_face_rate": 0.0}

_FIELD_TYPES: dict[str, type] = {"str": str, "int": int, "float": float, "bool": bool}


@dataclass(frozen=True)
class Recipe:
    """Settings that determine the stored tensors and records. A store holds one recipe.

    Every setting that can change a stored tensor, or whether a clip is ok, is here,
    so that resume (a clip is current only for the same recipe hash) and store
    fingerprints stay truthful. These defaults are the one source of those numbers:
    the modules' constants (``pipeline.faces.DEFAULT_MARGIN`` ...) are read from them
    (this module must not import the pipeline). ``min_face_rate`` flags a clip as ``low_face_rate`` in the
    manifest when its face detection rate is below it (``split`` leaves flagged clips
    out by default); ``min_audio_coverage`` fails a clip whose audio covers less
    than that fraction of its video frames.
    """

    features: str = "mfcc"  # mfcc | fbank
    crop_size: int = 112
    fps: int = 25
    sample_rate: int = 16000
    face_stride: int = 5
    trim_silence: bool = False
    audio_dtype: str = "float32"
    layout: str = "raw"  # raw (memmap-able) | zstd
    face_margin: float = 0.3  # pipeline.faces.DEFAULT_MARGIN: crop side = (1 + margin) x box
    face_smooth: int = 5  # pipeline.faces.DEFAULT_SMOOTH: frames averaged for box centres
    face_size_smooth: int = 25  # pipeline.faces.SIZE_SMOOTH: frames averaged for box sizes
    silence_threshold_db: float = 30.0  # pipeline.silence.DEFAULT_THRESHOLD_DB
    silent_clip_db: float = 30.0  # pipeline.silence.SILENT_CLIP_DB
    max_seconds: float = 60.0  # pipeline.transform.DEFAULT_MAX_SECONDS: longer clips are cut
    min_frames: int = 2  # pipeline.transform.MIN_FRAMES: shorter clips fail
    min_audio_coverage: float = 0.9  # audio must cover this fraction of the video frames
    min_face_rate: float = 0.5  # below this face detection rate a clip is low_face_rate
    pipeline_version: int = PIPELINE_VERSION

    def __post_init__(self) -> None:
        self._check_types()
        if self.features not in AUDIO_FEATURES:
            raise ValueError(f"features must be one of {AUDIO_FEATURES}, not {self.features!r}")
        if self.layout not in LAYOUTS:
            raise ValueError(f"layout must be one of {LAYOUTS}, not {self.layout!r}")
        if self.audio_dtype not in ("float32", "float16"):
            raise ValueError(f"audio_dtype must be float32 or float16, not {self.audio_dtype!r}")
        if self.crop_size < 16 or self.face_stride < 1 or self.fps < 1:
            raise ValueError("crop_size must be >= 16, face_stride >= 1 and fps >= 1")
        if self.sample_rate < 1 or self.face_smooth < 1 or self.face_size_smooth < 1:
            raise ValueError("sample_rate, face_smooth and face_size_smooth must be >= 1")
        if self.face_margin < 0 or not self.max_seconds > 0 or self.min_frames < 1:
            raise ValueError("face_margin must be >= 0, max_seconds > 0 and min_frames >= 1")
        for name in ("min_audio_coverage", "min_face_rate"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise ValueError(f"{name} must be between 0 and 1, not {getattr(self, name)!r}")
        if self.pipeline_version < 1:
            raise ValueError(f"pipeline_version must be >= 1, not {self.pipeline_version!r}")

    def _check_types(self) -> None:
        """Refuse a field of the wrong type (``"112"`` for an int); ints pass as floats.

        Float fields are stored as floats, so ``60`` and ``60.0`` hash alike.
        """
        for f in fields(self):
            kind = _FIELD_TYPES[str(f.type)]
            value = getattr(self, f.name)
            if kind is float and isinstance(value, int) and not isinstance(value, bool):
                object.__setattr__(self, f.name, float(value))
                continue
            if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
                raise ValueError(
                    f"recipe field {f.name!r} must be {kind.__name__}, "
                    f"not {type(value).__name__} {value!r}"
                )

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: Any) -> Recipe:
        """The recipe a store recorded; missing later fields take their legacy meaning.

        Raises :class:`StoreError` (one line naming the field) for an unknown key or a
        value of the wrong type or range.
        """
        if not isinstance(data, dict):
            raise StoreError(f"store recipe must be a JSON object, not {type(data).__name__}")
        known = {f.name for f in fields(cls)}
        unknown = set(data) - known
        if unknown:
            raise StoreError(f"store recipe has unknown key(s) {sorted(unknown)}")
        legacy = {k: v for k, v in LEGACY_RECIPE.items() if k not in data}
        try:
            return cls(**{**legacy, **data})
        except (TypeError, ValueError) as exc:
            raise StoreError(f"store recipe: {exc}") from None

    def hash(self) -> str:
        """Short stable hash of the recipe; part of every clip's fingerprint."""
        blob = json.dumps(self.to_dict(), sort_keys=True).encode()
        return hashlib.sha256(blob).hexdigest()[:16]

    def diff(self, other: Recipe) -> list[str]:
        a, b = self.to_dict(), other.to_dict()
        return [f"{k}: {a[k]!r} != {b[k]!r}" for k in a if a[k] != b[k]]


def recipe_mismatch(store: Path, found: Recipe, wanted: Recipe) -> str:
    """One line saying why a store's clips cannot be reused with ``wanted``."""
    differences = "; ".join(found.diff(wanted))
    if found.pipeline_version < wanted.pipeline_version:
        return (
            f"store {store} predates pipeline_version {wanted.pipeline_version} (it was made "
            f"by version {found.pipeline_version}: {differences}); its clips would have to be "
            "recomputed: rerun with --overwrite to recompute them, or use another --store"
        )
    return (
        f"store {store} was made with another recipe ({differences}); "
        "use another --store or --overwrite"
    )


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


# --------------------------------------------------------------------------- durable writes


def fsync_path(path: str | Path, *, directory: bool = False) -> None:
    """Flush one file's (or directory's entries') data to stable storage."""
    flags = os.O_RDONLY | os.O_CLOEXEC | (os.O_DIRECTORY if directory else 0)
    fd = os.open(path, flags)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def fsync_tree(root: str | Path) -> None:
    """fsync every file and directory below ``root`` and ``root`` itself, deepest first."""
    for dirpath, _, filenames in os.walk(root, topdown=False):
        for name in filenames:
            fsync_path(os.path.join(dirpath, name))
        fsync_path(dirpath, directory=True)


@contextlib.contextmanager
def atomic_write(path: str | Path, *, durable: bool = True) -> Iterator[Path]:
    """Write a file all or nothing: yield a temporary path beside ``path`` to write to.

    When the block ends without an exception the temporary file is fsync'ed, renamed
    over ``path`` and the directory fsync'ed (``durable``), so that neither a killed
    process nor a host crash leaves a half file under ``path``; on an exception it is
    deleted and ``path`` is untouched. Usage::

        with atomic_write(path) as tmp:
            torch.save(payload, tmp)
    """
    path = Path(path)
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex}.tmp")
    try:
        yield tmp
        if durable:
            fsync_path(tmp)
        os.replace(tmp, path)
        if durable:
            fsync_path(path.parent, directory=True)
    finally:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()


def _write_json_atomic(path: Path, data: dict[str, Any], *, durable: bool = True) -> None:
    with atomic_write(path, durable=durable) as tmp:
        tmp.write_text(json.dumps(data, indent=2, sort_keys=True))


# --------------------------------------------------------------------------- store


def create_store(path: str | Path, recipe: Recipe, *, overwrite: bool = False) -> StoreInfo:
    """Create an empty store, or open an existing one made with the same recipe.

    With ``overwrite`` an existing store at ``path`` is emptied first: only a
    directory carrying this project's store marker, and holding nothing but what a
    store writes, is ever deleted (:func:`check_store_target`). A store made with
    another recipe is refused: its tensors would not be comparable.
    """
    store = Path(path)
    check_store_target(store, overwrite=overwrite)
    try:
        if overwrite and is_store(store):
            _wipe(store)
        if is_store(store):
            info = open_store(store)
            if info.recipe != recipe:
                raise StoreError(recipe_mismatch(store, info.recipe, recipe))
            return info
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
    except OSError as exc:
        raise StoreError(f"cannot write store {store}: {_os_reason(exc)}") from None
    return open_store(store)


def _os_reason(exc: OSError) -> str:
    """``'Read-only file system'``-style text of an OSError, without the path repeated."""
    return exc.strerror or str(exc) or type(exc).__name__


def is_store(path: str | Path) -> bool:
    """Whether ``path`` carries this project's store marker: a root ``zarr.json``
    whose ``attributes.mscct.format`` is ``"mscct-store"`` (any other Zarr group, or a
    stray ``zarr.json``, is not ours)."""
    meta_path = _root_meta_path(Path(path))
    try:
        if not meta_path.is_file():
            return False
        meta = json.loads(meta_path.read_text())
    except (OSError, ValueError):
        return False
    attributes = meta.get("attributes") if isinstance(meta, dict) else None
    mscct = attributes.get("mscct") if isinstance(attributes, dict) else None
    return isinstance(mscct, dict) and mscct.get("format") == FORMAT_NAME


def _written_by_store(name: str) -> bool:
    """Whether a root entry is one a store writes (and so may delete)."""
    if name in (CLIPS_DIR, SPLITS_DIR, STAGING_DIR, MANIFEST_FILE, "zarr.json", LOCK_FILE):
        return True
    # Temporary files of an interrupted atomic write (see atomic_write).
    return name.endswith(".tmp") and name.startswith((f".{MANIFEST_FILE}.", ".zarr.json."))


def check_store_target(path: str | Path, *, overwrite: bool = False) -> None:
    """Refuse a ``--store`` that is not ours to write, before anything is written there.

    Accepted: a path that does not exist yet, an empty directory (a lock file aside),
    or a directory carrying the store marker (:func:`is_store`); with ``overwrite``
    the latter must hold nothing but what a store writes. Everything else (a regular
    file, a user's directory, ``/``, a dataset, a foreign Zarr group) is refused.
    """
    store = Path(path)
    try:
        if not store.exists():
            if store.is_symlink():
                raise StoreError(f"--store {store} is a dangling link; not a store")
            return
        if not store.is_dir():
            raise StoreError(f"--store {store} exists and is not a directory; not a store")
        if is_store(store):
            foreign = sorted(p.name for p in store.iterdir() if not _written_by_store(p.name))
            if overwrite and foreign:
                raise StoreError(
                    f"store {store} also holds files a store does not write "
                    f"({', '.join(foreign[:5])}); not deleting it"
                )
            return
        if _entries(store):
            what = (
                "holds a zarr.json that is not an mscct store's"
                if (_root_meta_path(store).exists())
                else "is a non-empty directory"
            )
            raise StoreError(f"{store} {what}: it is not a store; not writing into it")
    except OSError as exc:
        raise StoreError(f"cannot use --store {store}: {_os_reason(exc)}") from None


def _entries(store: Path) -> list[Path]:
    """What a directory holds besides the writer's lock file."""
    return [p for p in store.iterdir() if p.name != LOCK_FILE]


def _wipe(store: Path) -> None:
    """Delete what a store wrote (keeping the lock file); the marker goes last, so an
    interrupted wipe is still a store and can be wiped again."""
    entries = [p for p in _entries(store) if _written_by_store(p.name)]
    for entry in sorted(entries, key=lambda p: p.name == "zarr.json"):
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
    if not is_store(store):
        raise StoreError(f"{store} is a Zarr group but not an mscct store")
    meta = _read_json(meta_path)["attributes"]["mscct"]
    version = meta.get("format_version")
    if version != FORMAT_VERSION:
        raise StoreError(
            f"store {store} has format version {version}; this software reads version {FORMAT_VERSION}"
        )
    if "recipe" not in meta:
        raise StoreError(
            f"store {store} records no recipe in its zarr.json; refusing to guess how its "
            "clips were made (ingest again into a new --store)"
        )
    found = Recipe.from_dict(meta["recipe"])
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
    *,
    durable: bool = True,
) -> None:
    """Write one clip's tensors and manifest record, then commit them atomically.

    ``video`` is ``(T, H, W, 3)`` uint8 and ``audio`` ``(T, 104)``; both must have
    the same ``T >= 1``. Safe with many writers on one store as long as each
    clip id has one writer: nothing is shared between clips. With ``durable`` the
    chunk files and metadata are fsync'ed before the rename that commits them and
    ``clips/`` after it, so a host crash cannot leave a committed half clip.
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
        if durable:
            fsync_tree(staging)
        _replace_dir(staging, target)
        if durable:
            fsync_path(target.parent, directory=True)
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


def remove_clip(store: str | Path, clip_id: str, *, durable: bool = True) -> None:
    """Uncommit a clip (rename away first, so readers never see a half-deleted clip)."""
    target = clip_dir(store, clip_id)
    if target.exists():
        trash = Path(store) / STAGING_DIR / f"removed.{clip_id}.{uuid.uuid4().hex}"
        os.rename(target, trash)
        if durable:
            fsync_path(target.parent, directory=True)
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


def write_manifest(store: str | Path, table: pa.Table, *, durable: bool = True) -> None:
    """Validate and atomically (and, with ``durable``, durably) replace ``manifest.parquet``.

    Raises :class:`StoreError` (one line) when the file cannot be written (disk full,
    no free inodes, read-only): committed clips stay, and ``mscct-pipeline repair``
    rebuilds the manifest from them.
    """
    table = validate_table(table, MANIFEST_SCHEMA, "manifest")
    try:
        _write_parquet_atomic(Path(store) / MANIFEST_FILE, table, durable=durable)
    except OSError as exc:
        raise StoreError(
            f"cannot write the manifest of store {store}: {_os_reason(exc)} (the committed "
            "clips are safe; `mscct-pipeline repair` rebuilds the manifest once it can be written)"
        ) from None


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
    try:
        path.parent.mkdir(exist_ok=True)
        _write_parquet_atomic(path, table.replace_schema_metadata(meta))
    except OSError as exc:
        raise StoreError(f"cannot write split {name!r} to {store}: {_os_reason(exc)}") from None
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


def _write_parquet_atomic(path: Path, table: pa.Table, *, durable: bool = True) -> None:
    with atomic_write(path, durable=durable) as tmp:
        pq.write_table(table, tmp)
