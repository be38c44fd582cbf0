"""The trainer's store reader: split membership, window contents, determinism, memory."""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import resource
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader, DistributedSampler

import schemas
import trainer.data.reader as reader
from schemas.layout import clip_dir
from trainer.data.augment import gather_batch, gather_per_window, shift_flip, source_maps
from trainer.data.dataset import (
    ClipInfo,
    EpochIndices,
    WindowDataset,
    eval_starts,
    split_clips,
)
from trainer.data.draws import ItemDraws
from trainer.data.inputs import VIDEO_MEAN, VIDEO_STD, video_for_model

CROP = 32
CATEGORY_CYCLE = schemas.CATEGORIES


def frame_video(num_frames: int, clip_number: int) -> np.ndarray:
    """``(T, S, S, 3)`` uint8: channel 0 holds the frame index, channel 1 the clip number,
    channel 2 a per-pixel pattern (so that a shift or flip is visible)."""
    video = np.empty((num_frames, CROP, CROP, 3), dtype=np.uint8)
    video[..., 0] = (np.arange(num_frames) % 256)[:, None, None]
    video[..., 1] = clip_number % 256
    yy, xx = np.mgrid[0:CROP, 0:CROP]
    video[..., 2] = (yy * 7 + xx * 3) % 251
    return video


def frame_audio(num_frames: int, rng: np.random.Generator) -> np.ndarray:
    """``(T, 104)``: channel 0 holds the frame index, the others random with offsets."""
    audio = rng.normal(5.0, 3.0, size=(num_frames, schemas.AUDIO_CHANNELS)).astype(np.float32)
    audio[:, 0] = np.arange(num_frames)
    return audio


def manifest_row(clip_id: str, number: int, num_frames: int, status: str = "ok") -> dict:
    category = CATEGORY_CYCLE[number % 4]
    labels = schemas.labels_for(category)
    return {
        "clip_id": clip_id,
        "path": f"{clip_id}.mp4",
        "category": category,
        "audio_label": labels.audio,
        "video_label": labels.video,
        "label": labels.overall,
        "identity": f"id{number // 4:05d}",
        "method": "real" if category == "RARV" else "synthetic",
        "num_frames": num_frames if status == "ok" else 0,
        "source_fingerprint": f"fp{number}",
        "recipe_hash": "test",
        "status": status,
        "error": "" if status == "ok" else "broken",
    }


def build_store(
    path: Path,
    lengths: list[int],
    *,
    layout: str = "raw",
    seed: int = 0,
    with_split: bool = True,
) -> list[ClipInfo]:
    """A store of clips ``c0000, c0001, ...`` with the given lengths; all in one 'train'
    part of split 'default' (plus, when ``with_split``). Returns their ClipInfo."""
    recipe = schemas.Recipe(crop_size=CROP, layout=layout)
    schemas.create_store(path, recipe)
    rng = np.random.default_rng(seed)
    rows, split_rows, infos = [], [], []
    for number, num_frames in enumerate(lengths):
        clip_id = f"c{number:04d}"
        row = manifest_row(clip_id, number, num_frames)
        schemas.write_clip(
            path,
            clip_id,
            frame_video(num_frames, number),
            frame_audio(num_frames, rng),
            row,
            recipe,
        )
        rows.append(row)
        part = schemas.SPLITS[number % 3]
        split_rows.append(
            {
                "clip_id": clip_id,
                "split": part,
                "category": row["category"],
                "identity": row["identity"],
                "label": row["label"],
            }
        )
        infos.append(
            ClipInfo(
                clip_id=clip_id,
                category=row["category"],
                identity=row["identity"],
                audio_label=row["audio_label"],
                video_label=row["video_label"],
                label=row["label"],
                num_frames=num_frames,
            )
        )
    schemas.write_manifest(path, schemas.rows_to_table(rows, schemas.MANIFEST_SCHEMA))
    if with_split:
        table = schemas.rows_to_table(split_rows, schemas.SPLIT_SCHEMA)
        schemas.write_split(path, "default", table, {"seed": 0})
    return infos


LENGTHS = [1, 5, 23, 40, 17, 64, 8, 9]


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[ClipInfo]]:
    path = tmp_path_factory.mktemp("data") / "store"
    return path, build_store(path, LENGTHS)


