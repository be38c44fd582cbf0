"""Training and evaluation data: split membership and fixed-length audio-visual windows.

Windows are read by :class:`trainer.data.reader.ClipReader` (``pread`` for the default
raw layout, zarr for compressed ones), one reader per process, created lazily,
so the dataset pickles to DataLoader workers as plain metadata and resident
memory does not depend on the size of the store.

Items carry the visual stream as stored (uint8, channel-last: face crops, or
the centre 88 × 88 of the mouth crops, :mod:`trainer.data.streams`) and, in training,
the window's drawn shift/flip; :func:`trainer.data.inputs.model_inputs` makes the model's
float input on the training device. Audio is normalised here, per clip and per
channel (mean 0, std 1 over the whole clip, :func:`trainer.data.reader.audio_stats`),
which removes loudness and channel offsets between clips while keeping the shape
of the features over time.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

import schemas
from schemas import remote_clips
from schemas.layout import clip_dir, is_packed
from schemas.packed_index import locate
from schemas.store_url import store_url
from trainer.data.augment import default_max_shift, draw_shift_flip
from trainer.data.draws import ItemDraws
from trainer.data.face_valid import face_window
from trainer.data.frame_labels import FrameLabelReader, check_frame_labels
from trainer.data.reader import ClipReader
from trainer.data.streams import MOUTH_MARGIN, STREAM_ARRAYS, check_streams, crop_mouth


def window_arrays(
    video: np.ndarray, audio: np.ndarray, window: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """One item's arrays from ``n <= window`` frames, zero-padded at the end.

    Args:
        video: ``(n, S, S, 3)`` uint8 face crops, or ``(n, 88, 88)`` mouth crops.
        audio: ``(n, 104)`` audio, already normalised per clip.

    Returns:
        ``video (window, *video.shape[1:])`` uint8, ``audio (window, 104)`` float32,
        ``mask (window,)`` bool (True = real frame). A full window's arrays are passed
        through without a copy.
    """
    n = video.shape[0]
    if n != window:
        padded_video = np.zeros((window, *video.shape[1:]), dtype=np.uint8)
        padded_video[:n] = video
        padded_audio = np.zeros((window, audio.shape[1]), dtype=np.float32)
        padded_audio[:n] = audio
        video, audio = padded_video, padded_audio
    mask = np.zeros(window, dtype=np.bool_)
    mask[:n] = True
    video = np.ascontiguousarray(video, dtype=np.uint8)
    return video, np.ascontiguousarray(audio, dtype=np.float32), mask


@dataclass(frozen=True)
class ClipInfo:
    """One clip of a split, with its labels (1 = fake) and stored length ``num_frames``.

    ``dataset`` is the manifest's (``fakeavceleb`` for stores made before the column);
    ``has_frame_labels``: the store holds the clip's per-frame labels
    (:mod:`trainer.data.frame_labels`), i.e. its manifest row gives fake segments.
    """

    clip_id: str
    category: str
    identity: str
    audio_label: int
    video_label: int
    label: int
    num_frames: int
    dataset: str = "fakeavceleb"
    has_frame_labels: bool = False


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
    ids = split_table.column("clip_id").to_pylist()
    parts, problems = assign_clips(store, ids, split_table.column("split").to_pylist())
    found = [(what, sorted(ids)) for what, ids in problems.items() if ids]
    if found:
        details = "; ".join(f"{len(ids)} {what}: {_abbrev(ids)}" for what, ids in found)
        raise schemas.StoreError(
            f"split {split!r} of store {store} does not match the store ({details}); "
            "the store changed after the split was made: rerun `mscct-pipeline split`"
        )
    return parts


def assign_clips(
    store: Path | str, clip_ids: Sequence[str], part_names: Sequence[str]
) -> tuple[dict[str, list[ClipInfo]], dict[str, list[str]]]:
    """The clips ``clip_ids`` of ``store``, each put in its part, labels from the manifest.

    Clip ids name the same source clip in every store made from a dataset (they derive
    from identity, category and path), so a split of one store can be applied to another.

    Returns:
        ``parts`` (each sorted by clip_id) and ``problems``: the ids that could not be
        used, by reason ("missing from the manifest", "not ok", "not committed", "with
        no frames", "listed twice").
    """
    manifest = schemas.read_manifest(store)
    columns = ["clip_id", "category", "identity", "audio_label", "video_label", "label"]
    columns += ["num_frames", "status", "labelled", "dataset", "fake_segments"]
    rows = {r["clip_id"]: r for r in manifest.select(columns).to_pylist()}

    parts: dict[str, list[ClipInfo]] = {name: [] for name in schemas.SPLITS}
    problems: dict[str, list[str]] = {
        "missing from the manifest": [],
        "not ok": [],
        "not committed": [],
        "with no frames": [],
        "unlabelled": [],
        "listed twice": [],
    }
    seen: set[str] = set()
    is_committed = _committed_check(store)
    for clip_id, part in zip(clip_ids, part_names, strict=True):
        if clip_id in seen:
            problems["listed twice"].append(clip_id)
            continue
        seen.add(clip_id)
        row = rows.get(clip_id)
        if row is None:
            problems["missing from the manifest"].append(clip_id)
        elif row["status"] != schemas.STATUS_OK:
            problems["not ok"].append(clip_id)
        elif not is_committed(store, clip_id):
            problems["not committed"].append(clip_id)
        elif row["num_frames"] < 1:
            problems["with no frames"].append(clip_id)
        elif row["labelled"] is False or row["label"] is None:
            problems["unlabelled"].append(clip_id)
        else:
            parts[part].append(_clip_info(row))
    sorted_parts = {name: sorted(clips, key=lambda c: c.clip_id) for name, clips in parts.items()}
    return sorted_parts, problems


def _clip_info(row: dict[str, Any]) -> ClipInfo:
    """A labelled, ok manifest row as a :class:`ClipInfo`."""
    return ClipInfo(
        clip_id=row["clip_id"],
        category=row["category"],
        identity=row["identity"],
        audio_label=int(row["audio_label"]),
        video_label=int(row["video_label"]),
        label=int(row["label"]),
        num_frames=int(row["num_frames"]),
        dataset=row["dataset"] or "fakeavceleb",
        has_frame_labels=row["fake_segments"] is not None,
    )


@dataclass
class StoreClips:
    """Every clip of a store that can be scored (:func:`labelled_clips`), and the others."""

    clips: list[ClipInfo]  # sorted by clip_id
    unlabelled: int  # ok clips whose labels the dataset does not give
    unusable: dict[str, list[str]]  # labelled ok rows that cannot be read, by reason


def labelled_clips(store: Path | str) -> StoreClips:
    """Every ok, committed, labelled clip of ``store`` with frames: what ``eval --all``
    scores, no split needed. Failed rows are left out silently (they never had tensors)."""
    manifest = schemas.read_manifest(store)
    rows = manifest.select(["clip_id", "status", "labelled", "label"]).to_pylist()
    ok = [r for r in rows if r["status"] == schemas.STATUS_OK]
    labelled = [r["clip_id"] for r in ok if r["labelled"] is not False and r["label"] is not None]
    parts, problems = assign_clips(store, labelled, ["test"] * len(labelled))
    unusable = {reason: ids for reason, ids in problems.items() if ids}
    return StoreClips(parts["test"], len(ok) - len(labelled), unusable)


def _committed_check(store: Path | str) -> Callable[[Path | str, str], bool]:
    """How to ask whether a clip is committed: a ``stat`` per clip locally, one listing
    of the clips for a store in object storage (a request per clip would be slow)."""
    if store_url(store) is None or is_packed(store):
        return _is_committed
    return remote_clips.is_committed


def _is_committed(store: Path | str, clip_id: str) -> bool:
    if is_packed(store):  # the manifest names its shard: a dict look-up once read
        return locate(store, clip_id) is not None
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


class WindowDataset(torch.utils.data.Dataset):
    """Fixed-length windows of ``window`` frames from the clips of a split.

    ``train=True``: one item per clip per epoch, at a random start drawn from
    ``(seed, epoch, index)`` only (:class:`trainer.data.draws.ItemDraws`), never from global
    RNG state, so a resumed run and any number of DataLoader workers see identical
    batches. The epoch comes with the index: ``dataset[(epoch, i)]``, as
    :class:`EpochIndices` yields them, so persistent DataLoader workers need no
    per-epoch state. A plain ``dataset[i]`` uses the epoch of :meth:`set_epoch`.

    ``train=False``: deterministic windows covering each clip (stride ``eval_stride``,
    default ``window``; see :func:`eval_starts`), one item per ``(clip, window)``,
    listed in :attr:`windows` (empty in training; :meth:`item_window` works in both
    modes). A clip's score is the mean over its windows (:func:`trainer.evaluate.metrics.aggregate_windows`).

    Memory: each process reads through its own :class:`trainer.data.reader.ClipReader`,
    which maps nothing and keeps a bounded number of clips open, whatever the store size.
    Keep training workers persistent: the reader's caches then last the whole run.

    Items (default collate stacks them; ``S`` is the store's crop size):

    - ``"audio"``: ``(window, 104)`` float32, per-clip per-channel normalised;
    - one key per stream read (``streams``, default ``visual_input``'s alone; the
      model's stream is always among them), from the same window with the same draws:
      ``"video"``: face crops ``(window, S, S, 3)`` uint8 as stored; ``"mouth"``:
      ``(window, 88, 88)`` uint8, the window of the stored 96 × 96 mouth crops
      (:func:`trainer.data.streams.crop_mouth`); zeros after a short clip's end (:func:`trainer.data.inputs.model_inputs` turns it
      into the model's input);
    - ``"mask"``: ``(window,)`` bool, False on padding and frames without a face (face_valid);
    - ``"audio_label"``, ``"video_label"``, ``"label"``: ints, 1 = fake (collated to
      int64 ``(B,)``; plain ints because a scalar tensor per item costs more than the
      rest of the item's bookkeeping together);
    - ``"clip_index"``: int, index into ``clips``;
    - ``"shift_flip"`` (only when augmenting): ``(3,)`` int64 ``(dy, dx, flip)``;
    - ``"frame_label"`` (only with ``frame_labels=True``): ``(window,)`` float32, the
      window's per-frame ``fake`` labels (1 = fake frame), 0 on padding; every clip
      must then have frame labels (:mod:`trainer.data.frame_labels`), or the dataset
      refuses to be made (:class:`~trainer.config.settings.TrainerError`).

    Augmentation (``augment``, default ``train``): a shift of up to a few pixels with
    reflected borders and a horizontal flip, the same for every frame of a window,
    drawn here and applied on the device (:func:`trainer.data.augment.shift_flip`). For
    the mouth the shift moves the 88 × 88 window inside the stored 96 × 96 crop here
    (up to 4 pixels, real pixels at the borders). The shift is drawn for the model's
    stream; with both streams the mouth takes it, clipped to 4, as its crop's offset and
    ``shift_flip`` keeps it for the face (the model, reading the mouth, applies only the
    flip); with the mouth alone ``shift_flip`` is ``(0, 0, flip)``. There is no colour
    augmentation for either stream.
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
        visual_input: str = "face",
        streams: Sequence[str] | None = None,
        frame_labels: bool = False,
        labels_for: str = "model.frame_head=true",
    ) -> None:
        """``labels_for`` names, in the error for a clip without frame labels, what asked
        for them."""
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
        self.visual_input = visual_input
        wanted = {visual_input, *(streams or ())}  # one check for the model's and the items'
        unknown = sorted(wanted - set(STREAM_ARRAYS))
        if unknown:
            raise ValueError(f"streams must be among {', '.join(STREAM_ARRAYS)}, not {unknown}")
        self.streams = tuple(name for name in STREAM_ARRAYS if name in wanted)
        check_streams(info.recipe, self.streams, visual_input, store)
        # The model's stream sets the shift drawn (as for one stream); the mouth takes it,
        # clipped to MOUTH_MARGIN, as its crop's offset, the face on the device.
        mouth_model = visual_input == "mouth"
        self.max_shift = MOUTH_MARGIN if mouth_model else default_max_shift(self.crop_size)
        if self.augment and "face" in self.streams and self.max_shift >= self.crop_size:
            raise ValueError(f"crop size {self.crop_size} is too small to augment")
        self.eval_stride = eval_stride or window
        self.windows = []
        if not train:
            for index, clip in enumerate(self.clips):
                for start in eval_starts(clip.num_frames, window, self.eval_stride):
                    self.windows.append((index, start))
        self._reader: ClipReader | None = None
        self.frame_labels = frame_labels
        if frame_labels:
            check_frame_labels(self.clips, store, labels_for)
        self._labels: FrameLabelReader | None = None

    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        state["_reader"] = None  # workers open their own clips
        state["_labels"] = None
        return state

    def frame_label_window(self, clip_index: int, start: int) -> np.ndarray:
        """The ``(window,)`` float32 ``fake`` labels of a window (0 on padding)."""
        if self._labels is None:
            self._labels = FrameLabelReader(self.store)
        clip = self.clips[clip_index]
        return self._labels.window(clip.clip_id, clip.num_frames, start, self.window)

    def set_epoch(self, epoch: int) -> None:
        """Select the epoch whose random windows and augmentations the items follow."""
        self.epoch = int(epoch)

    def __len__(self) -> int:
        return len(self.clips) if self.train else len(self.windows)

    def _draw(self, epoch: int, i: int) -> tuple[int, int, ItemDraws | None]:
        """``(clip_index, start, draws)`` of item ``i`` in ``epoch``; ``draws`` continues
        with the augmentation (None when there is nothing random about the item)."""
        if not 0 <= i < len(self):
            raise IndexError(f"item {i} out of range for {len(self)} items")
        if not self.train:
            return (*self.windows[i], ItemDraws(self.seed, epoch, i) if self.augment else None)
        draws = ItemDraws(self.seed, epoch, i)
        slack = max(self.clips[i].num_frames - self.window, 0)
        return i, draws.integer(0, slack), draws

    def item_window(self, i: int, epoch: int | None = None) -> tuple[int, int]:
        """``(clip_index, start)`` of item ``i`` in ``epoch`` (default: :meth:`set_epoch`'s)."""
        clip_index, start, _ = self._draw(self.epoch if epoch is None else epoch, i)
        return clip_index, start

    def read_window(self, clip_index: int, start: int) -> tuple[dict[str, np.ndarray], np.ndarray]:
        """Copy frames ``[start, start + window)`` (clipped to the clip) out of the store.

        Returns:
            The visual streams as stored, by array name: ``video`` ``(n, S, S, 3)``
            and/or ``mouth`` ``(n, 96, 96)`` uint8, and ``audio`` ``(n, 104)`` float32,
            already normalised, with ``n = min(window, T - start)``.
        """
        if self._reader is None:
            arrays = [STREAM_ARRAYS[name] for name in self.streams]
            self._reader = ClipReader(self.store, self.recipe, arrays)
        clip = self.clips[clip_index]
        stop = min(start + self.window, clip.num_frames)
        return self._reader.window(clip.clip_id, clip.num_frames, start, stop)

    def __getitem__(self, key: int | tuple[int, int]) -> dict[str, Any]:
        """Item ``key``: an index, or ``(epoch, index)`` as :class:`EpochIndices` yields."""
        epoch, i = key if isinstance(key, tuple) else (self.epoch, key)
        clip_index, start, draws = self._draw(epoch, i)
        clip = self.clips[clip_index]
        frames, audio = self.read_window(clip_index, start)
        params = None
        if self.augment and draws is not None:  # draws is never None when augmenting
            params = draw_shift_flip(draws, self.max_shift)
        dy, dx, flip = params or (0, 0, 0)
        item: dict[str, Any] = {}
        for name in self.streams:
            stream = frames[STREAM_ARRAYS[name]]
            if name == "mouth":  # the mouth's shift is its crop's offset, here
                stream = crop_mouth(
                    stream, *(int(np.clip(d, -MOUTH_MARGIN, MOUTH_MARGIN)) for d in (dy, dx))
                )
            stream, window_audio, mask = window_arrays(stream, audio, self.window)
            item[STREAM_ARRAYS[name]] = torch.from_numpy(stream)
        item["audio"] = torch.from_numpy(window_audio)
        valid = face_window(self.store, clip.clip_id, clip.num_frames, start, self.window)
        item["mask"] = torch.from_numpy(mask & valid)
        if params is not None and "face" not in self.streams:
            params = (0, 0, flip)  # nothing left to shift on the device
        item |= {
            "audio_label": clip.audio_label,
            "video_label": clip.video_label,
            "label": clip.label,
            "clip_index": clip_index,
        }
        if params is not None:
            item["shift_flip"] = torch.from_numpy(np.array(params, dtype=np.int64))
        if self.frame_labels:
            item["frame_label"] = torch.from_numpy(self.frame_label_window(clip_index, start))
        return item


class EpochIndices(torch.utils.data.Sampler[tuple[int, int]]):
    """``(epoch, index)`` pairs: the indices of ``sampler`` tagged with its current epoch.

    ``sampler`` is a :class:`~torch.utils.data.DistributedSampler` (or anything with
    ``epoch`` and ``set_epoch``); call :meth:`set_epoch` before each epoch. The epoch
    travels with every index to the DataLoader workers, so they can stay alive across
    epochs (``persistent_workers=True``) and keep their open clips and audio statistics.
    """

    def __init__(self, sampler: torch.utils.data.DistributedSampler) -> None:
        self.sampler = sampler

    def set_epoch(self, epoch: int) -> None:
        self.sampler.set_epoch(epoch)

    def __iter__(self) -> Iterator[tuple[int, int]]:
        epoch = int(self.sampler.epoch)
        return ((epoch, int(i)) for i in self.sampler)

    def __len__(self) -> int:
        return len(self.sampler)
