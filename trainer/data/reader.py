"""Reading windows of clips out of the store, one process at a time.

A training epoch visits clips in random order, so consecutive items almost never
share a clip, and per-clip work (opening, checking) costs as much as the copy.
The raw layout is therefore read with ``pread`` straight into the window's own
array rather than mapped: no page tables to build for a clip touched once per
epoch, no Zarr metadata (the manifest and the recipe fix every path and shape),
one ``readlink`` to refuse links, and nothing of the store ever counts in this
process's resident memory. The zstd layout is decoded here too
(:mod:`trainer.data.zstd_rows`): the chunk files a window touches, at most two for a
window of up to 51 frames, each decompressed once straight into the window's array,
the array's chunking read from its ``zarr.json`` at the clip's first read. An array
of any other zarr configuration (other codecs, filters, chunk grids) goes through
zarr, which also decodes only the chunks a window touches. The raw and zarr row
readers are in :mod:`trainer.data.stored_rows` (still importable from here).

Per process (each DataLoader worker has its own, opened lazily):

- :class:`ClipReader` reads the visual arrays asked for beside the audio: ``video``
  (face crops) and/or ``mouth`` (mouth crops), as ``data.streams`` and the model's
  ``visual_input`` ask (:mod:`trainer.data.streams`);
- it keeps the clips it read last open, one file descriptor per array read
  (two, or three with both visual arrays) each for the raw layout: up to :data:`MAX_OPEN_CLIPS`, or a quarter of the
  process's descriptor limit if that is lower (:func:`open_clip_capacity`). That
  holds a whole training split open in every persistent worker, so after the first
  epoch a window costs one ``pread`` per tensor and no ``open``; evaluation, which
  reads a clip's windows in a row, opens each clip once. The limit is the process's
  to set: :func:`raise_fd_limit`, called once at its start (the trainer's commands
  do), raises the soft limit towards the hard one, as Ray does; a reader only reads it;
- the first time a process reads a clip, it checks the clip (no links below the
  store root, file sizes as the manifest says) and computes the clip's audio
  statistics (mean and 1/std of each of the 104 channels) from the whole track.
  Both facts are kept for up to :data:`SEEN_CLIP_CACHE` clips (about 2 KB each),
  so later windows of the clip, in this epoch or the next, read only the
  window's rows (reopening the files by their known paths if they were closed).

Memory is bounded by those two constants, not by the store's size. A clip both
seen and open takes about 1.5 KB of this process's memory with the raw or zstd
layout (24 MB for 16,384 clips; a zstd clip holds no descriptor, its chunk files are
opened per read) and about 4 KB read through zarr (its array objects), plus the
kernel's record of each open file.
"""

from __future__ import annotations

import os
import resource
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

import schemas
from schemas.layout import read_json
from schemas.streams import CLIP_ARRAY_TABLE, ClipArray
from trainer.data.damage import damaged
from trainer.data.remote_rows import RemoteArrays, RemoteChunk, RemoteRows
from trainer.data.stored_rows import RawChunk, RawRows, Rows, ZarrRows
from trainer.data.zstd_rows import ChunkDecoder, ZstdArray, ZstdRows

AUDIO_EPS = 1e-5  # added to the per-channel variance: silent (constant) channels map to 0
MAX_OPEN_CLIPS = 16_384  # a whole FakeAVCeleb training split (about 15k clips) per process
MIN_OPEN_CLIPS = 8  # whatever the descriptor limit: eval reads a clip's windows in a row
SEEN_CLIP_CACHE = 1 << 15  # clips checked, audio statistics kept: at most about 64 MiB

#: The visual arrays a reader can read, by their paths in the clip (``video``,
#: ``mouth``): the table's visual streams, whose rows the store's recipe shapes.
VISUAL_ROWS: dict[str, ClipArray] = {a.path: a for a in CLIP_ARRAY_TABLE if a.visual}


