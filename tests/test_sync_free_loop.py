"""The training loop waits for the device only every ``sync_every`` steps: its losses are
summed on the device, a non-finite one is still named by its first step (on every rank),
and validation reuses one loader whose workers start once per run."""

from __future__ import annotations

import math
import multiprocessing
import os
from pathlib import Path
from typing import Any

import pytest
import torch
from trainer_fixtures import build_store

import trainer.train.step as step_module
from trainer.config.settings import TrainerError, load_config
from trainer.data.dataset import WindowDataset
from trainer.train import distributed as ddp
from trainer.train.run import TrainingRun

COUNTS = {"train": 2, "val": 1, "test": 1}  # clips per category: 8 train clips
BASE = ["window=16", "batch_size=4", "precise_bn=1", "device=cpu", "num_workers=0"]


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_store(
        tmp_path_factory.mktemp("s") / "store", crop_size=24, frames=16, counts=COUNTS
    )


def _training(store: Path, out: Path, overrides: list[str]) -> TrainingRun:
    return TrainingRun(
        load_config("tiny", [*BASE, *overrides]), store, "default", out,
        resume=False, log=lambda _: None, runs_root=out.parent,
        info=ddp.DistInfo(), device=torch.device("cpu"),
    )  # fmt: skip


def _count_reads(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Wrap the loop's one host read; the list holds the length of every read."""
    reads: list[int] = []
    real = step_module.read_device

    def spy(values: torch.Tensor) -> list[float]:
        reads.append(int(values.numel()))
        return real(values)

    monkeypatch.setattr(step_module, "read_device", spy)
    return reads


def _spy_steps(monkeypatch: pytest.MonkeyPatch) -> list[dict[str, float]]:
    """Every step's losses, read here (after the step, so the loop's count is unchanged)."""
    import trainer.train.run as run_module

    seen: list[dict[str, float]] = []
    real = run_module.train_step

    def spy(*args: Any, **kwargs: Any) -> dict[str, torch.Tensor]:
        out = real(*args, **kwargs)
        seen.append({k: float(v) for k, v in out.items()})
        return out

    monkeypatch.setattr(run_module, "train_step", spy)
    return seen


@pytest.mark.parametrize("every", [4, 50])
def test_an_epoch_reads_the_device_once_per_interval(
    store: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, every: int
) -> None:
    # 8 clips × 5 windows = 40 windows: 10 steps of 4.
    training = _training(store, tmp_path / "run", ["windows_per_clip=5", f"sync_every={every}"])
    training.setup()
    assert len(training.loader) == 10
    reads = _count_reads(monkeypatch)
    steps = _spy_steps(monkeypatch)
    means = training.train_epoch(0)
    assert len(steps) == 10
    assert len(reads) == math.ceil(10 / every)
    # The device sums give the means the per-step floats gave (every batch has 4 windows).
    for name, value in means.items():
        assert value == pytest.approx(sum(s[name] for s in steps) / 10, rel=1e-9)


def test_a_nan_loss_inside_an_interval_names_its_first_step(
    store: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    training = _training(store, tmp_path / "run", ["windows_per_clip=3", "sync_every=4"])
    training.setup()
    batches = list(training.loader)[:6]
    batches[1]["audio"] = torch.full_like(batches[1]["audio"], float("nan"))
    training.loader = batches  # type: ignore[assignment]  # a loader whose 2nd batch is broken
    reads = _count_reads(monkeypatch)
    steps = _spy_steps(monkeypatch)
    with pytest.raises(TrainerError, match=r"^loss is not finite at epoch 1 step 2; stopped"):
        training.train_epoch(0)
    # Found at the first read, after step 4, and reported as step 2, not 4.
    assert len(reads) == 1 and len(steps) == 4
    assert math.isfinite(steps[0]["total"]) and not math.isfinite(steps[1]["total"])


def _rank_checks(rank: int, init: str, first_bad: int, queue: Any) -> None:
    import torch.distributed as dist

    dist.init_process_group("gloo", init_method=init, rank=rank, world_size=2)
    try:
        step_module.raise_if_not_finite(first_bad if rank == 1 else -1, 2, ddp.DistInfo(rank, 2))
        queue.put((rank, "no error"))
    except TrainerError as exc:
        queue.put((rank, str(exc)))
    finally:
        dist.destroy_process_group()


def test_every_rank_stops_naming_the_first_bad_step_of_any_rank(tmp_path: Path) -> None:
    ctx = multiprocessing.get_context("fork")
    queue = ctx.Queue()
    init = f"file://{tmp_path / 'rendezvous'}"
    procs = [ctx.Process(target=_rank_checks, args=(r, init, 6, queue)) for r in range(2)]
    for p in procs:
        p.start()
    got = dict(queue.get(timeout=120) for _ in procs)
    for p in procs:
        p.join(timeout=60)
    # Only rank 1 saw a bad loss (its 7th step of epoch 3); both ranks stop with its line.
    assert got == {r: step_module.not_finite_message(2, 6) for r in (0, 1)}
    assert got[0] == "loss is not finite at epoch 3 step 7; " + step_module.NOT_FINITE_HINT


def test_val_loader_workers_start_once_per_run(
    store: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Workers are forked, so they inherit this spy: each eval item records who loaded it.
    seen = tmp_path / "items.txt"
    real = WindowDataset.__getitem__

    def spy(self: WindowDataset, index: int) -> dict[str, torch.Tensor]:
        if not self.train:
            with seen.open("a") as fh:
                fh.write(f"{id(self)} {os.getpid()}\n")
        return real(self, index)

    monkeypatch.setattr(WindowDataset, "__getitem__", spy)
    training = _training(
        store, tmp_path / "run", ["epochs=3", "windows_per_clip=1", "num_workers=1"]
    )
    training.run()
    rows = [line.split() for line in seen.read_text().splitlines()]
    val_pids = {pid for ident, pid in rows if int(ident) == id(training.val_set)}
    all_pids = {pid for _, pid in rows}
    assert len(val_pids) == 1 and str(os.getpid()) not in val_pids  # one worker, 3 epochs
    assert len(all_pids) == 2  # and the test part's own loader
