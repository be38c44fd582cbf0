"""Writing a clip's tensors and manifest record, committing it atomically, listing commits.

A clip is written under ``.staging/`` and renamed into its folder below ``clips/``
(:func:`schemas.layout.clip_dir`, sharded or flat as the store was made) only when
complete, so a crash never leaves a half clip that looks valid, and the clip's
manifest row travels inside the same rename (the group attributes). The manifest is
a consolidated view of those records plus the failures of the last run; it can always
be rebuilt from ``clips/`` (:func:`committed_records`).
"""

from __future__ import annotations

import os
import shutil
import uuid
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from schemas.durable import fsync_path, fsync_tree
from schemas.layout import (
    AUDIO_CHANNELS,
    CLIPS_DIR,
    LABELS_DIR,
    LAYOUT_FLAT,
    STAGING_DIR,
    StoreError,
    check_name,
    clip_dir,
    clip_layout,
    is_packed,
    read_json,
    shard_of,
)
from schemas.readers import FRAME_LABEL_NAMES
from schemas.recipe import Recipe
from schemas.safe_files import is_inside
from schemas.streams import CLIP_ARRAY_TABLE, rows_of

#: The arrays a clip may hold besides ``video`` and ``audio`` and its labels, by their
#: paths: their shapes, data types and which the recipe calls for are in the table
#: :data:`schemas.streams.CLIP_ARRAY_TABLE`. ``face_boxes``: the square region of the
#: source frame each face crop was cut from, ``(x0, y0, x1, y1)`` pixels, so ``source =
#: box[:2] + crop_xy * (box[2] - box[0]) / S``; ``landmarks``: dlib's 68 points ``(x, y)``
#: in face-crop pixels (NaN on a frame without a face); ``mouth``: 96×96 grayscale mouth
#: crops (see ``pipeline.clip.landmarks`` and ``pipeline.clip.mouth``); ``face_valid``: 1 where the
#: frame has a face, 0 where it has none (a shot without the face, black frames;
#: ``pipeline.clip.shots``). A clip without ``face_valid`` (written before it) reads as a face
#: in every frame. ``pose``: the head's yaw, pitch, roll (degrees) and fit residual per
#: frame, fitted to the landmarks (``pipeline.clip.head_pose``; NaN on a frame without a
#: face); a clip without it (written before it, or without landmarks) reads as NaN.
EXTRA_ARRAYS: tuple[str, ...] = tuple(
    a.path for a in CLIP_ARRAY_TABLE if not a.is_label and a.path not in ("video", "audio")
)

#: The per-frame labels a clip holds under ``labels/`` where its dataset gives fake
#: segments: ``(T,)`` uint8, 1 = the frame is fake (overall, in its audio, in its video).
FRAME_LABELS: tuple[str, ...] = FRAME_LABEL_NAMES


def write_clip(
    store: str | Path,
    clip_id: str,
    video: np.ndarray,
    audio: np.ndarray,
    record: dict[str, Any],
    recipe: Recipe,
    *,
    extra: Mapping[str, np.ndarray] | None = None,
    frame_labels: Mapping[str, np.ndarray] | None = None,
    durable: bool = True,
) -> None:
    """Write one clip's tensors and manifest record, then commit them atomically.

    ``video`` is ``(T, H, W, 3)`` uint8 and ``audio`` ``(T, 104)``; both must have
    the same ``T >= 1``. ``extra`` holds the clip's other arrays, each with the same
    ``T`` (see :data:`EXTRA_ARRAYS`): ``face_boxes``, ``face_valid`` and ``pose`` (optional),
    ``landmarks`` exactly when the recipe has landmarks, ``mouth`` exactly when its
    streams include it; they are written in the same commit. ``frame_labels``, where the clip's dataset gives
    fake segments, holds all of :data:`FRAME_LABELS`, each ``(T,)`` uint8 of 0 and 1,
    written under ``labels/`` in the same commit (a clip-level dataset passes None and
    the clip has no ``labels/``). Safe with many writers on one store as long as each
    clip id has one writer: nothing is shared between clips. With ``durable`` the
    chunk files and metadata are fsync'ed before the rename that commits them, and
    after it the clip's parent folder (and any shard folder the commit created), so a
    host crash cannot leave a committed half clip.
    """
    store = Path(store)
    _check_tensors(video, audio, recipe)
    extra = dict(extra or {})
    _check_extra(extra, video.shape[0], recipe)
    labels = _checked_frame_labels(frame_labels, video.shape[0])
    target = clip_dir(store, clip_id)
    staging = store / STAGING_DIR / f"{clip_id}.{uuid.uuid4().hex}"
    staging.parent.mkdir(exist_ok=True)
    arrays = {
        "video": video,
        "audio": audio.astype(recipe.audio_dtype, copy=False),
        **{name: extra[name] for name in EXTRA_ARRAYS if name in extra},
    }
    try:
        _write_group(staging, arrays, labels, record, recipe.layout)
        if durable:
            fsync_tree(staging)
        created = _make_parent_dirs(target.parent)
        _refuse_parent_out_of(store, target.parent)
        _replace_dir(staging, target)
        if durable:
            fsync_path(target.parent, directory=True)  # the clip's entry
            for folder in created:  # deepest first: each new folder's entry in its parent
                fsync_path(folder.parent, directory=True)
    finally:
        if staging.exists():
            shutil.rmtree(staging, ignore_errors=True)