def model_video_bytes(item: dict[str, torch.Tensor]) -> np.ndarray:
    """What the model sees of an item, normalisation undone: ``(T, S, S, 3)`` uint8."""
    params = item["shift_flip"][None] if "shift_flip" in item else None
    video = video_for_model(item["video"][None], item["mask"][None], params)[0]
    mean = torch.tensor(VIDEO_MEAN).view(3, 1, 1, 1)
    std = torch.tensor(VIDEO_STD).view(3, 1, 1, 1)
    raw = ((video * std + mean) * 255.0).round().clamp(0, 255).to(torch.uint8)
    return raw.permute(1, 2, 3, 0).numpy()


def reference_shift_flip(video: np.ndarray, dy: int, dx: int, flip: bool) -> np.ndarray:
    """``(T, S, S, C)``: pad by reflection, crop back at ``(dy, dx)``, mirror if ``flip``."""
    p = max(abs(dy), abs(dx), 1)
    size_y, size_x = video.shape[1:3]
    padded = np.pad(video, ((0, 0), (p, p), (p, p), (0, 0)), mode="reflect")
    crop = padded[:, p + dy : p + dy + size_y, p + dx : p + dx + size_x]
    return crop[:, :, ::-1] if flip else crop


def same_items(x: dict, y: dict) -> bool:
    """Two items (or batches) hold the same keys and equal values (tensors or ints)."""
    return x.keys() == y.keys() and all(
        torch.equal(x[k], y[k]) if isinstance(x[k], torch.Tensor) else x[k] == y[k] for k in x
    )


def audio_frame_index(audio: torch.Tensor, num_frames: int) -> np.ndarray:
    """Recover channel 0 (= frame index) of per-clip normalised audio of a clip of T frames."""
    t = np.arange(num_frames, dtype=np.float64)
    return audio[:, 0].double().numpy() * np.sqrt(t.var() + reader.AUDIO_EPS) + t.mean()


# --------------------------------------------------------------------------- windows


def test_eval_windows_hold_the_right_frames(store: tuple[Path, list[ClipInfo]]) -> None:
    path, clips = store
    window = 8
    ds = WindowDataset(path, clips, window, train=False, eval_stride=6)
    assert len(ds) == len(ds.windows) > len(clips)
    for i in range(len(ds)):
        item = ds[i]
        clip_index, start = ds.windows[i]
        clip = clips[clip_index]
        n = min(window, clip.num_frames - start)
        assert item["video"].shape == (window, CROP, CROP, 3)
        assert item["audio"].shape == (window, schemas.AUDIO_CHANNELS)
        assert item["video"].dtype == torch.uint8 and item["audio"].dtype == torch.float32
        assert item["mask"].tolist() == [True] * n + [False] * (window - n)
        assert "shift_flip" not in item
        frames = item["video"][:n].numpy()
        np.testing.assert_array_equal(model_video_bytes(item)[:n], frames)
        assert frames[..., 0, 0, 0].tolist() == list(range(start, start + n))
        assert (frames[..., 1] == clip_index).all()
        assert (frames[..., 2] == frame_video(1, 0)[0, ..., 2]).all()
        # Audio frame t is video frame t.
        np.testing.assert_allclose(
            audio_frame_index(item["audio"][:n], clip.num_frames),
            np.arange(start, start + n),
            atol=1e-3,
        )
        assert not item["video"][n:].any() and not item["audio"][n:].any()
        assert int(item["clip_index"]) == clip_index
        assert int(item["label"]) == clip.label and int(item["audio_label"]) == clip.audio_label
        assert int(item["video_label"]) == clip.video_label


def test_single_frame_clip_and_short_clips(store: tuple[Path, list[ClipInfo]]) -> None:
    path, clips = store
    ds = WindowDataset(path, [clips[0], clips[1]], 16, train=True)
    one, five = ds[0], ds[1]
    assert one["mask"].sum() == 1 and five["mask"].sum() == 5
    # A single frame has zero variance: normalised audio is 0, not NaN.
    assert torch.isfinite(one["audio"]).all() and not one["audio"].any()
    assert ds.item_window(0) == (0, 0) and ds.item_window(1) == (1, 0)


