"""Loader benchmark: training windows per second from the store versus the alternatives.

Run ``python benchmarks/bench_loader.py`` (about two minutes) or with ``--quick``
(seconds). Writes ``benchmarks/results/loader.json`` and prints it. ``--only zstd``
times only the zstd layout against the raw one (under a minute) and writes
``benchmarks/results/loader_zstd.json``, with ``zstd_aligned_floor``: each window's
rows compressed ahead as frames of their own and decoded, what zstd would cost if
chunks began where windows do (no chunking can decode less), a ceiling for the layout.

All methods read the same sequence of ``(clip, start)`` windows (the training
windows of a few epochs), on the same clips, in one process, one after another:

- ``store``: ``WindowDataset.__getitem__`` in training (the full item as a DataLoader
  worker makes it: the window read, per-clip audio normalisation, padding, the drawn
  shift/flip, tensors; the video stays uint8); ``store_to_model_cpu`` adds what
  training on a CPU then does in the main process (``trainer.data.inputs.model_inputs``:
  shift/flip, channels first, float, normalised; on a GPU that runs on the device);
  ``store_zstd`` the full item from the zstd-layout store, its chunks decoded by the
  reader itself (:mod:`trainer.data.zstd_rows`: one decompression per chunk the window
  touches, straight into the window's array), ``store_zstd_zarr`` the same item with
  the chunks decoded by zarr (the reader's ``decode_zstd=False``, how it read zstd
  before); ``store_read_zstd`` and ``store_read_zstd_zarr`` are their read steps, to
  set against ``store_read``. The zstd store's bytes on disk over the raw store's are
  its ``compression_ratio``;
  ``store_read`` is only its read step (``read_window``: the uint8 window read out of
  the chunk file with ``pread`` plus normalised audio), the part that competes with
  the baselines, as it runs in a persistent DataLoader worker after its first epoch:
  every clip of the split checked and held open (the reader holds up to thousands),
  so a window is one ``pread`` per tensor. ``store_read_reopen`` is the same read by a
  reader allowed only 8 open clips, as when a split has more clips than the
  descriptor limit lets a worker hold: nearly every window opens another clip (two
  ``open``). ``store_read_unseen`` forgets all clips before every window, so each read
  also checks the clip (``readlink`` + ``fstat`` per file) and computes its audio
  statistics from the whole track: a worker's first epoch.
- ``on_the_fly``: what the peer code (MRDF's loader) does per item, in process: the
  clip's whole H.264 mp4 decoded with PyAV (libavcodec, one thread), the window's
  frames sliced out. The mp4 files are encoded from the very frames in the store,
  at the stored crop size, so this baseline decodes fewer pixels than the 224x224
  originals would (a lower bound on the speed-up) and computes no audio features.
- ``zarr_zstd`` / ``zarr_raw``: ``[start:start + T]`` of video and audio arrays that
  ``zarr.open_array`` opened once per clip (as a user would keep them), on a store
  written with the zstd layout and on the raw layout.
- ``--old-baselines`` adds the earlier, unfair versions, for the record:
  ``on_the_fly_ffmpeg_per_window`` (one ffmpeg process per window, decoding from a
  seek point) and ``zarr_zstd_open_per_window`` / ``zarr_raw_open_per_window``
  (both arrays opened again for every window). Ratios use the fair ones.
- ``memcpy_ram``: the raw memcpy of the same bytes that the target refers to: each
  window's video and audio copied (numpy) from one large in-memory array of every
  clip, at the window's position. ``memcpy_hot`` copies one window-sized array over
  and over; it stays in the CPU cache, so it is a ceiling, not a like-for-like baseline.

Page cache: warm. Every store file is read once before timing, and each method
runs a warm-up window; the figures are CPU cost, not disk speed. Methods are
interleaved in rounds and the median round is reported, so that a busy machine
slows all of them alike.

RSS: VmRSS growth while reading every eval window of a store, versus a store ten
times larger: flat means the reader's memory does not depend on the store size.

Whole epochs (``dataloader``): the DataLoader that ``mscct-train run`` builds (two
workers, batch 32, ``EpochIndices`` sampler) over the larger store, with persistent
workers (as the trainer runs) and with workers started afresh every epoch (as it
used to): windows per second over the epochs after the first, batches delivered
to the main process.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import torch  # noqa: E402
from torch.utils.data import DataLoader, DistributedSampler  # noqa: E402

import schemas  # noqa: E402
from benchmarks.output import save_result  # noqa: E402
from trainer.data.dataset import ClipInfo, EpochIndices, WindowDataset  # noqa: E402
from trainer.data.inputs import model_inputs  # noqa: E402
from trainer.data.reader import ClipReader  # noqa: E402
from trainer.data.streams import STREAM_ARRAYS  # noqa: E402

FPS = 25


@dataclass(frozen=True)
class Settings:
    clips: int
    frames: int
    window: int
    crop: int
    budget_s: float
    on_the_fly_windows: int
    epochs: int
    loader_epochs: int


DEFAULT = Settings(
    clips=16,
    frames=100,
    window=16,
    crop=112,
    budget_s=3.0,
    on_the_fly_windows=32,
    epochs=4,
    loader_epochs=6,
)
QUICK = Settings(
    clips=4,
    frames=40,
    window=16,
    crop=112,
    budget_s=0.3,
    on_the_fly_windows=4,
    epochs=2,
    loader_epochs=2,
)


# --------------------------------------------------------------------------- data


def face_frames(number: int, num_frames: int, crop: int) -> np.ndarray:
    """``(T, crop, crop, 3)`` uint8: a real face (scikit-image's astronaut) that drifts a
    little over time, so that H.264 sees realistic content and motion."""
    from skimage.data import astronaut

    image = astronaut()  # (512, 512, 3)
    size = 2 * crop  # downsample a 2x region by mean pooling: the face fills the crop
    frames = np.empty((num_frames, crop, crop, 3), dtype=np.uint8)
    for t in range(num_frames):
        dy = 20 + round(6 * np.sin((t + 5 * number) / 7))
        dx = 140 + round(6 * np.cos((t + 3 * number) / 11))
        region = image[dy : dy + size, dx : dx + size].astype(np.float32)
        frames[t] = region.reshape(crop, 2, crop, 2, 3).mean(axis=(1, 3)).astype(np.uint8)
    return frames


def build_store(path: Path, clips: int, frames: int, crop: int, layout: str) -> list[ClipInfo]:
    recipe = schemas.Recipe(crop_size=crop, layout=layout)
    schemas.create_store(path, recipe)
    rng = np.random.default_rng(0)
    infos = []
    for number in range(clips):
        clip_id = f"c{number:05d}"
        video = face_frames(number, frames, crop)
        audio = rng.normal(size=(frames, schemas.AUDIO_CHANNELS)).astype(np.float32)
        schemas.write_clip(path, clip_id, video, audio, {"clip_id": clip_id}, recipe)
        infos.append(ClipInfo(clip_id, "RARV", f"id{number}", 0, 0, 0, frames))
    return infos


def encode_mp4(video: np.ndarray, path: Path) -> None:
    import ffmpeg

    size = f"{video.shape[2]}x{video.shape[1]}"
    (
        ffmpeg.input("pipe:", format="rawvideo", pix_fmt="rgb24", s=size, framerate=FPS)
        .output(str(path), vcodec="libx264", pix_fmt="yuv420p")
        .overwrite_output()
        .run(input=video.tobytes(), quiet=True)
    )


def warm_page_cache(path: Path) -> int:
    total = 0
    for root, _, files in os.walk(path):
        for name in files:
            total += len(Path(root, name).read_bytes())
    return total


def rss_bytes() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise RuntimeError("no VmRSS in /proc/self/status")


# --------------------------------------------------------------------------- methods


Window = tuple[int, int, int, int]  # (epoch, item, clip_index, start)


def measure(
    methods: dict[str, Callable[[Window], object]],
    windows: list[Window],
    budget_s: float,
    caps: dict[str, int],
    rounds: int = 6,
) -> dict[str, dict]:
    """Windows per second of each method, interleaved: every round gives each method a
    slice of ``budget_s / rounds`` seconds (or ``caps[name]`` windows per round), so that a
    change of machine load hits all methods alike. Reports the median over rounds."""
    for fn in methods.values():  # warm-up pass
        fn(windows[0])
    rates: dict[str, list[float]] = {name: [] for name in methods}
    counts = dict.fromkeys(methods, 0)
    position = dict.fromkeys(methods, 0)
    for _ in range(rounds):
        for name, fn in methods.items():
            count, start = 0, time.perf_counter()
            while count < caps.get(name, 10**9):
                fn(windows[position[name] % len(windows)])
                position[name] += 1
                count += 1
                if time.perf_counter() - start >= budget_s / rounds:
                    break
            rates[name].append(count / (time.perf_counter() - start))
            counts[name] += count
    return {
        name: {
            "windows_per_s": float(np.median(r)),
            "min": float(min(r)),
            "max": float(max(r)),
            "windows": counts[name],
        }
        for name, r in rates.items()
    }


def on_the_fly(mp4s: list[Path], window: int) -> Callable[[Window], object]:
    """In-process decoding as MRDF's loader does it: the whole clip, then a slice."""
    import av

    def read(w: Window) -> np.ndarray:
        _, _, clip_index, start = w
        with av.open(str(mp4s[clip_index])) as container:
            stream = container.streams.video[0]
            stream.thread_count = 1  # one DataLoader worker's share, like the other methods
            # The conversion too: PyAV 17+ scales on every core by default, and 18.1.1 keeps
            # that thread pool per calling thread, where a later fork from another thread
            # (Ray's start) deadlocks on it.
            frames = np.stack(
                [f.to_ndarray(format="rgb24", threads=1) for f in container.decode(stream)]
            )
        clip = frames[start : start + window]
        if clip.shape[0] != window:
            raise RuntimeError(f"decoded {clip.shape[0]} frames from {start}, wanted {window}")
        return clip

    return read


def on_the_fly_ffmpeg_per_window(
    mp4s: list[Path], window: int, crop: int
) -> Callable[[Window], object]:
    """The earlier baseline: one ffmpeg process per window (process start-up dominates)."""
    import ffmpeg

    def read(w: Window) -> np.ndarray:
        _, _, clip_index, start = w
        out, _ = (
            ffmpeg.input(str(mp4s[clip_index]), ss=f"{start / FPS:.6f}")
            .filter("scale", crop, crop)
            .output("pipe:", format="rawvideo", pix_fmt="rgb24", vframes=window)
            .run(capture_stdout=True, capture_stderr=True)
        )
        frames = np.frombuffer(out, dtype=np.uint8).reshape(-1, crop, crop, 3)
        if frames.shape[0] != window:
            raise RuntimeError(f"decoded {frames.shape[0]} frames, wanted {window}")
        return frames

    return read


def zarr_reader(store: Path, clips: list[ClipInfo], window: int) -> Callable[[Window], object]:
    """Zarr slicing of arrays opened once per clip and kept, as a user's loader would."""
    import zarr

    opened: dict[int, tuple[object, object]] = {}

    def arrays(clip_index: int) -> tuple[object, object]:
        if clip_index not in opened:
            clip_id = clips[clip_index].clip_id
            opened[clip_index] = tuple(
                zarr.open_array(str(schemas.array_spec(store, clip_id, name).path), mode="r")
                for name in ("video", "audio")
            )
        return opened[clip_index]

    def read(w: Window) -> tuple[np.ndarray, np.ndarray]:
        _, _, clip_index, start = w
        video, audio = arrays(clip_index)
        return video[start : start + window], audio[start : start + window]

    return read


def zarr_open_per_window(
    store: Path, clips: list[ClipInfo], window: int
) -> Callable[[Window], object]:
    """The earlier baseline: both arrays opened again for every window."""
    import zarr

    def read(w: Window) -> tuple[np.ndarray, np.ndarray]:
        _, _, clip_index, start = w
        clip_id = clips[clip_index].clip_id
        video = zarr.open_array(str(schemas.array_spec(store, clip_id, "video").path), mode="r")
        audio = zarr.open_array(str(schemas.array_spec(store, clip_id, "audio").path), mode="r")
        return video[start : start + window], audio[start : start + window]

    return read


def zarr_decoded(store: Path, clips: list[ClipInfo], window: int) -> WindowDataset:
    """The training dataset of a zstd store whose reader leaves the decoding to zarr,
    as the reader did before it decoded zstd chunks itself."""
    ds = WindowDataset(store, clips, window, train=True, seed=0)
    arrays = [STREAM_ARRAYS[name] for name in ds.streams]
    ds._reader = ClipReader(store, ds.recipe, arrays, decode_zstd=False)
    return ds


def zstd_chunk_frames(store: Path, clip_id: str) -> int:
    """Frames per chunk of a clip's video in a zstd store, from its array metadata."""
    meta = json.loads((schemas.array_spec(store, clip_id, "video").path / "zarr.json").read_text())
    return int(meta["chunk_grid"]["configuration"]["chunk_shape"][0])


def chunks_per_read(ds: WindowDataset, windows: list[Window]) -> float:
    """Chunks the reader decodes per array (video, audio) and window, after every clip's
    first read (which decodes its whole audio track for the statistics)."""
    for clip_index in range(len(ds.clips)):
        ds.read_window(clip_index, 0)
    assert ds._reader is not None
    before = ds._reader.decoder.decompressions
    for w in windows:
        ds.read_window(w[2], w[3])
    return (ds._reader.decoder.decompressions - before) / (2 * len(windows))


def zstd_aligned_floor(
    store: Path, clips: list[ClipInfo], windows: list[Window], window: int
) -> Callable[[Window], object]:
    """A ceiling for any zstd chunking: each window's own video and audio rows compressed
    ahead as one zstd frame each (level 3), as if every chunk began where the window
    does, decoded straight into new arrays. Nothing is decoded but the window's bytes."""
    import numcodecs
    import zstandard

    codec = numcodecs.Zstd(level=3)
    frames: dict[tuple[int, int], list[tuple[bytes, tuple[int, ...], np.dtype]]] = {}
    for _, _, clip_index, start in windows:
        if (clip_index, start) not in frames:
            tensors = schemas.open_clip(store, clips[clip_index].clip_id)
            rows = [np.ascontiguousarray(t[start : start + window]) for t in tensors]
            frames[clip_index, start] = [(codec.encode(r), r.shape, r.dtype) for r in rows]
    context = zstandard.ZstdDecompressor()

    def read(w: Window) -> object:
        out = []
        for data, shape, dtype in frames[w[2], w[3]]:
            rows = np.empty(shape, dtype)
            context.stream_reader(data).readinto(rows.reshape(-1).view(np.uint8).data)
            out.append(rows)
        return out

    return read


def zstd_ratios(wps: dict[str, float]) -> dict[str, float]:
    """The zstd layout's read against the raw layout's and against zarr's decoding."""
    return {
        "store_read_zstd / store_read": wps["store_read_zstd"] / wps["store_read"],
        "store_zstd / store": wps["store_zstd"] / wps["store"],
        "store_read_zstd / store_read_zstd_zarr": (
            wps["store_read_zstd"] / wps["store_read_zstd_zarr"]
        ),
        "store_zstd / store_zstd_zarr": wps["store_zstd"] / wps["store_zstd_zarr"],
    }


def zstd_targets(ratios: dict[str, float]) -> dict[str, bool]:
    """Issue 16's targets for the zstd layout: a quarter of the raw read rate, and three
    times the rate of decoding through zarr (both as reads and as full items)."""
    return {
        "zstd read >= 25 % of raw read": ratios["store_read_zstd / store_read"] >= 0.25,
        "zstd item >= 25 % of raw item": ratios["store_zstd / store"] >= 0.25,
        "zstd read >= 3x zarr decoding": ratios["store_read_zstd / store_read_zstd_zarr"] >= 3,
        "zstd item >= 3x zarr decoding": ratios["store_zstd / store_zstd_zarr"] >= 3,
    }


# --------------------------------------------------------------------------- RSS


def rss_growth(store: Path, clips: list[ClipInfo], window: int) -> dict:
    ds = WindowDataset(store, clips, window, train=False)
    for i in range(min(32, len(ds))):
        ds[i]
    before = peak = rss_bytes()
    for i in range(len(ds)):
        ds[i]
        if i % 20 == 0:
            peak = max(peak, rss_bytes())
    peak = max(peak, rss_bytes())
    return {"clips": len(clips), "windows": len(ds), "rss_growth_bytes": peak - before}


# --------------------------------------------------------------------------- epochs


def dataloader_epochs(
    store: Path, clips: list[ClipInfo], window: int, epochs: int, *, persistent: bool
) -> dict:
    """Whole training epochs through the trainer's DataLoader set-up (2 workers)."""
    ds = WindowDataset(store, clips * 4, window, train=True, seed=0)  # 4 windows per clip
    sampler = EpochIndices(DistributedSampler(ds, num_replicas=1, rank=0, shuffle=True, seed=0))
    loader = DataLoader(
        ds, batch_size=32, sampler=sampler, num_workers=2, persistent_workers=persistent
    )
    seconds, windows = [], 0
    for epoch in range(epochs):
        sampler.set_epoch(epoch)
        start = time.perf_counter()
        windows = sum(len(batch["label"]) for batch in loader)
        seconds.append(time.perf_counter() - start)
    later = seconds[1:] or seconds
    return {
        "persistent_workers": persistent,
        "windows_per_epoch": windows,
        "epoch_s": seconds,
        "windows_per_s_after_first_epoch": windows * len(later) / sum(later),
    }


# --------------------------------------------------------------------------- main


def machine() -> dict:
    return {
        "cpus": os.cpu_count(),
        "platform": platform.platform(),
        "python": platform.python_version(),
        "load_avg_1m": os.getloadavg()[0],
    }


def run_zstd(settings: Settings, work: Path) -> dict:
    """Only the zstd layout against the raw one: the same windows of the same clips,
    read from a raw store, from a zstd store decoded by the reader, and decoded by zarr."""
    s = settings
    torch.set_num_threads(1)
    clips = build_store(work / "raw", s.clips, s.frames, s.crop, "raw")
    build_store(work / "zstd", s.clips, s.frames, s.crop, "zstd")
    sizes = {name: warm_page_cache(work / name) for name in ("raw", "zstd")}
    raw = WindowDataset(work / "raw", clips, s.window, train=True, seed=0)
    zstd = WindowDataset(work / "zstd", clips, s.window, train=True, seed=0)
    zstd_zarr = zarr_decoded(work / "zstd", clips, s.window)
    windows: list[Window] = []
    for epoch in range(s.epochs):
        windows += [(epoch, i, *raw.item_window(i, epoch)) for i in range(len(raw))]

    def item(ds: WindowDataset) -> Callable[[Window], object]:
        return lambda w: ds[w[0], w[1]]

    def read(ds: WindowDataset) -> Callable[[Window], object]:
        return lambda w: ds.read_window(w[2], w[3])

    methods = {
        "store": item(raw),
        "store_read": read(raw),
        "store_zstd": item(zstd),
        "store_read_zstd": read(zstd),
        "store_zstd_zarr": item(zstd_zarr),
        "store_read_zstd_zarr": read(zstd_zarr),
        "zarr_zstd": zarr_reader(work / "zstd", clips, s.window),
        "zstd_aligned_floor": zstd_aligned_floor(work / "raw", clips, windows, s.window),
    }
    results = measure(methods, windows, s.budget_s, {}, 6)
    wps = {name: r["windows_per_s"] for name, r in results.items()}
    ratios = zstd_ratios(wps)
    ratios["zstd_aligned_floor / store_read"] = wps["zstd_aligned_floor"] / wps["store_read"]
    return {
        "benchmark": "loader_zstd",
        "settings": s.__dict__,
        "window_bytes": s.window * (s.crop * s.crop * 3 + schemas.AUDIO_CHANNELS * 4),
        "page_cache": "warm: every store file read once before timing",
        "timing": "methods interleaved in 6 rounds; median windows/s per method",
        "machine": machine(),
        "bytes_on_disk": sizes,
        "compression_ratio": sizes["zstd"] / sizes["raw"],
        "zstd_chunk_frames": zstd_chunk_frames(work / "zstd", clips[0].clip_id),
        "zstd_chunks_decoded_per_array_read": chunks_per_read(zstd, windows),
        "results": results,
        "ratios": ratios,
        "targets_met": zstd_targets(ratios),
    }


def run(settings: Settings, work: Path, old_baselines: bool = False) -> dict:
    s = settings
    torch.set_num_threads(1)  # every method single-threaded, like one DataLoader worker
    t0 = time.perf_counter()
    raw_clips = build_store(work / "raw", s.clips, s.frames, s.crop, "raw")
    build_store(work / "zstd", s.clips, s.frames, s.crop, "zstd")
    big_clips = build_store(work / "raw10x", 10 * s.clips, s.frames, s.crop, "raw")
    mp4s = []
    for clip in raw_clips:
        video, _ = schemas.open_clip(work / "raw", clip.clip_id)
        mp4s.append(work / f"{clip.clip_id}.mp4")
        encode_mp4(np.asarray(video), mp4s[-1])
    setup_s = time.perf_counter() - t0
    sizes = {name: warm_page_cache(work / name) for name in ("raw", "zstd", "raw10x")}
    mp4_bytes = sum(p.stat().st_size for p in mp4s)

    train = WindowDataset(work / "raw", raw_clips, s.window, train=True, seed=0)
    windows: list[Window] = []
    for epoch in range(s.epochs):
        windows += [(epoch, i, *train.item_window(i, epoch)) for i in range(len(train))]

    def store_item(w: Window) -> object:
        return train[w[0], w[1]]

    def store_read(w: Window) -> object:
        return train.read_window(w[2], w[3])

    reopen = WindowDataset(work / "raw", raw_clips, s.window, train=True, seed=0)
    reopen.read_window(0, 0)
    assert reopen._reader is not None
    reopen._reader.max_open = min(8, s.clips // 2)  # fewer than the clips: reopen them

    def store_read_reopen(w: Window) -> object:
        return reopen.read_window(w[2], w[3])

    unseen = WindowDataset(work / "raw", raw_clips, s.window, train=True, seed=0)

    def store_read_unseen(w: Window) -> object:
        if unseen._reader is not None:
            unseen._reader.seen.clear()
        return unseen.read_window(w[2], w[3])

    def store_to_model_cpu(w: Window) -> object:
        batch = torch.utils.data.default_collate([train[w[0], w[1]]])
        return model_inputs(batch, torch.device("cpu"))

    zstd_ds = WindowDataset(work / "zstd", raw_clips, s.window, train=True, seed=0)
    zstd_zarr_ds = zarr_decoded(work / "zstd", raw_clips, s.window)

    def store_zstd_item(w: Window) -> object:
        return zstd_ds[w[0], w[1]]

    def store_zstd_zarr_item(w: Window) -> object:
        return zstd_zarr_ds[w[0], w[1]]

    def store_read_zstd(w: Window) -> object:
        return zstd_ds.read_window(w[2], w[3])

    def store_read_zstd_zarr(w: Window) -> object:
        return zstd_zarr_ds.read_window(w[2], w[3])

    frame_bytes = s.crop * s.crop * 3
    hot_video = np.ones((s.window, s.crop, s.crop, 3), dtype=np.uint8)
    hot_audio = np.ones((s.window, schemas.AUDIO_CHANNELS), dtype=np.float32)

    def memcpy_hot(w: Window) -> object:
        return hot_video.copy(), hot_audio.copy()

    all_video = np.concatenate(
        [np.asarray(schemas.open_clip(work / "raw", c.clip_id)[0]) for c in raw_clips]
    )
    all_audio = np.concatenate(
        [np.asarray(schemas.open_clip(work / "raw", c.clip_id)[1]) for c in raw_clips]
    )

    def memcpy_ram(w: Window) -> object:
        first = w[2] * s.frames + w[3]
        span = slice(first, first + s.window)
        return all_video[span].copy(), all_audio[span].copy()

    methods = {
        "store": store_item,
        "store_to_model_cpu": store_to_model_cpu,
        "store_read": store_read,
        "store_read_reopen": store_read_reopen,
        "store_read_unseen": store_read_unseen,
        "store_zstd": store_zstd_item,
        "store_zstd_zarr": store_zstd_zarr_item,
        "store_read_zstd": store_read_zstd,
        "store_read_zstd_zarr": store_read_zstd_zarr,
        "on_the_fly": on_the_fly(mp4s, s.window),
        "zarr_zstd": zarr_reader(work / "zstd", raw_clips, s.window),
        "zarr_raw": zarr_reader(work / "raw", raw_clips, s.window),
        "memcpy_hot": memcpy_hot,
        "memcpy_ram": memcpy_ram,
    }
    if old_baselines:
        methods |= {
            "on_the_fly_ffmpeg_per_window": on_the_fly_ffmpeg_per_window(mp4s, s.window, s.crop),
            "zarr_zstd_open_per_window": zarr_open_per_window(work / "zstd", raw_clips, s.window),
            "zarr_raw_open_per_window": zarr_open_per_window(work / "raw", raw_clips, s.window),
        }
    rounds = 6
    cap = max(1, s.on_the_fly_windows // rounds)
    caps = {"on_the_fly": cap, "on_the_fly_ffmpeg_per_window": cap}
    results = measure(methods, windows, s.budget_s, caps, rounds)

    wps = {name: r["windows_per_s"] for name, r in results.items()}
    best_zarr = max(wps["zarr_zstd"], wps["zarr_raw"])
    ratios = {
        "store / on_the_fly": wps["store"] / wps["on_the_fly"],
        "store_to_model_cpu / on_the_fly": wps["store_to_model_cpu"] / wps["on_the_fly"],
        "store / zarr (best of zstd, raw)": wps["store"] / best_zarr,
        "store / zarr_zstd": wps["store"] / wps["zarr_zstd"],
        "store_zstd / zarr_zstd": wps["store_zstd"] / wps["zarr_zstd"],
        **zstd_ratios(wps),
        "store_read / zarr (best of zstd, raw)": wps["store_read"] / best_zarr,
        "store / memcpy_hot": wps["store"] / wps["memcpy_hot"],
        "store_read / memcpy_hot": wps["store_read"] / wps["memcpy_hot"],
        "store_read / memcpy_ram": wps["store_read"] / wps["memcpy_ram"],
        "store / memcpy_ram": wps["store"] / wps["memcpy_ram"],
        "store_read_reopen / memcpy_ram": wps["store_read_reopen"] / wps["memcpy_ram"],
        "store_read_unseen / memcpy_ram": wps["store_read_unseen"] / wps["memcpy_ram"],
    }
    if old_baselines:
        best_old_zarr = max(wps["zarr_zstd_open_per_window"], wps["zarr_raw_open_per_window"])
        ratios |= {
            "old: store / on_the_fly_ffmpeg_per_window": (
                wps["store"] / wps["on_the_fly_ffmpeg_per_window"]
            ),
            "old: store / zarr_open_per_window (best of zstd, raw)": wps["store"] / best_old_zarr,
            "old: store_read / zarr_open_per_window (best of zstd, raw)": (
                wps["store_read"] / best_old_zarr
            ),
        }
    small = rss_growth(work / "raw", raw_clips, s.window)
    big = rss_growth(work / "raw10x", big_clips, s.window)
    small["store_bytes"], big["store_bytes"] = sizes["raw"], sizes["raw10x"]
    rss_added = big["rss_growth_bytes"] - small["rss_growth_bytes"]
    loaders = {
        name: dataloader_epochs(
            work / "raw10x", big_clips, s.window, s.loader_epochs, persistent=persistent
        )
        for name, persistent in (("persistent_workers", True), ("workers_per_epoch", False))
    }
    speed = {k: v["windows_per_s_after_first_epoch"] for k, v in loaders.items()}
    ratios["dataloader: persistent / per-epoch workers"] = (
        speed["persistent_workers"] / speed["workers_per_epoch"]
    )
    # Like for like: store_read and the baselines all deliver the window's bytes; the
    # full item adds what no baseline does (labels, mask, padding, drawn augmentation).
    targets = {
        "store / on_the_fly >= 20": ratios["store / on_the_fly"] >= 20,
        "store_read / zarr >= 5": ratios["store_read / zarr (best of zstd, raw)"] >= 5,
        "store (full item) / zarr >= 5": ratios["store / zarr (best of zstd, raw)"] >= 5,
        "store_read / memcpy of the same bytes >= 0.5": ratios["store_read / memcpy_ram"] >= 0.5,
        # "flat": the 10x store may not add more than a few MiB over the small one.
        "rss flat (10x store adds < 8 MiB)": rss_added < 8 * 2**20,
        **zstd_targets(ratios),
    }
    return {
        "benchmark": "loader",
        "settings": s.__dict__,
        "old_baselines": old_baselines,
        "window_bytes": s.window * (frame_bytes + schemas.AUDIO_CHANNELS * 4),
        "page_cache": "warm: every store file read once before timing",
        "timing": "methods interleaved in 6 rounds; median windows/s per method",
        "machine": machine(),
        "bytes_on_disk": {**sizes, "mp4": mp4_bytes},
        "compression_ratio": sizes["zstd"] / sizes["raw"],
        "zstd_chunk_frames": zstd_chunk_frames(work / "zstd", raw_clips[0].clip_id),
        "zstd_chunks_decoded_per_array_read": chunks_per_read(zstd_ds, windows),
        "setup_s": setup_s,
        "results": results,
        "ratios": ratios,
        "rss": {"store": small, "store_10x": big},
        "dataloader": loaders,
        "targets_met": targets,
    }


def _window_reader(
    reader: ClipReader, clips: list[ClipInfo], settings: Settings
) -> Callable[[Window], object]:
    """A window read: ``settings.window`` frames of clip ``w[2]`` from ``w[3]``."""

    def read(w: Window) -> object:
        clip = clips[w[2]]
        return reader.window(clip.clip_id, settings.frames, w[3], w[3] + settings.window)

    return read


def run_remote(settings: Settings, work: Path) -> dict:
    """Window reads per second of :class:`ClipReader` on a local store and on the same
    store uploaded to moto's S3 server on 127.0.0.1 (``--remote``), raw and zstd layouts,
    once every clip is known (its sizes or metadata checked, its audio statistics kept:
    the steady state of a training epoch after the first); and the requests per window.

    The server runs in this process, so its request handling shares the CPU with the
    reader: the numbers bound what a local network round trip costs, not a bucket's.
    """

    from benchmarks.local_s3 import local_s3

    results: dict[str, dict] = {}
    per_window: dict[str, float] = {}
    with local_s3() as s3:
        fs, requests = s3.fs, s3.requests
        for layout in ("raw", "zstd"):
            clips = build_store(
                work / layout, settings.clips, settings.frames, settings.crop, layout
            )
            fs.put(f"{work / layout}/", f"bench/{layout}", recursive=True)
            recipe = schemas.open_store(work / layout).recipe
            readers = {
                f"{layout}_local": ClipReader(work / layout, recipe),
                f"{layout}_s3_moto": ClipReader(f"s3://bench/{layout}", recipe),
            }
            rng = np.random.default_rng(0)
            slack = settings.frames - settings.window
            windows = [(0, i, i % len(clips), int(rng.integers(0, slack + 1))) for i in range(256)]

            def reader(r: ClipReader, clips: list[ClipInfo] = clips) -> Callable[[Window], object]:
                return _window_reader(r, clips, settings)

            for r in readers.values():
                for w in windows[: len(clips)]:
                    reader(r)(w)  # every clip known
            before = len(requests)
            for w in windows[:64]:
                reader(readers[f"{layout}_s3_moto"])(w)
            per_window[layout] = (len(requests) - before) / 64
            results |= measure(
                {k: reader(r) for k, r in readers.items()}, windows, settings.budget_s, {}
            )
    return {
        "benchmark": "loader_remote",
        "settings": settings.__dict__,
        "machine": machine(),
        "results": results,
        "requests_per_window": per_window,
        "ratios": {
            f"{layout}: s3 (moto, 127.0.0.1) / local": results[f"{layout}_s3_moto"]["windows_per_s"]
            / results[f"{layout}_local"]["windows_per_s"]
            for layout in ("raw", "zstd")
        },
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="smoke run in seconds")
    parser.add_argument("--window", type=int, help="frames per window (default 16)")
    parser.add_argument(
        "--only", choices=["zstd"], help="zstd: only the zstd layout against the raw one"
    )
    parser.add_argument("--out", type=Path, help="default: benchmarks/results/loader[_zstd].json")
    parser.add_argument(
        "--workdir", type=Path, help="where to build the stores (default: a temp dir)"
    )
    parser.add_argument(
        "--remote",
        action="store_true",
        help="window reads/s local vs through moto's S3 server on 127.0.0.1; prints the "
        "report (written only with --out)",
    )
    parser.add_argument(
        "--old-baselines",
        action="store_true",
        help="also time the earlier per-window ffmpeg / zarr-open baselines",
    )
    args = parser.parse_args(argv)
    from trainer.data.reader import raise_fd_limit

    raise_fd_limit()  # as `mscct-train` does at its start
    settings = QUICK if args.quick else DEFAULT
    if args.window:
        settings = Settings(**{**settings.__dict__, "window": args.window})
    results = ROOT / "benchmarks" / "results"
    with tempfile.TemporaryDirectory(dir=args.workdir) as tmp:
        if args.remote:
            report = run_remote(settings, Path(tmp))
            print(json.dumps(report, indent=2))
            if args.out is not None:
                save_result(report, args.out)
            return
        if args.only == "zstd":
            report = run_zstd(settings, Path(tmp))
            out = args.out or results / "loader_zstd.json"
        else:
            report = run(settings, Path(tmp), args.old_baselines)
            out = args.out or results / "loader.json"
    save_result(report, out)


if __name__ == "__main__":
    main()