def _write_group(
    folder: Path,
    arrays: Mapping[str, np.ndarray],
    labels: Mapping[str, np.ndarray] | None,
    record: dict[str, Any],
    layout: str,
) -> None:
    """Write the clip's zarr group at ``folder``: its record as the group's attributes,
    each array of ``arrays``, and ``labels`` (if any) in a ``labels/`` subgroup.

    zarr encodes the group into memory (its metadata and chunks, bytes for bytes what it
    would write to a folder) and the files are then written here in one pass: zarr's own
    local store hands every file operation to a thread of its event loop, and those
    round trips cost a tiny clip about 12 ms, three times the whole write from memory.
    """
    import zarr
    from zarr.storage import MemoryStore

    encoded: dict[str, Any] = {}  # zarr key -> Buffer
    group = zarr.create_group(
        store=MemoryStore(encoded), zarr_format=3, attributes={"record": record}
    )
    for name, data in arrays.items():
        _create_array(group, name, data, layout)
    if labels is not None:
        # Inside the staging group: the labels are committed by the same rename.
        label_group = group.create_group(LABELS_DIR)
        for name in FRAME_LABELS:
            _create_array(label_group, name, labels[name], layout)
    made: set[Path] = set()
    for key, buffer in encoded.items():
        path = folder / key
        if path.parent not in made:
            path.parent.mkdir(parents=True, exist_ok=True)
            made.add(path.parent)
        path.write_bytes(buffer.to_bytes())


def _create_array(group: Any, name: str, data: np.ndarray, layout: str) -> None:
    group.create_array(
        name,
        data=data,
        chunks=_chunks(data.shape, layout),
        compressors=_compressors(layout),
        filters=None,
        fill_value=0,
        config={"write_empty_chunks": True},  # the raw layout needs every chunk on disk
    )


def _checked_frame_labels(
    labels: Mapping[str, np.ndarray] | None, num_frames: int
) -> dict[str, np.ndarray] | None:
    """The clip's frame labels as contiguous ``(T,)`` uint8 arrays, refused unless exactly
    :data:`FRAME_LABELS`, each of ``num_frames`` zeros and ones."""
    if labels is None:
        return None
    if set(labels) != set(FRAME_LABELS):
        raise ValueError(f"frame labels must be exactly {list(FRAME_LABELS)}, got {sorted(labels)}")
    out = {}
    for name in FRAME_LABELS:
        data = np.asarray(labels[name])
        if data.shape != (num_frames,) or data.dtype != np.uint8:
            raise ValueError(
                f"frame label {name} must be ({num_frames},) uint8, got {data.shape} {data.dtype}"
            )
        if data.size and int(data.max()) > 1:
            raise ValueError(f"frame label {name} holds values other than 0 and 1")
        out[name] = np.ascontiguousarray(data)
    return out


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