@pytest.mark.parametrize("window", [1, 3, 8, 16])
def test_eval_starts_cover_every_frame(window: int) -> None:
    for num_frames in range(1, 60):
        for stride in range(1, window + 1):
            starts = eval_starts(num_frames, window, stride)
            covered = np.zeros(num_frames, dtype=bool)
            for start in starts:
                assert start >= 0 and (start + window <= num_frames or start == 0)
                covered[start : start + window] = True
            assert covered.all(), (num_frames, window, stride, starts)
            assert starts == sorted(set(starts))
    with pytest.raises(ValueError):
        eval_starts(10, 4, 5)


def test_eval_windows_are_deterministic(store: tuple[Path, list[ClipInfo]]) -> None:
    path, clips = store
    a = WindowDataset(path, clips, 8, train=False, seed=1)
    torch.manual_seed(123)
    np.random.seed(123)
    b = WindowDataset(path, clips, 8, train=False, seed=2)
    assert a.windows == b.windows
    for i in range(len(a)):
        assert torch.equal(a[i]["video"], b[i]["video"])
    with pytest.raises(ValueError, match="eval_stride"):
        WindowDataset(path, clips, 8, train=False, eval_stride=9)


def test_train_windows_reproducible_and_vary_by_epoch(store: tuple[Path, list[ClipInfo]]) -> None:
    path, clips = store

    def epoch_items(seed: int, epoch: int) -> list[dict[str, torch.Tensor]]:
        ds = WindowDataset(path, clips, 4, train=True, seed=seed)
        ds.set_epoch(epoch)
        torch.manual_seed(epoch * 1000 + seed)  # global state must not matter
        np.random.seed(epoch * 1000 + seed)
        return [ds[i] for i in range(len(ds))]

    first, again = epoch_items(0, 0), epoch_items(0, 0)
    for x, y in zip(first, again, strict=True):
        assert same_items(x, y)
    ds = WindowDataset(path, clips, 4, train=True)
    starts = {}
    for epoch in range(3):
        ds.set_epoch(epoch)
        starts[epoch] = [ds.item_window(i)[1] for i in range(len(ds))]
    assert starts[0] != starts[1] != starts[2]
    other_seed = epoch_items(1, 0)
    assert any(
        not torch.equal(x["video"], y["video"]) for x, y in zip(first, other_seed, strict=True)
    )
    # Starts stay inside the clip; a clip no longer than the window starts at 0.
    for i, clip in enumerate(clips):
        assert 0 <= starts[0][i] <= max(clip.num_frames - 4, 0)


def test_audio_is_normalised_per_clip(store: tuple[Path, list[ClipInfo]]) -> None:
    path, clips = store
    longest = max(range(len(clips)), key=lambda i: clips[i].num_frames)
    clip = clips[longest]
    ds = WindowDataset(path, [clip], clip.num_frames, train=False)
    audio = ds[0]["audio"].double()
    assert audio.mean(0).abs().max() < 1e-5
    assert (audio.std(0, unbiased=False) - 1).abs().max() < 1e-3
    # A window is normalised with the whole clip's statistics, not its own.
    part = WindowDataset(path, [clip], 8, train=False)[0]["audio"]
    torch.testing.assert_close(part, ds[0]["audio"][:8])


def test_training_augmentation_is_one_shift_and_flip_per_window(tmp_path: Path) -> None:
    lengths = [12] * 6
    clips = build_store(tmp_path / "s", lengths)
    ds = WindowDataset(tmp_path / "s", clips, 6, train=True, seed=3)
    assert ds.augment and ds.max_shift >= 1
    pattern = frame_video(1, 0)[0, ..., 2]
    p = ds.max_shift
    candidates = {
        (dy, dx, flip): reference_shift_flip(pattern[None, ..., None], dy, dx, flip)[0, ..., 0]
        for dy in range(-p, p + 1)
        for dx in range(-p, p + 1)
        for flip in (False, True)
    }
    seen = set()
    for epoch in range(4):
        ds.set_epoch(epoch)
        for i in range(len(ds)):
            item = ds[i]
            frames = model_video_bytes(item)[..., 2]
            assert (frames == frames[:1]).all(), "every frame of a window gets the same transform"
            dy, dx, flip = item["shift_flip"].tolist()
            np.testing.assert_array_equal(frames[0], candidates[(dy, dx, bool(flip))])
            seen.add((dy, dx, flip))
    assert len(seen) > 3 and {k[2] for k in seen} == {0, 1}
    plain = WindowDataset(tmp_path / "s", clips, 6, train=True, seed=3, augment=False)
    assert "shift_flip" not in plain[0]
    np.testing.assert_array_equal(model_video_bytes(plain[0])[..., 2], pattern[None].repeat(6, 0))


