"""Reading a committed clip's tensors, refusing any path below the store that is a link.

The default ``raw`` layout stores each tensor as a single uncompressed chunk
(Zarr's ``bytes`` codec only), so the chunk file *is* the C-ordered array and
readers ``np.memmap`` it (:func:`open_clip`) or ``pread`` rows out of it
(:func:`open_raw_chunk`): no decode. The ``zstd`` layout trades
that for disk space and is read through zarr.
"""

from __future__ import annotations

import math
import os
import stat
from pathlib import Path
from typing import BinaryIO

import numpy as np

from schemas import packed_read, packed_remote, remote_clips
from schemas.array_limits import check_shape, parse_array_meta
from schemas.layout import (
    LABELS_DIR,
    StoreError,
    clip_dir,
    clip_parts,
    damaged_clip,
    is_packed,
    read_json,
)
from schemas.packed_index import damaged_packed_clip
from schemas.safe_files import RefusedFile, file_kind, open_inside
from schemas.store_url import store_url
from schemas.stored_array import ArraySpec
from schemas.streams import ARRAYS_BY_NAME, CLIP_ARRAY_PATHS, LABEL_NAMES


def array_spec(store: str | Path, clip_id: str, name: str) -> ArraySpec:
    """Where one array of a committed clip lies; ``name`` may name a nested array
    (``labels/fake``).

    Its ``zarr.json`` is read inside the store and checked before any number in it
    becomes a size: a shape, data type and chunk grid that make sense, and a shape
    within what the store's recipe can make (:func:`schemas.array_limits.check_shape`).

    Raises:
        StoreError: the clip is not committed, its path runs through a link, or its
            metadata is damaged (one line naming the clip and the fix).
    """
    if is_packed(store):
        return packed_read.array_spec(store, clip_id, name)
    path = clip_dir(store, clip_id) / name
    _refuse_links(store, clip_id, (*clip_parts(store, clip_id), *name.split("/")))
    try:
        if store_url(store) is None:
            meta = read_json(path / "zarr.json", store)
        else:
            meta = remote_clips.array_meta(store, path)
    except FileNotFoundError:
        raise StoreError(f"clip {clip_id!r} is not in store {store}") from None
    except StoreError as exc:
        raise damaged_clip(store, clip_id, f"its {name} metadata is unreadable ({exc})") from None
    try:
        shape, dtype, chunk_shape, codecs = parse_array_meta(meta)
        check_shape(store, name, shape, dtype, chunk_shape)
    except ValueError as exc:
        raise damaged_clip(store, clip_id, f"its {name} metadata {exc}") from None
    config = codecs[0].get("configuration") if codecs else None
    endian = config.get("endian", "little") if isinstance(config, dict) else "little"
    raw = (
        len(codecs) == 1
        and codecs[0].get("name") == "bytes"
        and chunk_shape == shape
        and (dtype.itemsize == 1 or endian == "little")
    )
    return ArraySpec(
        path=path, shape=shape, dtype=dtype.newbyteorder("<"), raw=raw,
        chunk_shape=chunk_shape, clip_id=clip_id, store=str(store),
    )  # fmt: skip


def raw_chunk_path(store_root: str, clip_id: str, name: str, ndim: int) -> str:
    """Path of the single chunk file of a raw-layout tensor with ``ndim`` dimensions.

    Built from strings (readers call this per training item), in the store's layout
    (cached per store, see :func:`schemas.layout.clip_layout`); the clip id is checked
    so that a manifest cannot steer it outside ``clips/``.
    """
    folder = "/".join(clip_parts(store_root, clip_id))
    return f"{store_root}/{folder}/{name}/c/{'/'.join('0' * ndim)}"


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
        StoreError: the clip id is malformed, the path runs through a link, or the
            chunk is not a regular file (a FIFO, a folder).
    """
    path = raw_chunk_path(store_root, clip_id, name, ndim)
    # O_NONBLOCK: a FIFO named like a chunk opens at once (and is refused below) instead
    # of blocking the reader forever; it changes nothing for a regular file.
    fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC | os.O_NONBLOCK)
    try:
        if _opened_path(fd) != path:
            parts = (*clip_parts(store_root, clip_id), name, "c", *("0" * ndim))
            _refuse_links(store_root, clip_id, parts)
        mode = os.fstat(fd).st_mode
        if not stat.S_ISREG(mode):
            problem = f"its {name} chunk file is {file_kind(mode)}, not a regular file"
            raise damaged_clip(store_root, clip_id, problem)
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
    whole path. Object keys hold no links (:mod:`schemas.remote` keeps them inside).
    """
    if store_url(store) is not None:
        return
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
    """Zero-copy read-only ``np.memmap`` for the raw layout, a zarr decode otherwise.

    A raw chunk is opened inside its array's folder (no link, no FIFO) and must hold
    exactly the bytes its shape needs: a truncated or grown one is a one-line
    :class:`StoreError` naming the clip and the fix, never a short map.
    """
    if store_url(spec.store) is not None:
        return _remote_array(spec)
    if spec.offset is not None and not spec.raw:  # a clip of a zstd packed store
        return packed_read.load_zstd(spec)
    if spec.raw:
        return _map_raw(spec)
    import zarr

    return np.asarray(zarr.open_array(str(spec.path), mode="r")[...])