def _check_extra(extra: dict[str, np.ndarray], num_frames: int, recipe: Recipe) -> None:
    """Refuse unknown names, wrong shapes or dtypes, and arrays the recipe does not call for."""
    unknown = sorted(set(extra) - set(EXTRA_ARRAYS))
    if unknown:
        raise ValueError(f"unknown clip array(s) {unknown}; known: {list(EXTRA_ARRAYS)}")
    rows = rows_of(recipe)
    for name in EXTRA_ARRAYS:
        tail, dtype = rows[name]
        data = extra.get(name)
        if data is not None and (data.shape != (num_frames, *tail) or data.dtype != dtype):
            raise ValueError(
                f"{name} must be {(num_frames, *tail)} {np.dtype(dtype)}, "
                f"got {data.shape} {data.dtype}"
            )
    for array in CLIP_ARRAY_TABLE:  # those whose presence the recipe decides
        if array.path not in EXTRA_ARRAYS or array.calls_for is None:
            continue
        name, wanted = array.path, array.calls_for(recipe)
        if (name in extra) != wanted:
            state = "calls for" if wanted else "has no"
            raise ValueError(
                f"the recipe {state} {name}, but the clip {'lacks' if wanted else 'has'} them"
            )


#: Frames per chunk file of a compressed array: two seconds at 25 fps, the longest
#: training window a preset uses (``paper``: 50; ``tiny``: 16), so that any window of
#: up to 51 frames touches at most two chunks and the trainer decodes at most two
#: (:mod:`trainer.data.zstd_rows`). It shapes files, not tensors, so it is not in the recipe:
#: readers take each array's chunking from its ``zarr.json``, and stores written with
#: one-second chunks (25 frames, before this) read as they are.
ZSTD_CHUNK_FRAMES = 50


def _chunks(shape: tuple[int, ...], layout: str) -> tuple[int, ...]:
    if layout == "raw":
        return tuple(shape)  # one chunk: the chunk file is the whole array, memmap-able
    # Chunked along T only: a window's rows of a chunk are one contiguous byte range.
    return (min(shape[0], ZSTD_CHUNK_FRAMES), *shape[1:])


def _compressors(layout: str) -> Any:
    """No codec for the raw layout; zstd with its content checksum for the zstd layout.

    The checksum (xxhash64 of a chunk's decoded bytes, 4 bytes a chunk) makes a flipped
    byte an error for every reader (zarr's and ``trainer.data.zstd_rows``) instead of other
    values. It shapes files, not tensors, so the recipe and its hash are unchanged:
    chunks written before it (no checksum) read as they are, and a store may hold both.
    """
    if layout == "raw":
        return None
    from zarr.codecs import ZstdCodec

    return ZstdCodec(level=3, checksum=True)


def _refuse_parent_out_of(store: Path, folder: Path) -> None:
    """Refuse to commit into a shard folder that leads out of the store (a link in
    ``clips/``): the clip would be written wherever it leads."""
    if not is_inside(os.path.realpath(folder), store):
        raise StoreError(f"{folder} leads outside store {store}; refused (remove the link)")


def _make_parent_dirs(folder: Path) -> list[Path]:
    """Make ``folder`` (a clip's shard folder) and its missing parents; return the ones
    that were missing, deepest first (one ``stat`` when it exists, as it mostly does).

    Shard folders are never removed (a clip's removal leaves its folder), so another
    writer cannot delete one between this and the rename; two writers making the same
    one at once both succeed.
    """
    missing = []
    current = folder
    while not current.is_dir():  # stops at clips/, or at the store (it holds .staging/)
        missing.append(current)
        current = current.parent
    for made in reversed(missing):
        made.mkdir(exist_ok=True)
    return missing


def _replace_dir(src: Path, dst: Path) -> None:
    """Rename ``src`` (in ``.staging/``) to ``dst``; an existing ``dst`` (a clip being
    redone) is replaced, the old one moved into ``.staging/`` first."""
    try:
        os.rename(src, dst)
        return
    except OSError:
        if not dst.exists():
            raise
    old = src.parent / f"replaced.{dst.name}.{uuid.uuid4().hex}"
    os.rename(dst, old)
    os.rename(src, dst)
    shutil.rmtree(old, ignore_errors=True)