def test_shift_flip_matches_reflect_padding_then_crop() -> None:
    rng = np.random.default_rng(0)
    video = rng.integers(0, 255, size=(2, 9, 7, 3), dtype=np.uint8)
    cases = [(dy, dx, flip) for dy in range(-3, 4) for dx in range(-3, 4) for flip in (0, 1)]
    batch = torch.from_numpy(video)[None].expand(len(cases), -1, -1, -1, -1)
    out = shift_flip(batch, torch.tensor(cases))  # (B, C, T, S, S)
    assert out.shape == (len(cases), 3, 2, 9, 7) and out.dtype == torch.uint8
    for b, (dy, dx, flip) in enumerate(cases):
        expected = reference_shift_flip(video, dy, dx, bool(flip)).transpose(3, 0, 1, 2)
        np.testing.assert_array_equal(out[b].numpy(), expected)
    # Content moves against the shift: out[x] = in[x + 1], the border reflected.
    right = shift_flip(batch[:1], torch.tensor([[0, 1, 0]]))[0].permute(1, 2, 3, 0).numpy()
    np.testing.assert_array_equal(right[:, :, :-1], video[:, :, 1:])
    np.testing.assert_array_equal(right[:, :, -1], video[:, :, -2])
    plain = shift_flip(batch[:1], None)
    np.testing.assert_array_equal(plain[0].numpy(), video.transpose(3, 0, 1, 2))
    # The GPU's one-kernel gather and the CPU's per-window copy agree, to float too.
    rows, cols = source_maps(torch.tensor(cases), 9, 7)
    one_kernel = gather_batch(batch, rows, cols, torch.float32)
    torch.testing.assert_close(one_kernel, gather_per_window(batch, rows, cols, torch.float32))
    assert one_kernel.is_contiguous() and torch.equal(one_kernel, out.float())


def test_video_for_model_normalises_and_zeroes_padding() -> None:
    video = torch.zeros(2, 4, 5, 5, 3, dtype=torch.uint8)
    video[..., 0], video[..., 1], video[..., 2] = 255, 0, 128
    mask = torch.tensor([[True] * 4, [True, True, False, False]])
    out = video_for_model(video, mask)
    assert out.shape == (2, 3, 4, 5, 5) and out.dtype == torch.float32
    for c, value in enumerate((255, 0, 128)):
        expected = (value / 255 - VIDEO_MEAN[c]) / VIDEO_STD[c]
        torch.testing.assert_close(out[0, c], torch.full((4, 5, 5), expected))
        torch.testing.assert_close(out[1, c, :2], torch.full((2, 5, 5), expected))
    assert not out[1, :, 2:].any(), "padding frames are exactly zero"


def test_dataloader_workers_give_the_same_batches(store: tuple[Path, list[ClipInfo]]) -> None:
    path, clips = store
    ds = WindowDataset(path, clips, 8, train=True, seed=5)
    ds[0]  # opens a clip in the parent: workers must not depend on it

    def batches(workers: int, epoch: int) -> list[dict[str, torch.Tensor]]:
        ds.set_epoch(epoch)
        loader = DataLoader(ds, batch_size=3, shuffle=False, num_workers=workers)
        return list(loader)

    serial, parallel = batches(0, 1), batches(2, 1)
    assert len(serial) == len(parallel) == 3
    assert serial[0]["video"].shape == (3, 8, CROP, CROP, 3)
    assert serial[0]["mask"].dtype == torch.bool and serial[0]["label"].shape == (3,)
    assert serial[0]["label"].dtype == serial[0]["clip_index"].dtype == torch.int64
    for x, y in zip(serial, parallel, strict=True):
        assert same_items(x, y)
    other_epoch = batches(2, 2)
    assert any(
        not torch.equal(x["video"], y["video"]) for x, y in zip(serial, other_epoch, strict=True)
    )