def _remote_array(spec: ArraySpec) -> np.ndarray:
    """An array of a remote store: a raw chunk in one bounded ``GET``, else zarr; a
    packed clip's rows in one ranged ``GET`` (raw), or its inner chunks (zstd)."""
    if spec.offset is not None:
        return packed_read.load_zstd(spec) if not spec.raw else packed_remote.read_rows(spec)
    try:
        if spec.raw:
            return remote_clips.read_raw(spec.store, spec.chunk_file, spec.shape, spec.dtype)
        return remote_clips.read_zarr(spec.store, spec.path)
    except FileNotFoundError:
        raise _damaged(spec, f"its {spec.path.name} chunk file is missing") from None


def _is_file(store: str | Path, path: Path) -> bool:
    """Whether ``path`` below the store is a file (an object, for a remote store)."""
    return path.is_file() if store_url(store) is None else remote_clips.exists(store, path)


def _exists(store: str | Path, path: Path) -> bool:
    """Whether anything lies at ``path`` below the store (an object, for a remote store)."""
    return path.exists() if store_url(store) is None else remote_clips.exists(store, path)


def _map_raw(spec: ArraySpec) -> np.ndarray:
    name = spec.path.name
    try:
        handle = open_inside(spec.chunk_file, spec.path, what="chunk file")
    except FileNotFoundError:
        raise _damaged(spec, f"its {name} chunk file is missing") from None
    except RefusedFile as exc:
        raise _damaged(spec, str(exc)) from None
    with handle:
        size = os.fstat(handle.fileno()).st_size
        needed = math.prod(spec.shape) * spec.dtype.itemsize
        if spec.offset is not None:  # a packed clip: its rows within the shard's chunk
            return _map_slice(spec, handle, size, needed)
        if size != needed:
            problem = (
                f"its {name} chunk file holds {size:,} bytes, its shape {spec.shape} "
                f"{spec.dtype.name} needs {needed:,}"
            )
            raise _damaged(spec, problem)
        if needed == 0:
            return np.zeros(spec.shape, spec.dtype)
        return np.memmap(handle, dtype=spec.dtype, mode="r", shape=spec.shape)


def _map_slice(spec: ArraySpec, handle: BinaryIO, size: int, needed: int) -> np.ndarray:
    """A packed clip's rows, mapped from its shard's chunk file at ``spec.offset``."""
    offset = int(spec.offset or 0)
    if size < offset + needed:
        problem = (
            f"its {spec.path.name} chunk file holds {size:,} bytes, its rows end at "
            f"{offset + needed:,}"
        )
        raise _damaged(spec, problem)
    if needed == 0:
        return np.zeros(spec.shape, spec.dtype)
    return np.memmap(handle, dtype=spec.dtype, mode="r", shape=spec.shape, offset=offset)


def _damaged(spec: ArraySpec, problem: str) -> StoreError:
    if not spec.clip_id:  # a spec made by hand: no clip to name
        return StoreError(f"{spec.path} is damaged: {problem}")
    if spec.offset is not None:  # a packed clip: name its shard
        return damaged_packed_clip(spec.store, spec.clip_id, problem)
    return damaged_clip(spec.store, spec.clip_id, problem)


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


#: Every array a committed clip can hold outside ``labels/``, as :func:`open_stream`
#: names them (their paths in the table of :mod:`schemas.streams`).
CLIP_ARRAYS = CLIP_ARRAY_PATHS


