"""Store reader for training: split membership and fixed-length audio-visual windows.

The store's default raw layout keeps each tensor as one uncompressed file, so a
window is a slice of a read-only memory map: the only copy is the window itself, and
the kernel page cache is shared by every DataLoader worker. Nothing is opened
when a dataset is built; each process opens clips lazily and keeps at most
:data:`OPEN_CLIP_CACHE` of them mapped, so resident memory does not depend on
the size of the store.

Video normalisation: frames are scaled to ``[0, 1]`` and then normalised per
RGB channel with the ImageNet statistics :data:`VIDEO_MEAN` / :data:`VIDEO_STD`
(the visual pre-encoder is a ResNet-family CNN, where these are the customary
input statistics). Audio is normalised per clip and per channel (mean 0, std 1
over the whole clip), which removes loudness and channel offsets between clips
while keeping the shape of the features over time.
"""

from __future__ import annotations

import mmap
import os
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

import schemas
from schemas.store import clip_dir
from trainer.augment import default_max_shift, random_shift_flip, write_planes

VIDEO_MEAN: tuple[float, float, float] = (0.485, 0.456, 0.406)
VIDEO_STD: tuple[float, float, float] = (0.229, 0.224, 0.225)
AUDIO_EPS = 1e-5  # added to the per-channel variance: silent (constant) channels map to 0
OPEN_CLIP_CACHE = 8  # clips kept open per process; eval reads a clip's windows in a row

# (x / 255 - mean) / std = x * scale + bias, per channel.
_VIDEO_SCALE = (1.0 / (255.0 * np.asarray(VIDEO_STD))).astype(np.float32)
_VIDEO_BIAS = (-np.asarray(VIDEO_MEAN) / np.asarray(VIDEO_STD)).astype(np.float32)