def test_persistent_workers_follow_the_epoch_of_each_index(
    store: tuple[Path, list[ClipInfo]],
) -> None:
    """Workers that outlive an epoch take the epoch from the indices, not from their copy."""
    path, clips = store
    ds = WindowDataset(path, clips, 8, train=True, seed=5)
    sampler = EpochIndices(DistributedSampler(ds, num_replicas=1, rank=0, shuffle=True, seed=5))
    loader = DataLoader(ds, batch_size=3, sampler=sampler, num_workers=2, persistent_workers=True)
    assert len(loader) == 3
    for epoch in (0, 1, 2):
        sampler.set_epoch(epoch)
        got = list(loader)
        ds.set_epoch(epoch)  # the reference: in process, epoch set on the dataset
        reference = DistributedSampler(ds, num_replicas=1, rank=0, shuffle=True, seed=5)
        reference.set_epoch(epoch)
        order = list(reference)
        assert [(epoch, i) for i in order] == list(sampler)
        items = [ds[i] for i in order]
        batches = [items[j : j + 3] for j in range(0, len(items), 3)]
        expected = [torch.utils.data.default_collate(batch) for batch in batches]
        assert all(same_items(x, y) for x, y in zip(got, expected, strict=True)), epoch
    # An epoch given with the index wins over set_epoch's.
    fresh = WindowDataset(path, clips, 8, train=True, seed=5)
    assert same_items(ds[(0, 4)], fresh[4]) and not same_items(ds[4], fresh[4])


def test_zstd_layout_reads_the_same_values(tmp_path: Path) -> None:
    lengths = [1, 30, 57]  # crosses the compressed chunk boundaries (25 frames)
    raw_clips = build_store(tmp_path / "raw", lengths, layout="raw")
    zstd_clips = build_store(tmp_path / "zstd", lengths, layout="zstd")
    assert schemas.array_spec(tmp_path / "raw", "c0001", "video").raw
    assert not schemas.array_spec(tmp_path / "zstd", "c0001", "video").raw
    for train in (False, True):
        raw = WindowDataset(tmp_path / "raw", raw_clips, 20, train=train, eval_stride=7)
        zstd = WindowDataset(tmp_path / "zstd", zstd_clips, 20, train=train, eval_stride=7)
        assert len(raw) == len(zstd)
        for i in range(len(raw)):
            assert same_items(raw[i], zstd[i])


def test_length_mismatch_with_the_manifest_is_reported(store: tuple[Path, list[ClipInfo]]) -> None:
    path, clips = store
    wrong = ClipInfo(**{**clips[3].__dict__, "num_frames": clips[3].num_frames + 1})
    ds = WindowDataset(path, [wrong], 8, train=False)
    with pytest.raises(schemas.StoreError, match="c0003"):
        ds[0]


# --------------------------------------------------------------------------- splits


def test_split_clips_joins_split_and_manifest(store: tuple[Path, list[ClipInfo]]) -> None:
    path, clips = store
    parts = split_clips(path)
    assert set(parts) == {"train", "val", "test"}
    by_id = {c.clip_id: c for c in clips}
    assert sorted(c.clip_id for p in parts.values() for c in p) == sorted(by_id)
    for name, members in parts.items():
        assert [c.clip_id for c in members] == sorted(c.clip_id for c in members)
        for clip in members:
            assert clip == by_id[clip.clip_id]
            assert schemas.SPLITS[int(clip.clip_id[1:]) % 3] == name
    with pytest.raises(schemas.StoreError, match="no split 'other'"):
        split_clips(path, "other")


def test_split_clips_refuses_a_split_that_no_longer_matches_the_store(tmp_path: Path) -> None:
    path = tmp_path / "s"
    build_store(path, [3, 4, 5, 6])
    split_clips(path)
    schemas.remove_clip(path, "c0002")
    with pytest.raises(schemas.StoreError, match=r"not committed: c0002\b"):
        split_clips(path)

    path2 = tmp_path / "s2"
    build_store(path2, [3, 4, 5])
    rows = [manifest_row("c0000", 0, 3), manifest_row("c0001", 1, 4, status="failed")]
    schemas.write_manifest(path2, schemas.rows_to_table(rows, schemas.MANIFEST_SCHEMA))
    with pytest.raises(schemas.StoreError) as err:
        split_clips(path2)
    assert "missing from the manifest: c0002" in str(err.value)
    assert "not ok: c0001" in str(err.value)


# --------------------------------------------------------------------------- memory


def rss_bytes() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise RuntimeError("no VmRSS")