def open_stream(store: str | Path, clip_id: str, name: str) -> np.ndarray | None:
    """One array of a committed clip, or None when the clip holds no such array.

    ``name`` is one of :data:`CLIP_ARRAYS`: ``video`` ``(T, S, S, 3)`` uint8,
    ``audio`` ``(T, 104)`` float, ``face_boxes`` ``(T, 4)`` float32, ``landmarks``
    ``(T, 68, 2)`` float16 (face-crop pixels), ``mouth`` ``(T, 96, 96)`` uint8,
    ``face_valid`` ``(T,)`` uint8 (1 = the frame has a face; :func:`read_face_valid`),
    ``pose`` ``(T, 4)`` float32 (:func:`read_pose`). None for an array the store's
    recipe did not ask for, or a store older than it. Zero-copy
    (``np.memmap``) for the raw layout, like :func:`open_clip`.

    Raises:
        ValueError: an unknown ``name``.
        StoreError: the clip is not committed, or its path runs through a link.
    """
    if name not in CLIP_ARRAYS:
        raise ValueError(f"unknown clip array {name!r}; one of {', '.join(CLIP_ARRAYS)}")
    if is_packed(store):
        spec = packed_read.spec_if_held(store, clip_id, name)
        return None if spec is None else load_array(spec)
    folder = clip_dir(store, clip_id)
    _refuse_links(store, clip_id, clip_parts(store, clip_id))
    if not _is_file(store, folder / "zarr.json"):
        raise StoreError(f"clip {clip_id!r} is not in store {store}")
    if not _exists(store, folder / name / "zarr.json"):
        return None
    return load_array(array_spec(store, clip_id, name))


def read_face_valid(store: str | Path, clip_id: str) -> np.ndarray:
    """``(T,)`` bool of a committed clip: True where the frame has a face.

    A clip stored without ``face_valid`` (before the pipeline kept it) reads as a face
    in every frame, as it was then taken to be.

    Raises:
        StoreError: the clip is not committed, its path runs through a link, or its
            ``face_valid`` does not match its frames.
    """
    frames = array_spec(store, clip_id, "video").shape[0]
    data = open_stream(store, clip_id, "face_valid")
    if data is None:  # the table's value for a clip stored without it: a face
        return np.full(frames, ARRAYS_BY_NAME["face_valid"].absent != 0, np.bool_)
    if data.shape != (frames,):
        raise StoreError(f"clip {clip_id}: face_valid is {data.shape}, expected ({frames},)")
    return np.asarray(data) != 0


def read_pose(store: str | Path, clip_id: str) -> np.ndarray:
    """``(T, 4)`` float32 of a committed clip: yaw, pitch, roll (degrees), fit residual.

    Fitted to the clip's landmarks (``pipeline.clip.head_pose``); NaN on a frame without a
    face. A clip stored without ``pose`` (before the pipeline kept it, or without
    landmarks) reads as NaN in every frame: unknown.

    Raises:
        StoreError: the clip is not committed, its path runs through a link, or its
            ``pose`` does not match its frames.
    """
    frames = array_spec(store, clip_id, "video").shape[0]
    data = open_stream(store, clip_id, "pose")
    if data is None:  # the table's value for a clip stored without it: unknown
        return np.full((frames, 4), ARRAYS_BY_NAME["pose"].absent, np.float32)
    if data.shape != (frames, 4):
        raise StoreError(f"clip {clip_id}: pose is {data.shape}, expected ({frames}, 4)")
    return np.asarray(data, np.float32)


#: The per-frame label arrays of a clip, as :func:`read_frame_labels` names them
#: (the table's labels, :data:`schemas.streams.LABEL_NAMES`).
FRAME_LABEL_NAMES = LABEL_NAMES


def read_frame_labels(store: str | Path, clip_id: str) -> dict[str, np.ndarray] | None:
    """A clip's per-frame labels, or None when it has none (a clip-level dataset).

    Returns ``{"fake", "audio_fake", "video_fake"}`` -> ``(T,)`` uint8 arrays, 1 = the
    stored frame ``t`` is fake (see :mod:`schemas.frame_label_rule` for the rule), in memory
    (they are small). Version-1 stores have none.

    Raises:
        StoreError: the clip is not committed, its path runs through a link, or its
            labels do not match its frames.
    """
    if is_packed(store):
        specs = packed_read.label_specs(store, clip_id)
        return None if specs is None else {n: np.array(load_array(v)) for n, v in specs.items()}
    folder = clip_dir(store, clip_id)
    _refuse_links(store, clip_id, (*clip_parts(store, clip_id), LABELS_DIR))
    if not _is_file(store, folder / "zarr.json"):
        raise StoreError(f"clip {clip_id!r} is not in store {store}")
    if not _is_file(store, folder / LABELS_DIR / "zarr.json"):
        return None
    frames = array_spec(store, clip_id, "video").shape[0]
    labels = {}
    for name in FRAME_LABEL_NAMES:
        spec = array_spec(store, clip_id, f"{LABELS_DIR}/{name}")
        if spec.shape != (frames,) or spec.dtype != np.uint8:
            raise StoreError(
                f"clip {clip_id}: frame label {name} is {spec.shape} {spec.dtype}, "
                f"expected ({frames},) uint8"
            )
        labels[name] = np.array(load_array(spec))
    return labels