def audio_stats(audio: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per-channel ``(mean, 1 / std)`` of a whole clip's ``(T, 104)`` audio, float32.

    Computed in float64 (the track is small); ``AUDIO_EPS`` keeps silent channels finite.
    """
    track = np.asarray(audio, dtype=np.float64)
    mean = track.mean(axis=0)
    centred = track - mean
    inv_std = 1.0 / np.sqrt((centred * centred).mean(axis=0) + AUDIO_EPS)
    return mean.astype(np.float32), inv_std.astype(np.float32)


def window_arrays(
    video: np.ndarray, audio: np.ndarray, window: int, transform: Any = None
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """One model input from ``n <= window`` frames, zero-padded at the end.

    Args:
        video: ``(n, S, S, 3)`` uint8 crops (a memmap view is fine: this is the one copy).
        audio: ``(n, 104)`` audio, already normalised per clip.
        transform: a :class:`trainer.augment.ShiftFlip` applied during the copy, or None.

    Returns:
        ``video (3, window, S, S)`` float32 normalised, ``audio (window, 104)`` float32,
        ``mask (window,)`` bool (True = real frame).
    """
    n, size = video.shape[0], video.shape[1]
    # numpy, not torch: single-threaded on purpose. Torch's intra-op threads spin
    # against each other on a busy machine (10-30x slower here) and DataLoader
    # workers get one thread each anyway. Channel-first planes with scalar scale
    # and bias keep both arithmetic passes vectorised.
    video_out = np.empty((3, window, size, size), dtype=np.float32)
    video_out[:, n:] = 0.0
    write_planes(video, video_out[:, :n], transform)
    for c in range(3):
        plane = video_out[c, :n]
        plane *= _VIDEO_SCALE[c]
        plane += _VIDEO_BIAS[c]
    audio_out = np.zeros((window, audio.shape[1]), dtype=np.float32)
    audio_out[:n] = audio
    mask = np.zeros(window, dtype=np.bool_)
    mask[:n] = True
    return video_out, audio_out, mask


@dataclass(frozen=True)
class ClipInfo:
    """One clip of a split, with its labels (1 = fake) and stored length ``num_frames``."""

    clip_id: str
    category: str
    identity: str
    audio_label: int
    video_label: int
    label: int
    num_frames: int


def split_clips(store: Path | str, split: str = "default") -> dict[str, list[ClipInfo]]:
    """Clips of each part ('train', 'val', 'test') of a named split, labels from the manifest.

    Opens the store through schemas (format version checked), joins ``schemas.read_split``
    with ``schemas.read_manifest`` on clip_id. A split clip that is missing from the
    manifest, not 'ok', or not committed in ``clips/`` raises ``schemas.StoreError``
    naming the clip(s): the store changed after the split was made. Clips are sorted
    by clip_id within each part, so the result is deterministic.
    """
    schemas.open_store(store)
    split_table = schemas.read_split(store, split)
    manifest = schemas.read_manifest(store)
    columns = ["clip_id", "category", "identity", "audio_label", "video_label", "label"]
    columns += ["num_frames", "status"]
    rows = {r["clip_id"]: r for r in manifest.select(columns).to_pylist()}

    parts: dict[str, list[ClipInfo]] = {name: [] for name in schemas.SPLITS}
    problems: dict[str, list[str]] = {
        "missing from the manifest": [],
        "not ok": [],
        "not committed": [],
        "with no frames": [],
        "listed twice": [],
    }
    seen: set[str] = set()
    ids = split_table.column("clip_id").to_pylist()
    for clip_id, part in zip(ids, split_table.column("split").to_pylist(), strict=True):
        if clip_id in seen:
            problems["listed twice"].append(clip_id)
            continue
        seen.add(clip_id)
        row = rows.get(clip_id)
        if row is None:
            problems["missing from the manifest"].append(clip_id)
        elif row["status"] != schemas.STATUS_OK:
            problems["not ok"].append(clip_id)
        elif not _is_committed(store, clip_id):
            problems["not committed"].append(clip_id)
        elif row["num_frames"] < 1:
            problems["with no frames"].append(clip_id)
        else:
            parts[part].append(
                ClipInfo(
                    clip_id=clip_id,
                    category=row["category"],
                    identity=row["identity"],
                    audio_label=int(row["audio_label"]),
                    video_label=int(row["video_label"]),
                    label=int(row["label"]),
                    num_frames=int(row["num_frames"]),
                )
            )
    found = [(what, sorted(ids)) for what, ids in problems.items() if ids]
    if found:
        details = "; ".join(f"{len(ids)} {what}: {_abbrev(ids)}" for what, ids in found)
        raise schemas.StoreError(
            f"split {split!r} of store {store} does not match the store ({details}); "
            "the store changed after the split was made: rerun `mscct-pipeline split`"
        )
    return {name: sorted(clips, key=lambda c: c.clip_id) for name, clips in parts.items()}


def _is_committed(store: Path | str, clip_id: str) -> bool:
    # A stat, not a metadata read: checking 20k clips must stay instant.
    return (clip_dir(store, clip_id) / "zarr.json").is_file()


def _abbrev(ids: list[str], limit: int = 8) -> str:
    shown = ", ".join(ids[:limit])
    return shown if len(ids) <= limit else f"{shown}, ... (+{len(ids) - limit} more)"


def eval_starts(num_frames: int, window: int, stride: int) -> list[int]:
    """Window starts covering every frame of a clip: ``0, stride, ...`` plus a last
    window flush with the clip's end. A clip no longer than the window has one start, 0."""
    if not 1 <= stride <= window:
        raise ValueError(f"stride must be in [1, window={window}], got {stride}")
    if num_frames <= window:
        return [0]
    starts = list(range(0, num_frames - window + 1, stride))
    if starts[-1] + window < num_frames:
        starts.append(num_frames - window)
    return starts


@dataclass
class _OpenClip:
    video: Any  # (T, S, S, 3) uint8: np.memmap (raw layout) or lazy zarr.Array (compressed)
    audio: np.ndarray  # (T, 104): np.memmap or decoded array
    audio_mean: np.ndarray  # (104,) float32
    audio_inv_std: np.ndarray  # (104,) float32


class _ClipCache:
    """A small LRU of open clips, owned by one process.

    Holding the memmaps of every clip ever read would keep their touched pages in
    this process's resident set, growing with the store; a bounded LRU keeps the
    benefit of reopening nothing while a clip's windows are read in a row.
    """

    def __init__(self, capacity: int) -> None:
        self.capacity = capacity
        self.pid = os.getpid()
        self.items: OrderedDict[str, _OpenClip] = OrderedDict()

    def get(self, store: Path, clip: ClipInfo, recipe: schemas.Recipe) -> _OpenClip:
        if self.pid != os.getpid():  # inherited through fork: never share mappings
            self.items.clear()
            self.pid = os.getpid()
        hit = self.items.get(clip.clip_id)
        if hit is not None:
            self.items.move_to_end(clip.clip_id)
            return hit
        opened = _open_clip(store, clip, recipe)
        self.items[clip.clip_id] = opened
        while len(self.items) > self.capacity:
            self.items.popitem(last=False)  # dropping the last reference unmaps the file
        return opened


def _open_array(store: Path, clip: ClipInfo, name: str, recipe: schemas.Recipe) -> Any:
    if recipe.layout == "raw":
        # The layout and the manifest fix path and shape: no metadata to read per clip.
        size = recipe.crop_size
        shape, dtype = (
            ((clip.num_frames, size, size, 3), "uint8")
            if name == "video"
            else ((clip.num_frames, schemas.AUDIO_CHANNELS), recipe.audio_dtype)
        )
        return _map_raw(schemas.raw_array_spec(store, clip.clip_id, name, shape, dtype))
    spec = schemas.array_spec(store, clip.clip_id, name)
    if spec.raw:
        return _map_raw(spec)
    import zarr

    # Lazy: slicing decodes only the chunks the window touches.
    return zarr.open_array(str(spec.path), mode="r")


def _map_raw(spec: schemas.ArraySpec) -> np.ndarray:
    """Read-only zero-copy view of a raw-layout chunk file, like ``schemas.load_array``.

    ``np.memmap`` resolves the path component by component on every open, which
    costs 5x the mapping itself; training opens a different clip for nearly every
    item, so the chunk file is mapped directly.
    """
    expected = int(np.prod(spec.shape)) * spec.dtype.itemsize
    try:
        fd = os.open(os.path.join(spec.path, "c", *("0" * len(spec.shape))), os.O_RDONLY)
    except FileNotFoundError:
        raise schemas.StoreError(
            f"{spec.chunk_file} is missing: the store changed after the split was made; "
            "rerun `mscct-pipeline ingest` and `mscct-pipeline split`"
        ) from None
    try:
        size = os.fstat(fd).st_size
        if size != expected:
            raise schemas.StoreError(
                f"{spec.chunk_file}: {size} bytes, but the manifest's shape {spec.shape} needs "
                f"{expected}; the store changed after the split was made, rerun `mscct-pipeline split`"
            )
        mapped = mmap.mmap(fd, size, access=mmap.ACCESS_READ)  # the map outlives the fd
    finally:
        os.close(fd)
    return np.frombuffer(mapped, dtype=spec.dtype).reshape(spec.shape)


def _open_clip(store: Path, clip: ClipInfo, recipe: schemas.Recipe) -> _OpenClip:
    video = _open_array(store, clip, "video", recipe)
    audio = _open_array(store, clip, "audio", recipe)
    if not isinstance(audio, np.ndarray):
        audio = audio[...]  # the whole track is needed for its statistics anyway
    if video.shape[0] != clip.num_frames or audio.shape[0] != clip.num_frames:
        raise schemas.StoreError(
            f"clip {clip.clip_id}: stored video/audio have {video.shape[0]}/{audio.shape[0]} "
            f"frames, the manifest says {clip.num_frames}; rerun `mscct-pipeline split`"
        )
    return _OpenClip(video, audio, *audio_stats(audio))


class WindowDataset(torch.utils.data.Dataset):
    """Fixed-length windows of ``window`` frames from the clips of a split.

    ``train=True``: one item per clip per epoch, at a random start drawn from
    ``(seed, epoch, index)`` only, never from global RNG state, so a resumed run and
    any number of DataLoader workers see identical batches. Call :meth:`set_epoch`
    before each epoch (with ``persistent_workers=True`` the workers keep their own
    copy, so recreate the loader or leave persistence off).

    ``train=False``: deterministic windows covering each clip (stride ``eval_stride``,
    default ``window``; see :func:`eval_starts`), one item per ``(clip, window)``,
    listed in :attr:`windows` (empty in training; :meth:`item_window` works in both
    modes). A clip's score is the mean over its windows (:func:`trainer.metrics.aggregate_windows`).

    Memory: each process keeps at most :data:`OPEN_CLIP_CACHE` clips mapped, so the
    resident set is bounded by that many clips' touched pages, whatever the store size.

    Items (default collate stacks them; ``S`` is the store's crop size):

    - ``"audio"``: ``(window, 104)`` float32, per-clip per-channel normalised;
    - ``"video"``: ``(3, window, S, S)`` float32, ``x / 255`` normalised with
      :data:`VIDEO_MEAN` / :data:`VIDEO_STD`;
    - ``"mask"``: ``(window,)`` bool, False on zero padding after the end of a short clip;
    - ``"audio_label"``, ``"video_label"``, ``"label"``: int64 scalars, 1 = fake;
    - ``"clip_index"``: int64 scalar, index into ``clips``.

    Augmentation (``augment``, default ``train``): a shift of up to a few pixels with
    reflected borders and a horizontal flip, the same for every frame of a window.
    """

    windows: list[tuple[int, int]]

    def __init__(
        self,
        store: Path | str,
        clips: Sequence[ClipInfo],
        window: int,
        *,
        train: bool,
        seed: int = 0,
        eval_stride: int | None = None,
        augment: bool | None = None,
    ) -> None:
        if window < 1:
            raise ValueError(f"window must be >= 1, got {window}")
        if eval_stride is not None and not 1 <= eval_stride <= window:
            # A stride beyond the window would skip frames that eval promises to score.
            raise ValueError(f"eval_stride must be in [1, window={window}], got {eval_stride}")
        if seed < 0:
            raise ValueError(f"seed must be >= 0, got {seed}")
        # Only metadata is read here: the object is pickled to every worker.
        info = schemas.open_store(store)
        self.store = Path(store)
        self.clips: tuple[ClipInfo, ...] = tuple(clips)
        self.window = window
        self.train = train
        self.seed = seed
        self.epoch = 0
        self.recipe = info.recipe
        self.crop_size = info.recipe.crop_size
        self.augment = train if augment is None else augment
        self.max_shift = default_max_shift(self.crop_size)
        self.eval_stride = eval_stride or window
        self.windows = []
        if not train:
            for index, clip in enumerate(self.clips):
                for start in eval_starts(clip.num_frames, window, self.eval_stride):
                    self.windows.append((index, start))
        self._cache: _ClipCache | None = None

    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        state["_cache"] = None  # workers open their own clips
        return state

    def set_epoch(self, epoch: int) -> None:
        """Select the epoch whose random windows and augmentations the items follow."""
        self.epoch = int(epoch)

    def __len__(self) -> int:
        return len(self.clips) if self.train else len(self.windows)

    def _rng(self, index: int) -> np.random.Generator:
        return np.random.default_rng((self.seed, self.epoch, index))

    def _draw(self, i: int) -> tuple[int, int, np.random.Generator | None]:
        """``(clip_index, start, rng)`` of item ``i``; ``rng`` continues with the augmentation
        (None when there is nothing random about the item)."""
        if not 0 <= i < len(self):
            raise IndexError(f"item {i} out of range for {len(self)} items")
        if not self.train:
            return (*self.windows[i], self._rng(i) if self.augment else None)
        rng = self._rng(i)
        slack = max(self.clips[i].num_frames - self.window, 0)
        return i, int(rng.integers(0, slack + 1)), rng

    def item_window(self, i: int) -> tuple[int, int]:
        """``(clip_index, start)`` of item ``i`` (in training, for the current epoch)."""
        clip_index, start, _ = self._draw(i)
        return clip_index, start

    def _window(self, clip_index: int, start: int) -> tuple[np.ndarray, np.ndarray]:
        """Frames ``[start, start + window)`` clipped to the clip: the video as a view of
        the memmap (a decoded copy for compressed stores), the audio normalised."""
        if self._cache is None:
            self._cache = _ClipCache(OPEN_CLIP_CACHE)
        clip = self.clips[clip_index]
        opened = self._cache.get(self.store, clip, self.recipe)
        stop = min(start + self.window, clip.num_frames)
        video = opened.video[start:stop]
        audio = np.asarray(opened.audio[start:stop], dtype=np.float32)
        audio = (audio - opened.audio_mean) * opened.audio_inv_std
        return video, audio

    def read_window(self, clip_index: int, start: int) -> tuple[np.ndarray, np.ndarray]:
        """Copy frames ``[start, start + window)`` (clipped to the clip) out of the store.

        Returns:
            ``video`` ``(n, S, S, 3)`` uint8 and ``audio`` ``(n, 104)`` float32, already
            normalised, with ``n = min(window, T - start)``.
        """
        video, audio = self._window(clip_index, start)
        return np.array(video, dtype=np.uint8), audio

    def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
        clip_index, start, rng = self._draw(i)
        clip = self.clips[clip_index]
        # The float conversion below is the one copy out of the map; the augmentation
        # rides along in it (see trainer.augment).
        video, audio = self._window(clip_index, start)
        transform = None
        if self.augment and rng is not None:
            transform = random_shift_flip(rng, self.max_shift)
        video_out, audio_out, mask = window_arrays(video, audio, self.window, transform)
        return {
            "audio": torch.from_numpy(audio_out),
            "video": torch.from_numpy(video_out),
            "mask": torch.from_numpy(mask),
            "audio_label": torch.tensor(clip.audio_label, dtype=torch.int64),
            "video_label": torch.tensor(clip.video_label, dtype=torch.int64),
            "label": torch.tensor(clip.label, dtype=torch.int64),
            "clip_index": torch.tensor(clip_index, dtype=torch.int64),
        }