def sweep_staging(store: str | Path) -> int:
    """Delete what killed writers left in ``.staging/`` (call only while holding the lock)."""
    staging = Path(store) / STAGING_DIR
    removed = 0
    if staging.is_symlink():  # emptying it would delete wherever it leads
        raise StoreError(f"store {store}: {STAGING_DIR} is a symbolic link; refused")
    for entry in staging.iterdir() if staging.exists() else ():
        if entry.is_dir():
            shutil.rmtree(entry, ignore_errors=True)
        else:
            entry.unlink(missing_ok=True)
        removed += 1
    return removed


def read_clip_record(store: str | Path, clip_id: str) -> dict[str, Any] | None:
    """The manifest record committed with a clip, or None when it is not committed."""
    if is_packed(store):
        from schemas.packed_index import packed_record

        return packed_record(store, clip_id)
    return _record_at(clip_dir(store, clip_id), clip_id, store)


def _record_at(folder: Path, clip_id: str, store: str | Path) -> dict[str, Any] | None:
    """The record in a clip folder's group metadata, read inside the store."""
    try:
        return read_json(folder / "zarr.json", store)["attributes"]["record"]
    except FileNotFoundError:
        return None
    except (KeyError, TypeError) as exc:
        raise StoreError(f"clip {clip_id}: group metadata has no record") from exc


def committed_records(store: str | Path) -> list[dict[str, Any]]:
    """Records of every committed clip, sorted by clip id (the store's ground truth).

    Walks ``clips/`` in the store's layout (flat or sharded); a folder that
    :func:`schemas.layout.clip_dir` would not find there (a sharded clip in the wrong
    shard, a stray name) is not a committed clip and is skipped. A packed store's are
    its shards' latest copy of each clip (:func:`schemas.packed_index.packed_records`).
    """
    if is_packed(store):
        from schemas.packed_index import packed_records

        return packed_records(store)
    records = []
    for clip_id, folder in sorted(_clip_folders(Path(store))):
        record = _record_at(folder, clip_id, store)
        if record is not None:
            records.append(record)
    return records


def _clip_folders(store: Path) -> list[tuple[str, Path]]:
    """``(clip_id, folder)`` of every clip folder below ``clips/``, in no order.

    ``os.scandir`` reports an entry's type without a ``stat`` on common file systems,
    so a sharded store of ``n`` clips costs 65 793 directory reads at most, not ``n``
    stats.
    """
    root = store / CLIPS_DIR
    if clip_layout(store) == LAYOUT_FLAT:
        return [(check_name(clip_id, "clip id"), root / clip_id) for clip_id in _subdirs(root)]
    found = []
    for first in _subdirs(root):
        for second in _subdirs(root / first):
            leaf = root / first / second
            for clip_id in _subdirs(leaf):
                if shard_of(check_name(clip_id, "clip id")) == (first, second):
                    found.append((clip_id, leaf / clip_id))
    return found


def _subdirs(folder: Path) -> list[str]:
    """Names of the folders in ``folder`` that are not hidden (``zarr.json`` is a file).

    Raises :class:`StoreError` for a link among them: a store's clips and shards are
    its own folders, and one leading elsewhere would import what lies there.
    """
    with os.scandir(folder) as entries:
        found = [e for e in entries if not e.name.startswith(".") and e.is_dir()]
    for entry in found:
        if entry.is_symlink():
            raise StoreError(
                f"{entry.path} is a symbolic link, not a folder of the store's own; refused "
                "(remove it: a clip is redone by the next ingest)"
            )
    return [e.name for e in found]


def remove_clip(store: str | Path, clip_id: str, *, durable: bool = True) -> None:
    """Uncommit a clip (rename away first, so readers never see a half-deleted clip).

    Its shard folder stays, empty or not: a writer may be about to commit into it. In
    a packed store nothing is removed: shards are never rewritten, and the manifest's
    row of the clip (failed) is what uncommits it.
    """
    if is_packed(store):
        return
    target = clip_dir(store, clip_id)
    if target.exists():
        trash = Path(store) / STAGING_DIR / f"removed.{clip_id}.{uuid.uuid4().hex}"
        os.rename(target, trash)
        if durable:
            fsync_path(target.parent, directory=True)
        shutil.rmtree(trash, ignore_errors=True)