def test_resident_memory_does_not_grow_with_the_store(tmp_path: Path) -> None:
    num_clips, num_frames = 200, 120
    clips = build_store(tmp_path / "s", [num_frames] * num_clips, with_split=False)
    store_bytes = num_clips * num_frames * (CROP * CROP * 3 + schemas.AUDIO_CHANNELS * 4)

    def growth_reading_everything(keep: list | None = None) -> int:
        ds = WindowDataset(tmp_path / "s", clips, 16, train=False)
        for i in range(32):  # warm up allocator and cache before the baseline
            ds[i]
        # Hand back the heap that earlier tests in this process freed: reused, it would hide
        # the kept windows from the control below (no new page, no RSS growth).
        ctypes.CDLL(ctypes.util.find_library("c")).malloc_trim(0)
        before = rss_bytes()
        peak = before
        for i in range(len(ds)):
            window = ds.read_window(*ds.item_window(i))
            if keep is not None:
                keep.append(window)
            if i % 50 == 0:
                peak = max(peak, rss_bytes())
        return max(peak, rss_bytes()) - before

    bounded = growth_reading_everything()
    assert bounded < store_bytes / 8, (bounded, store_bytes)
    # Control: a reader that keeps what it read must show up, or this test measures nothing.
    unbounded = growth_reading_everything(keep=[])
    assert unbounded > store_bytes / 2, (unbounded, store_bytes)


def in_child(check: Callable[[], bool]) -> None:
    """Run ``check`` in a forked child (its own limits and descriptors); it must hold."""
    child = os.fork()
    if child == 0:  # pragma: no cover - runs in the child
        try:
            ok = check()
        except BaseException:
            ok = False
        os._exit(0 if ok else 1)
    _, status = os.waitpid(child, 0)
    assert os.waitstatus_to_exitcode(status) == 0


def test_open_descriptors_stay_bounded_and_are_not_shared_with_a_fork(tmp_path: Path) -> None:
    clips = build_store(tmp_path / "s", [20] * 30, with_split=False)
    ds = WindowDataset(tmp_path / "s", clips, 8, train=False)

    def descriptors_held_reading_everything() -> int:
        before = len(os.listdir("/proc/self/fd"))
        for i in range(len(ds)):
            ds[i]
        return len(os.listdir("/proc/self/fd")) - before

    held = descriptors_held_reading_everything()
    parent_reader = ds._reader
    assert parent_reader is not None and parent_reader.max_open >= 30
    assert held == 2 * 30, "the whole split stays open: later epochs open nothing"

    def drops_the_parents_clips() -> bool:
        ds[0]  # a forked child (a DataLoader worker) reads through its own descriptors
        return len(parent_reader.open_clips) == 1 and parent_reader.pid == os.getpid()

    in_child(drops_the_parents_clips)
    assert len(parent_reader.open_clips) == 30