def raise_fd_limit() -> int:
    """Raise this process's soft descriptor limit towards what :data:`MAX_OPEN_CLIPS`
    needs; return the soft limit now in force (``resource.RLIM_INFINITY`` if unlimited).

    Call it once at process start, before any DataLoader worker starts: a soft limit
    below four descriptors per clip is raised towards the hard limit, which any
    process may do. The change stays in this process and its children (the workers
    inherit it); where it cannot be made the limit stays and readers keep fewer
    clips open (:func:`open_clip_capacity`).
    """
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    wanted = 4 * MAX_OPEN_CLIPS
    if soft != resource.RLIM_INFINITY and soft < wanted:
        raised = wanted if hard == resource.RLIM_INFINITY else min(hard, wanted)
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (raised, hard))
            soft = raised
        except (ValueError, OSError):
            pass  # keep the current limit
    return soft


def open_clip_capacity(descriptors: int = 2) -> int:
    """How many clips this process may keep open, ``descriptors`` each (the audio and
    every visual array read: two for one visual stream, three for face and mouth).

    Their descriptors take at most half of the limit (a quarter of it in clips of two),
    so that half of it stays free for everything else (DataLoader workers pass each batch's tensors as descriptors).
    The limit is read, never changed (that is :func:`raise_fd_limit`'s job).
    """
    soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft == resource.RLIM_INFINITY:
        return MAX_OPEN_CLIPS
    return max(MIN_OPEN_CLIPS, min(MAX_OPEN_CLIPS, soft // (2 * descriptors)))


def audio_stats(audio: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per-channel ``(mean, 1 / std)`` of a whole clip's ``(T, 104)`` audio, float32.

    Two passes in float32 (centred before squaring, so no cancellation) agree with
    a float64 computation to about 1e-6; ``AUDIO_EPS`` keeps silent channels finite.
    """
    track = np.asarray(audio, dtype=np.float32)
    mean = track.mean(axis=0)
    centred = track - mean
    variance = np.einsum("tc,tc->c", centred, centred) / max(len(track), 1)
    return mean, (1.0 / np.sqrt(variance + AUDIO_EPS)).astype(np.float32)


@dataclass(slots=True)
class _OpenClip:
    visual: tuple[Rows, ...]  # the reader's visual arrays: video (T, S, S, 3), mouth (T, 96, 96)
    audio: Rows  # (T, 104) float


#: What a reader keeps of a stored array to open it again without metadata: a raw
#: chunk file (or object, in a remote store), a zstd array's chunking, or None for an
#: array read through zarr.
ArrayFacts = RawChunk | RemoteChunk | ZstdArray | None


@dataclass(frozen=True)
class _SeenClip:
    """What this process established at its first read of a clip."""

    audio_mean: np.ndarray  # (104,) float32
    audio_inv_std: np.ndarray  # (104,) float32
    chunks: tuple[ArrayFacts, ...]  # the visual arrays', then audio's


class ClipReader:
    """Windows of the clips of one store, for one process (see the module docstring).

    ``visual`` names the visual arrays read with the audio, one name or several:
    ``"video"`` (face crops, ``(T, S, S, 3)``) and/or ``"mouth"`` (``(T, 96, 96)``,
    stores whose recipe has it). Each open clip holds one descriptor per array read.
    ``decode_zstd=False`` reads zstd arrays through zarr instead of
    :mod:`trainer.data.zstd_rows` (the same values, slower: for comparisons).

    Not shared across ``fork``: a reader inherited by a child process drops what the
    parent had open and starts afresh, so no descriptor or cache is ever shared.
    """

    def __init__(
        self,
        store: Path | str,
        recipe: schemas.Recipe,
        visual: str | Sequence[str] = "video",
        *,
        decode_zstd: bool = True,
    ) -> None:
        visuals = (visual,) if isinstance(visual, str) else tuple(visual)
        if not visuals or len(set(visuals)) != len(visuals):
            raise ValueError(f"visual must name each array once, not {visuals}")
        for name in visuals:
            if name not in VISUAL_ROWS:
                raise ValueError(f"visual must be among {', '.join(VISUAL_ROWS)}, not {name!r}")
        self.visuals = visuals
        self.store = Path(store)
        self.root = os.path.realpath(store)  # once: the link check compares against it
        self.recipe = recipe
        self.pid = os.getpid()
        self.max_open = open_clip_capacity(len(visuals) + 1)
        self.open_clips: OrderedDict[str, _OpenClip] = OrderedDict()
        self.seen: OrderedDict[str, _SeenClip] = OrderedDict()
        self.audio_dtype = np.dtype(recipe.audio_dtype).newbyteorder("<")
        # A store named by a URL is read by byte ranges (trainer.data.remote_rows): chosen once.
        self.remote = RemoteArrays.of(store)
        self.decoder = self._new_decoder()  # zstd chunks: one context and buffer per process
        self.decode_zstd = decode_zstd

    def window(
        self, clip_id: str, num_frames: int, start: int, stop: int
    ) -> tuple[dict[str, np.ndarray], np.ndarray]:
        """Frames ``[start, stop)`` of a clip of ``num_frames`` frames (the manifest's count).

        Returns:
            Each visual array's rows by name, ``video`` ``(n, S, S, 3)`` and/or ``mouth``
            ``(n, 96, 96)`` uint8, and ``audio`` ``(n, 104)`` float32 normalised per
            clip and channel, all new arrays, ``n = stop - start``.
        """
        if self.pid != os.getpid():
            self.open_clips.clear()
            self.seen.clear()
            self.decoder = self._new_decoder()
            self.pid = os.getpid()
        seen = self.seen.get(clip_id)
        if seen is None:
            opened, seen, audio = self._first_read(clip_id, num_frames, start, stop)
        else:
            self.seen.move_to_end(clip_id)
            kept = self.open_clips.get(clip_id)
            if kept is None:
                opened = self._keep_open(clip_id, self._reopen(clip_id, seen))
            else:
                opened = kept
                self.open_clips.move_to_end(clip_id)
            audio = opened.audio.rows(start, stop).astype(np.float32, copy=False)
        audio -= seen.audio_mean
        audio *= seen.audio_inv_std
        frames = {
            name: rows.rows(start, stop)
            for name, rows in zip(self.visuals, opened.visual, strict=True)
        }
        return frames, audio

    def _first_read(
        self, clip_id: str, num_frames: int, start: int, stop: int
    ) -> tuple[_OpenClip, _SeenClip, np.ndarray]:
        """Open and check a clip, compute its audio statistics; also return the window's
        raw audio ``(stop - start, 104)`` float32, cut from the whole track."""
        self.open_clips.pop(clip_id, None)  # forgotten but still open: check it again
        facts: tuple[ArrayFacts, ...]
        if self.recipe.layout == "raw":
            opened, facts = self._check_raw(clip_id, num_frames)
        else:
            opened, facts = self._check_compressed(clip_id)
        named = (*zip(self.visuals, opened.visual, strict=True), ("audio", opened.audio))
        for name, rows in named:
            if rows.shape[0] != num_frames:
                raise damaged(
                    self.store,
                    clip_id,
                    f"its stored {name} has {rows.shape[0]} frames, the manifest says {num_frames}",
                )
        track = opened.audio.rows(0, num_frames)
        seen = _SeenClip(*audio_stats(track), chunks=facts)
        self.seen[clip_id] = seen
        if len(self.seen) > SEEN_CLIP_CACHE:
            self.seen.popitem(last=False)
        self._keep_open(clip_id, opened)
        return opened, seen, track[start:stop].astype(np.float32)  # a copy: track is dropped

    def _check_raw(
        self, clip_id: str, num_frames: int
    ) -> tuple[_OpenClip, tuple[RawChunk | RemoteChunk, ...]]:
        """Open and check the raw chunks of a clip's visual arrays and audio; on any failure
        the descriptors opened so far are closed."""
        wanted = [
            (name, self._visual_shape(name, num_frames), np.dtype("uint8")) for name in self.visuals
        ]
        wanted.append(("audio", (num_frames, schemas.AUDIO_CHANNELS), self.audio_dtype))
        rows: list[RawRows | RemoteRows] = []
        try:
            for name, shape, dtype in wanted:
                rows.append(self._open_raw(clip_id, name, shape, dtype))
        except BaseException:
            for opened_rows in rows:
                opened_rows.close()
            raise
        return _OpenClip(tuple(rows[:-1]), rows[-1]), tuple(r.chunk for r in rows)

    def _new_decoder(self) -> ChunkDecoder:
        return ChunkDecoder() if self.remote is None else self.remote.decoder()

    def _open_raw(
        self, clip_id: str, name: str, shape: tuple[int, ...], dtype: np.dtype
    ) -> RawRows | RemoteRows:
        """Open and check one raw chunk: a local file (``pread``) or a remote object."""
        if self.remote is not None:
            return self.remote.open_raw(clip_id, name, shape, dtype)
        chunk, fd = RawChunk.check(self.root, clip_id, name, shape, dtype)
        return RawRows(fd, chunk)

    def _visual_shape(self, name: str, num_frames: int) -> tuple[int, ...]:
        return (num_frames, *VISUAL_ROWS[name].row(self.recipe))

    def _check_compressed(self, clip_id: str) -> tuple[_OpenClip, tuple[ArrayFacts, ...]]:
        """Open a clip of a compressed layout from its arrays' metadata; on any failure the
        descriptors opened so far (raw arrays in it) are closed."""
        rows: list[Rows] = []
        facts: list[ArrayFacts] = []
        try:
            for name in (*self.visuals, "audio"):
                opened, known = self._compressed(clip_id, name)
                rows.append(opened)
                facts.append(known)
        except BaseException:
            for opened_rows in rows:
                if isinstance(opened_rows, RawRows | RemoteRows):
                    opened_rows.close()
            raise
        return _OpenClip(tuple(rows[:-1]), rows[-1]), tuple(facts)

    def _reopen(self, clip_id: str, seen: _SeenClip) -> _OpenClip:
        rows: list[Rows] = []
        try:
            for name, known in zip((*self.visuals, "audio"), seen.chunks, strict=True):
                if isinstance(known, RawChunk):
                    rows.append(RawRows.reopen(known))
                elif isinstance(known, RemoteChunk) and self.remote is not None:
                    rows.append(self.remote.reopen(known))
                elif isinstance(known, ZstdArray):
                    rows.append(ZstdRows(known, self.decoder))
                else:
                    rows.append(self._compressed(clip_id, name)[0])
        except BaseException:
            for opened_rows in rows:
                if isinstance(opened_rows, RawRows):
                    opened_rows.close()
            raise
        return _OpenClip(tuple(rows[:-1]), rows[-1])

    def _keep_open(self, clip_id: str, opened: _OpenClip) -> _OpenClip:
        self.open_clips[clip_id] = opened
        while len(self.open_clips) > self.max_open:
            self.open_clips.popitem(last=False)  # dropping it closes its descriptors
        return opened

    def _compressed(self, clip_id: str, name: str) -> tuple[Rows, ArrayFacts]:
        """Open array ``name`` of a clip in a compressed layout, as its metadata says:
        raw, plain zstd (decoded here) or anything else (through zarr)."""
        try:
            spec = schemas.array_spec(self.store, clip_id, name)
            zstd = None
            if spec.offset is not None and not spec.raw:  # a clip of a zstd packed store
                zstd = ZstdArray.packed(spec, name)
            elif self.decode_zstd and not spec.raw:
                remote = self.remote
                zstd = ZstdArray.from_metadata(
                    read_json(spec.path / "zarr.json")
                    if remote is None
                    else remote.array_meta(clip_id, name),
                    str(spec.path) if remote is None else remote.array_folder(clip_id, name),
                    name=name,
                    clip_id=clip_id,
                    store=str(self.store),
                )
        except schemas.StoreError:  # already says what is wrong (and is a ValueError too)
            raise
        except (KeyError, TypeError, ValueError) as exc:  # zarr.json without shape, dtype ...
            problem = f"its {name} metadata is unreadable ({type(exc).__name__}: {exc})"
            raise damaged(self.store, clip_id, problem) from None
        if spec.raw:  # a raw tensor in a store of another layout: read it the same way
            opened = self._open_raw(clip_id, name, spec.shape, spec.dtype)
            return opened, opened.chunk
        if zstd is not None:
            return ZstdRows(zstd, self.decoder), zstd
        if self.remote is not None:
            problem = f"its {name} is of a zarr configuration not read from a bucket (sync it)"
            raise damaged(self.store, clip_id, problem)
        return ZarrRows.open(spec.path, self.store, clip_id, name), None