def test_open_clips_are_bounded_by_a_low_descriptor_limit(tmp_path: Path) -> None:
    clips = build_store(tmp_path / "s", [20] * 30, with_split=False)
    ds = WindowDataset(tmp_path / "s", clips, 8, train=False)
    expected = [ds[i]["video"].sum() for i in range(len(ds))]
    ds._reader = None  # closes its descriptors

    def bounded() -> bool:
        in_use = len(os.listdir("/proc/self/fd"))
        limit = 2 * in_use + 16  # capacity (a quarter) is then about half of 30 clips
        resource.setrlimit(resource.RLIMIT_NOFILE, (limit, limit))  # no raising possible
        capacity = reader.open_clip_capacity()
        got = [ds[i]["video"].sum() for i in range(len(ds))]
        held = len(ds._reader.open_clips) if ds._reader else 0
        return capacity == max(8, limit // 4) < 30 and held == capacity and got == expected

    in_child(bounded)


def test_a_low_soft_descriptor_limit_is_raised_towards_the_hard_one() -> None:
    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    wanted = 4 * reader.MAX_OPEN_CLIPS
    expected = wanted if hard == resource.RLIM_INFINITY else min(hard, wanted)

    def raises() -> bool:
        resource.setrlimit(resource.RLIMIT_NOFILE, (64, hard))
        raised = reader.raise_fd_limit()
        capacity = reader.open_clip_capacity()
        soft = resource.getrlimit(resource.RLIMIT_NOFILE)[0]
        bounded = capacity == max(16, min(soft // 4, wanted // 4))
        return raised == soft == max(64, expected) and bounded

    in_child(raises)


def test_a_reader_leaves_the_descriptor_limit_alone(tmp_path: Path) -> None:
    """Raising the limit is the process's choice at its start, never a reader's side effect."""
    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)

    def untouched() -> bool:
        resource.setrlimit(resource.RLIMIT_NOFILE, (64, hard))
        opened = reader.ClipReader(tmp_path, schemas.Recipe())
        limits = resource.getrlimit(resource.RLIMIT_NOFILE)
        return limits == (64, hard) and opened.max_open == 64 // 4

    in_child(untouched)


def test_audio_stats_match_a_float64_computation() -> None:
    rng = np.random.default_rng(1)
    track = (rng.normal(size=(250, schemas.AUDIO_CHANNELS)) * 3 + 40).astype(np.float32)
    track[:, 5] = 7.0  # a silent channel
    mean, inv_std = reader.audio_stats(track)
    exact = track.astype(np.float64)
    np.testing.assert_allclose(mean, exact.mean(axis=0), rtol=1e-6)
    np.testing.assert_allclose(
        inv_std, 1 / np.sqrt(exact.var(axis=0) + reader.AUDIO_EPS), rtol=1e-4
    )
    assert mean.dtype == inv_std.dtype == np.float32


def test_a_truncated_or_linked_tensor_is_refused(tmp_path: Path) -> None:
    clips = build_store(tmp_path / "s", [20, 20, 20], with_split=False)
    chunk = clip_dir(tmp_path / "s", "c0001") / "audio" / "c" / "0" / "0"
    chunk.write_bytes(chunk.read_bytes()[:-4])
    ds = WindowDataset(tmp_path / "s", clips, 8, train=False)
    ds[0]
    with pytest.raises(schemas.StoreError, match="clip c0001 .* damaged: its audio chunk holds"):
        ds[ds.windows.index((1, 0))]
    clip = clip_dir(tmp_path / "s", "c0002")
    clip.rename(tmp_path / "elsewhere")
    clip.symlink_to(tmp_path / "elsewhere")
    with pytest.raises(schemas.StoreError, match="links outside the store"):
        ds[ds.windows.index((2, 0))]
    # The store root itself may be a link: only links below it are refused.
    (tmp_path / "link").symlink_to(tmp_path / "s")
    linked = WindowDataset(tmp_path / "link", clips[:1], 8, train=False)
    assert torch.equal(linked[0]["video"], ds[0]["video"])


def test_trainer_data_imports_without_the_media_stack() -> None:
    code = (
        "import sys, trainer.data.dataset, trainer.data.augment\n"
        "bad = [m for m in ('ray', 'dlib', 'ffmpeg', 'python_speech_features') if m in sys.modules]\n"
        "assert not bad, bad\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, cwd=Path(__file__).parents[1])


def test_item_draws_are_reproducible_uniform_and_independent() -> None:

    def stream(seed: int, epoch: int, index: int) -> list[int]:
        draws = ItemDraws(seed, epoch, index)
        return [draws.word() for _ in range(4)]

    assert stream(1, 2, 3) == stream(1, 2, 3)
    neighbours = [stream(1, 2, 3), stream(2, 2, 3), stream(1, 3, 3), stream(1, 2, 4)]
    firsts = {s[0] for s in neighbours} | {w for s in neighbours for w in s}
    assert len(firsts) == 16, "no two nearby items share a word"
    # Uniform: 10 bins over 20,000 items (the window start of a 10-frame slack).
    counts = np.bincount([ItemDraws(0, 0, i).integer(0, 9) for i in range(20_000)], minlength=10)
    chi2 = ((counts - 2000) ** 2 / 2000).sum()
    assert chi2 < 27.9, counts  # p = 0.001 for 9 degrees of freedom
    flips = [ItemDraws(0, 1, i).uniform() < 0.5 for i in range(20_000)]
    assert abs(np.mean(flips) - 0.5) < 0.015
    draws = ItemDraws(0, 0, 0)
    assert all(-4 <= draws.integer(-4, 4) <= 4 for _ in range(1000))
    assert min(ItemDraws(0, 0, i).uniform() for i in range(1000)) >= 0.0
    with pytest.raises(ValueError):
        ItemDraws(-1, 0, 0)
