"""GPU check of the trainer: one prepared run of at most 8 minutes on a CUDA machine.

    python3 -m benchmarks.bench_gpu --out-dir DIR                # the GPU run (<= 8 minutes)
    python3 -m benchmarks.bench_gpu --out-dir DIR --cpu-smoke    # every path, tiny, on the CPU

Run it from the repository root (the project need not be installed; zarr is needed to
write the store). Everything it measures lands in ``DIR/gpu.json``, rewritten after every
step so that a run killed by a time limit still leaves the finished steps' numbers. Every
step records ``status`` (ok / error / skipped / timed_out; running if the process was
stopped during it), ``seconds`` and its result and / or the error text; a failing step
never stops the next one. Every training step timed here is the loop's own
:func:`trainer.train.step.train_step`, with its device-side :class:`~trainer.train.step.LossTally`
read every ``sync_every`` steps as the loop reads it.

Steps, in the order they run:

``env``
    Python, torch, CUDA, cuDNN, GPU name, its bf16 peak (:data:`BF16_PEAK_TFLOPS`),
    numpy / zarr versions, CPU count.
``store``
    A learnable synthetic store (``tests/trainer_fixtures.build_store``) at crop 112,
    64 frames, 64 / 16 / 16 clips per category for train / val / test; its build time.
``loader``
    Windows/s that ``WindowDataset`` + ``DataLoader`` (train mode, pinned memory) deliver
    to the GPU alone, at the ``paper`` preset's batch (32) and window (50 frames), for
    0, 4 and 8 workers.
``step``
    Windows/s of the ``paper`` model's eager training step on one batch held on the GPU
    (bf16 autocast, Adam), at batch 32 and 128.
``attention``
    The eager step at batch 32 with DCA+MSSA and with CA+SA, and their time ratio.
``flops``
    Model FLOPs per training window (forward and backward, counted by
    ``torch.utils.flop_counter.FlopCounterMode``: matmuls, convolutions, attention).
``train``
    The real trainer CLI in a subprocess, ``python3 -m trainer.cli run --config paper
    --set device=cuda ...`` (4 epochs, 8 workers, windows per clip chosen so that it takes
    about 110 s at the eager step rate), with its own epoch timing from ``metrics.jsonl``,
    test AUC / ACC, and GPU utilisation / memory sampled with ``nvidia-smi``. Its
    ``report.json``, ``metrics.jsonl``, ``config.yaml``, ``meta.json``, plots and log are
    copied into DIR.
``step_compiled``
    ``step`` again with ``compile=true`` (the first step's time, which includes the
    compilation, is recorded apart); last, because its compilations take the longest.
    Before it times anything, ``gradient_check`` compares the compiled step's parameter
    gradients with the eager step's (relative norm per parameter, tolerance
    ``trainer.train.compile_check.GRAD_RTOL``, dropout off, fp32, 8 windows): ``ok``, the worst
    parameter and its error.
``summary``
    Whole-run windows/s ÷ eager step windows/s at the run's batch, compiled ÷ eager step,
    DCA+MSSA ÷ CA+SA, and the model FLOPs utilisation (FLOPs per window × windows/s ÷ the
    chip's bf16 peak) of each step rate and of the whole run, next to the targets.

``--cpu-smoke`` (alias ``--quick``) runs every step for a few iterations on the CPU with
the ``tiny`` preset and a tiny store, compiling with the ``aot_eager`` backend (the same
``torch.compile`` path without inductor's C++ build, which takes minutes on a small CPU);
it exists so that this script cannot rot between GPU runs, and its figures mean nothing.
``--budget-s`` bounds the whole run: a step that no longer fits is skipped, and the
training subprocess is stopped at its share of the budget.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import math
import os
import platform
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import traceback
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import torch  # noqa: E402

from schemas import atomic_write  # noqa: E402
from trainer.evaluate.metrics import json_safe  # noqa: E402

PAPER_TRAIN_BATCH = 32  # the paper preset's batch size

#: Dense bf16 tensor-core peak in TFLOP/s, the vendor's datasheet figure (no sparsity),
#: by a substring of ``torch.cuda.get_device_name()``; first match wins.
BF16_PEAK_TFLOPS: tuple[tuple[str, float], ...] = (
    ("H200", 989.0),  # H200 SXM
    ("H100 PCIe", 756.0),
    ("H100", 989.0),  # H100 SXM
    ("A100", 312.0),
)
#: The issue's targets, recorded next to the figures.
TARGETS = {
    "run_over_step_min": 0.90,
    "compiled_over_eager_min": 1.8,
    "dca_mssa_over_ca_sa_time_max": 1.2,
}


def bf16_peak_tflops(device_name: str | None) -> float | None:
    """The chip's dense bf16 peak (:data:`BF16_PEAK_TFLOPS`), None when not listed."""
    for key, peak in BF16_PEAK_TFLOPS:
        if device_name and key in device_name:
            return peak
    return None


@dataclass(frozen=True)
class Plan:
    """Sizes of one run. ``counts`` are clips per category for train / val / test."""

    smoke: bool
    device: str  # the device asked of the trainer and of every step
    config: str  # trainer preset
    crop: int
    frames: int
    counts: dict[str, int]
    window: int
    batch: int  # the training run's batch, and the attention comparison's
    step_batches: tuple[int, ...]  # batches of the step measurement
    compile_backend: str  # torch.compile backend of the compiled step
    loader_workers: tuple[int, ...]
    loader_batches: int  # batches timed per loader setting (after the first)
    model_steps: int  # timed training steps on a batch held on the device
    train_budget_s: float  # target wall time of the training subprocess
    train_epochs: int
    precise_bn: int  # BatchNorm recalibration batches per epoch (the paper preset: 50)
    max_windows_per_clip: int
    fallback_rate: float  # windows/s assumed when the step rate could not be measured


FULL = Plan(
    smoke=False,
    device="cuda",
    config="paper",
    crop=112,
    frames=64,
    counts={"train": 64, "val": 16, "test": 16},
    window=50,
    batch=PAPER_TRAIN_BATCH,
    step_batches=(PAPER_TRAIN_BATCH, 128),
    compile_backend="inductor",
    loader_workers=(0, 4, 8),
    loader_batches=30,
    model_steps=20,
    train_budget_s=110.0,
    train_epochs=4,
    precise_bn=50,
    max_windows_per_clip=40,
    fallback_rate=200.0,
)
SMOKE = Plan(
    smoke=True,
    device="cpu",
    config="tiny",
    crop=32,
    frames=24,
    counts={"train": 2, "val": 1, "test": 1},
    window=16,
    batch=4,
    step_batches=(4,),  # one size: each compilation costs ~30 s of a busy small CPU
    compile_backend="aot_eager",
    loader_workers=(0, 1),
    loader_batches=2,
    model_steps=2,
    train_budget_s=30.0,
    train_epochs=2,
    precise_bn=1,
    max_windows_per_clip=1,
    fallback_rate=20.0,
)

# Seconds a step needs at least; a step is skipped when less than this is left.
MIN_SECONDS: dict[str, float] = {
    "store": 20, "loader": 20, "step": 15, "attention": 20, "flops": 5, "train": 60,
    "step_compiled": 60,
}  # fmt: skip
SMOKE_MIN_SECONDS: dict[str, float] = {k: 1.0 for k in MIN_SECONDS}
# Fixed cost of a training run besides its epochs: interpreter, CUDA context, model
# build, final test evaluation, plots.
TRAIN_FIXED_S = 25.0
TRAIN_EPOCH_OVERHEAD_S = 2.0  # checkpoints; the workers persist across epochs
# Kept after the training run for the compiled step (whose compilations take a minute or
# more per batch size on a GPU machine) and the summary.
RESERVE_AFTER_TRAIN_S = 150.0


# --------------------------------------------------------------------------- recording


class StepFailed(RuntimeError):
    """A step that failed but has measurements worth keeping in ``result``."""

    def __init__(self, message: str, result: dict[str, Any]) -> None:
        super().__init__(message)
        self.result = result


class Recorder:
    """Collects step results into ``out_dir/gpu.json`` (rewritten after every step) and
    mirrors progress lines into ``out_dir/bench_gpu.log``."""

    def __init__(self, out_dir: Path, budget_s: float, min_seconds: dict[str, float]) -> None:
        self.out_dir = out_dir
        self.start = time.perf_counter()
        self.budget_s = budget_s
        self.min_seconds = min_seconds
        self.data: dict[str, Any] = {
            "benchmark": "gpu check of the trainer",
            "started": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
            "budget_s": budget_s,
            "steps": {},
        }
        self.log_path = out_dir / "bench_gpu.log"

    def remaining(self) -> float:
        return self.budget_s - (time.perf_counter() - self.start)

    def log(self, message: str) -> None:
        line = f"[bench_gpu {time.perf_counter() - self.start:6.1f}s] {message}"
        print(line, flush=True)
        with self.log_path.open("a") as fh:
            fh.write(line + "\n")

    def save(self) -> None:
        self.data["elapsed_s"] = round(time.perf_counter() - self.start, 2)
        text = json.dumps(json_safe(self.data), indent=2, allow_nan=False, default=str)
        with atomic_write(self.out_dir / "gpu.json", durable=False) as tmp:
            tmp.write_text(text + "\n")

    def skip(self, name: str, reason: str) -> None:
        self.log(f"{name}: skipped ({reason})")
        self.data["steps"][name] = {"status": "skipped", "reason": reason}
        self.save()

    def step(self, name: str, fn: Callable[[], dict[str, Any]]) -> dict[str, Any] | None:
        """Run ``fn`` timed; its dict becomes the step's ``result``. Errors are recorded."""
        need = self.min_seconds.get(name, 0)
        # A step that needs no time (the summary, computed from the others) always runs.
        if need > 0 and self.remaining() < need:
            self.skip(name, f"budget: {self.remaining():.0f}s left, step needs >= {need}s")
            return None
        self.log(f"{name}: start")
        entry: dict[str, Any] = {"status": "running"}
        self.data["steps"][name] = entry
        self.save()
        t0 = time.perf_counter()
        result: dict[str, Any] | None = None
        try:
            result = fn()
            entry["status"] = "timed_out" if result.get("timed_out") else "ok"
            entry["result"] = result
        except Exception as exc:
            entry["status"] = "error"
            entry["error"] = f"{type(exc).__name__}: {exc}"
            entry["traceback"] = traceback.format_exc(limit=-8)
            if isinstance(exc, StepFailed):
                entry["result"] = exc.result
            self.log(f"{name}: ERROR {entry['error']}")
        entry["seconds"] = round(time.perf_counter() - t0, 2)
        self.log(f"{name}: {entry['status']} in {entry['seconds']:.1f}s")
        self.save()
        return result


# --------------------------------------------------------------------------- helpers


def _load_fixtures() -> ModuleType:
    """``tests/trainer_fixtures.py`` by path: ``tests`` has no ``__init__.py``, and a
    regular ``tests`` package installed elsewhere would win a plain import."""
    path = ROOT / "tests" / "trainer_fixtures.py"
    spec = importlib.util.spec_from_file_location("mscct_trainer_fixtures", path)
    if spec is None or spec.loader is None:
        raise FileNotFoundError(path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _version(module: str) -> str | None:
    try:
        from importlib.metadata import version

        return version(module)
    except Exception:
        return None


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _dir_bytes(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


# --------------------------------------------------------------------------- steps


def step_env(plan: Plan) -> dict[str, Any]:
    info: dict[str, Any] = {
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "cpus": os.cpu_count(),
        "torch": torch.__version__,
        "torch_cuda": torch.version.cuda,
        "cuda_available": torch.cuda.is_available(),
        "numpy": _version("numpy"),
        "zarr": _version("zarr"),
        "numcodecs": _version("numcodecs"),
        "pyarrow": _version("pyarrow"),
        "plan": asdict(plan),
    }
    if torch.cuda.is_available():
        props = torch.cuda.get_device_properties(0)
        info |= {
            "gpu": torch.cuda.get_device_name(0),
            "gpu_count": torch.cuda.device_count(),
            "gpu_memory_gib": round(props.total_memory / 2**30, 2),
            "compute_capability": f"{props.major}.{props.minor}",
            "cudnn": torch.backends.cudnn.version(),
            "bf16_supported": torch.cuda.is_bf16_supported(),
            "bf16_peak_tflops": bf16_peak_tflops(torch.cuda.get_device_name(0)),
        }
    if Path("/dev/shm").is_dir():  # DataLoader workers pass batches through it
        info["dev_shm_gib"] = round(shutil.disk_usage("/dev/shm").total / 2**30, 2)
    smi = shutil.which("nvidia-smi")
    if smi:
        run = subprocess.run([smi, "-L"], capture_output=True, text=True, timeout=30, check=False)
        info["nvidia_smi_L"] = run.stdout.strip() or run.stderr.strip()
    return info


def step_store(plan: Plan, store: Path) -> dict[str, Any]:
    fixtures = _load_fixtures()
    t0 = time.perf_counter()
    fixtures.build_store(store, crop_size=plan.crop, frames=plan.frames, counts=plan.counts)
    seconds = time.perf_counter() - t0
    clips = 4 * sum(plan.counts.values())
    return {
        "path": str(store),
        "crop": plan.crop,
        "frames": plan.frames,
        "clips_per_category": plan.counts,
        "clips": clips,
        "bytes": _dir_bytes(store),
        "build_s": round(seconds, 2),
        "clips_per_s": clips / seconds,
    }


def _loader(dataset: Any, batch: int, workers: int, pin: bool) -> Any:
    from torch.utils.data import DataLoader

    return DataLoader(
        dataset,
        batch_size=batch,
        shuffle=True,
        num_workers=workers,
        pin_memory=pin,
        drop_last=True,
        # A stuck worker must fail this step, not eat the whole run.
        timeout=120 if workers > 0 else 0,
        generator=torch.Generator().manual_seed(0),
    )


def _timed_batches(batches: Iterator[dict[str, Any]], count: int, each: Callable) -> dict:
    """Consume ``count + 1`` batches calling ``each(batch)``; the first batch (worker
    start-up, CUDA warm-up) is timed apart from the steady rate of the rest.

    ``each`` returns the device to synchronise before reading the clock.
    """
    t0 = time.perf_counter()
    device = each(next(batches))
    _sync(device)
    t_first = time.perf_counter()
    size = 0
    done = 0
    for batch in batches:
        device = each(batch)
        size += int(batch["label"].shape[0])
        done += 1
        if done >= count:
            break
    _sync(device)
    t_end = time.perf_counter()
    return {
        "first_batch_s": round(t_first - t0, 3),
        "timed_batches": done,
        "windows_per_s": size / max(t_end - t_first, 1e-9),
    }


def _train_config(plan: Plan, extra: list[str] | None = None) -> Any:
    """The trainer's config for ``plan`` (the store's crop needs no setting: the visual trunk
    pools globally)."""
    from trainer.config.settings import load_config

    overrides = [f"window={plan.window}"]
    overrides += [f"batch_size={plan.batch}", f"device={plan.device}", *(extra or [])]
    return load_config(plan.config, overrides)


def _train_step(
    model: Any,
    optimizer: Any,
    batch: dict,
    cfg: Any,
    device: Any,
    amp: Any,
    *,
    tally: Any = None,
    forward: Callable | None = None,
) -> dict[str, torch.Tensor]:
    """One optimiser step: the training loop's own :func:`trainer.train.step.train_step` (the copy
    of the batch to the device, forward, loss, backward, clipping, optimiser step, the
    device-side loss tally), so the figure measured is the loop's."""
    from trainer.train.step import forward_loss, train_step

    return train_step(
        model, batch, optimizer, cfg, device, amp, tally=tally, forward=forward or forward_loss
    )


def _train_dataset(plan: Plan, store: Path, windows: int) -> Any:
    """Train-mode windows of the store's train clips, repeated to give ``windows`` at least."""
    from trainer.data.dataset import WindowDataset, split_clips

    train = split_clips(store, "default")["train"]
    clips = train * max(1, math.ceil(windows / len(train)))
    return WindowDataset(store, clips, plan.window, train=True, seed=0)


def _device_batch(plan: Plan, store: Path, size: int, device: torch.device) -> dict:
    """One collated batch of ``size`` training windows, held on ``device``."""
    batch = next(iter(_loader(_train_dataset(plan, store, size), size, 0, False)))
    return {k: v.to(device) for k, v in batch.items()}


def step_loader(plan: Plan, store: Path) -> dict[str, Any]:
    """Windows/s the DataLoader alone delivers to the device, per worker count."""
    device = torch.device(plan.device)
    pin = device.type == "cuda"
    dataset = _train_dataset(plan, store, plan.batch * (plan.loader_batches + 2))
    result: dict[str, Any] = {"batch": plan.batch, "window": plan.window, "pin_memory": pin}
    result["window_mib"] = (3 * plan.window * plan.crop**2 + 4 * 104 * plan.window) / 2**20

    def to_device(batch: dict) -> torch.device:
        for value in batch.values():
            value.to(device, non_blocking=True)
        return device

    for workers in plan.loader_workers:
        # One failing setting (e.g. workers short of shared memory) must not hide the others.
        batches = None
        try:
            batches = iter(_loader(dataset, plan.batch, workers, pin))
            timing = _timed_batches(batches, plan.loader_batches, to_device)
        except Exception as exc:
            timing = {"error": f"{type(exc).__name__}: {exc}"}
        finally:
            batches = None  # shuts the workers down before the next setting starts
        result[f"workers_{workers}"] = timing
    rates = [r["windows_per_s"] for k, r in result.items() if k.startswith("workers_")
             and isinstance(r, dict) and "windows_per_s" in r]  # fmt: skip
    result["best_windows_per_s"] = max(rates, default=None)
    return result


def _time_step(
    plan: Plan, cfg: Any, batch: dict, device: torch.device, forward: Callable
) -> dict[str, Any]:
    """Windows/s of ``train_step`` on ``batch`` (held on ``device``), reading the loss tally
    every ``cfg.sync_every`` steps as the loop does; the first step (with ``compile``, the
    compilation) is timed apart."""
    from trainer.model import build_model
    from trainer.train.distributed import DistInfo
    from trainer.train.optim import build_optimizer
    from trainer.train.runtime import autocast_dtype
    from trainer.train.step import LossTally, loss_parts

    amp = autocast_dtype(cfg, device)
    torch.manual_seed(0)
    model = build_model(cfg.model).to(device).train()
    optimizer = build_optimizer(cfg, model)
    tally = LossTally(loss_parts(cfg), device, 0, DistInfo())
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)

    def step() -> None:
        _train_step(model, optimizer, batch, cfg, device, amp, tally=tally, forward=forward)

    t0 = time.perf_counter()
    step()
    tally.read()  # a host read: the first step has finished
    first = time.perf_counter() - t0
    for _ in range(2):  # kernels selected and memory pools grown before timing
        step()
    tally.read()
    t0 = time.perf_counter()
    for i in range(plan.model_steps):
        step()
        if (i + 1) % cfg.sync_every == 0:
            tally.read()
    tally.read()
    _sync(device)
    seconds = time.perf_counter() - t0
    size = int(batch["label"].shape[0])
    out: dict[str, Any] = {
        "batch": size,
        "autocast": str(amp),
        "first_step_s": round(first, 3),
        "timed_steps": plan.model_steps,
        "ms_per_step": 1000 * seconds / plan.model_steps,
        "windows_per_s": size * plan.model_steps / seconds,
        "last_loss": tally.last["total"],
        "params": sum(p.numel() for p in model.parameters()),
    }
    if device.type == "cuda":
        out["peak_memory_gib"] = torch.cuda.max_memory_allocated(device) / 2**30
    return out


#: Windows of the compiled step's gradient check (a few: it compiles the step once more).
GRAD_CHECK_WINDOWS = 8


def _compiled_forward(plan: Plan, cfg: Any) -> Callable:
    """The loop's compiled forward (:func:`trainer.train.step.step_forward`), from a clean slate so
    each setting pays (and reports) its own compilation."""
    from trainer.train.step import step_forward

    torch._dynamo.reset()
    return step_forward(cfg, backend=plan.compile_backend)


def _gradient_check(plan: Plan, cfg: Any, batch: dict) -> dict[str, Any]:
    """Before a compiled step is timed: do its parameter gradients agree with the eager
    step's (:func:`trainer.train.compile_check.compare_compiled`: one step on the first
    :data:`GRAD_CHECK_WINDOWS` windows of ``batch``, dropout off, fp32)? A step that trains
    wrongly fast is no speed-up; the check's own compilation is not timed."""
    from trainer.train.compile_check import compare_compiled

    few = {key: value[:GRAD_CHECK_WINDOWS] for key, value in batch.items()}
    try:
        return compare_compiled(cfg, few, torch.device(plan.device), plan.compile_backend)
    except Exception as exc:  # reported, and the timing goes on
        return {"ok": False, "error": f"{type(exc).__name__}: {exc}"}
    finally:
        torch._dynamo.reset()


def step_step(plan: Plan, store: Path, compiled: bool) -> dict[str, Any]:
    """The training step on a batch held on the device, per batch size: eager, or compiled
    (``compile=true``; each batch size pays its own compilation, in ``first_step_s``)."""
    from trainer.train.step import forward_loss

    device = torch.device(plan.device)
    result: dict[str, Any] = {"compile_backend": plan.compile_backend} if compiled else {}
    for size in plan.step_batches:
        cfg = _train_config(plan, [f"batch_size={size}", f"compile={str(compiled).lower()}"])
        batch = _device_batch(plan, store, size, device)
        if compiled and "gradient_check" not in result:
            result["gradient_check"] = _gradient_check(plan, cfg, batch)
        forward = _compiled_forward(plan, cfg) if compiled else forward_loss
        try:
            result[f"batch_{size}"] = _time_step(plan, cfg, batch, device, forward)
        except Exception as exc:  # one batch size failing (memory) must not hide the other
            result[f"batch_{size}"] = {"error": f"{type(exc).__name__}: {exc}"}
        del batch
        if device.type == "cuda":
            torch.cuda.empty_cache()
    return result


def step_attention(plan: Plan, store: Path) -> dict[str, Any]:
    """The eager step at ``plan.batch`` with DCA+MSSA and CA+SA, timed alternately (ABAB),
    and the aten operators each launches per forward (:func:`benchmarks.bench_model.op_counts`)."""
    from benchmarks.bench_model import VARIANTS, op_counts
    from trainer.train.step import forward_loss

    device = torch.device(plan.device)
    batch = _device_batch(plan, store, plan.batch, device)
    runs: dict[str, list[float]] = {name: [] for name in VARIANTS}
    for _ in range(2):
        for name, (cross, self_attn) in VARIANTS.items():
            cfg = _train_config(plan, [f"model.attn_cross={cross}", f"model.attn_self={self_attn}"])
            runs[name].append(_time_step(plan, cfg, batch, device, forward_loss)["windows_per_s"])
    rates = {name: max(r) for name, r in runs.items()}
    return {
        "batch": plan.batch,
        "windows_per_s": rates,
        "runs_windows_per_s": runs,
        "ratio_time_dca_mssa_over_ca_sa": rates["ca+sa"] / rates["dca+mssa"],
        "aten_ops_per_forward": op_counts(plan.config, 2, plan.window, plan.crop),
    }


def step_flops(plan: Plan) -> dict[str, Any]:
    """Model FLOPs of one training window: forward and backward of the loss, counted by
    ``FlopCounterMode`` (matmuls, convolutions, attention) at batch 2, halved."""
    from torch.utils.flop_counter import FlopCounterMode

    from trainer.model import build_model
    from trainer.train.runtime import autocast, autocast_dtype
    from trainer.train.step import forward_loss

    cfg = _train_config(plan)
    device = torch.device(plan.device)
    torch.manual_seed(0)
    model = build_model(cfg.model).to(device).train()
    g = torch.Generator().manual_seed(0)
    size, t = 2, plan.window
    audio = torch.randn(size, t, 104, generator=g).to(device)
    video = torch.randn(size, 3, t, plan.crop, plan.crop, generator=g).to(device)
    mask = torch.ones(size, t, dtype=torch.bool, device=device)
    label = torch.tensor([0, 1]).to(device)
    counter = FlopCounterMode(display=False)
    with counter, autocast(device, autocast_dtype(cfg, device)):
        labels = (label, label, label)
        forward_loss(model, audio, video, mask, labels, cfg.loss, None).total.backward()
    total = counter.get_total_flops()
    return {
        "preset": plan.config,
        "window": t,
        "crop": plan.crop,
        "flops_per_window": total / size,
        "gflops_per_window": total / size / 1e9,
        "counted": "forward + backward (FlopCounterMode)",
    }


def _train_workers(plan: Plan) -> int:
    """DataLoader workers for the training run: 8 where the cores allow, leaving two spare."""
    if plan.smoke:
        return 0
    return max(0, min(8, (os.cpu_count() or 2) - 2))


def _size_training(plan: Plan, rate: float, budget_s: float, train_clips: int) -> dict[str, Any]:
    """Windows per clip so that ``train_epochs`` epochs fit ``budget_s`` at ``rate`` windows/s.

    A BatchNorm recalibration or evaluation window costs about a third of a training
    window (forward only).
    """
    from trainer.data.dataset import eval_starts

    per_epoch = (budget_s - TRAIN_FIXED_S) / plan.train_epochs - TRAIN_EPOCH_OVERHEAD_S
    val_windows = 4 * plan.counts["val"] * len(eval_starts(plan.frames, plan.window, plan.window))
    side = (plan.precise_bn * plan.batch + val_windows) / 3
    windows = max(0.0, per_epoch * rate - side)
    per_clip = int(max(1, min(plan.max_windows_per_clip, windows // max(train_clips, 1))))
    return {
        "assumed_windows_per_s": rate,
        "budget_s": budget_s,
        "epochs": plan.train_epochs,
        "windows_per_clip": per_clip,
        # The training loader drops its last partial batch.
        "train_windows_per_epoch": (per_clip * train_clips // plan.batch) * plan.batch
        if per_clip * train_clips > plan.batch
        else per_clip * train_clips,
        "estimated_s": TRAIN_FIXED_S
        + plan.train_epochs * (TRAIN_EPOCH_OVERHEAD_S + (per_clip * train_clips + side) / rate),
    }


class GpuSampler:
    """``nvidia-smi`` polling GPU utilisation and memory every 500 ms into a CSV file."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.proc: subprocess.Popen | None = None
        smi = shutil.which("nvidia-smi")
        if smi is None:
            return
        query = "utilization.gpu,memory.used"
        cmd = [smi, f"--query-gpu={query}", "--format=csv,noheader,nounits", "-lms", "500"]
        with path.open("w") as fh:
            self.proc = subprocess.Popen(cmd, stdout=fh, stderr=subprocess.DEVNULL)

    def stop(self) -> dict[str, Any] | None:
        if self.proc is None:
            return None
        self.proc.terminate()
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
        util, mem = [], []
        for line in self.path.read_text().splitlines():
            fields = [f.strip() for f in line.split(",")]
            if len(fields) >= 2 and fields[0].isdigit() and fields[1].isdigit():
                util.append(int(fields[0]))
                mem.append(int(fields[1]))
        if not util:
            return {"samples": 0}
        busy = [u for u in util if u > 0]
        return {
            "samples": len(util),
            "interval_s": 0.5,
            "util_mean_pct": statistics.fmean(util),
            "util_median_pct": statistics.median(util),
            "util_median_busy_pct": statistics.median(busy) if busy else 0,
            "memory_max_mib": max(mem),
        }


def _read_jsonl(path: Path) -> list[dict[str, Any]]:
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def _copy_run_files(run: Path, out_dir: Path) -> list[str]:
    """The small files of a training run (no checkpoints) into ``out_dir``."""
    copied = []
    for name, dest in (
        ("report.json", "report.json"),
        ("metrics.jsonl", "train_metrics.jsonl"),
        ("config.yaml", "train_config.yaml"),
        ("meta.json", "train_meta.json"),
    ):
        if (run / name).exists():
            shutil.copyfile(run / name, out_dir / dest)
            copied.append(dest)
    if (run / "plots").is_dir():
        shutil.copytree(run / "plots", out_dir / "plots", dirs_exist_ok=True)
        copied.append("plots/")
    return copied


def _stop_group(proc: subprocess.Popen) -> None:
    """Stop the trainer and its DataLoader workers (its own process group)."""
    for sig, wait in ((signal.SIGTERM, 15), (signal.SIGKILL, 10)):
        try:
            os.killpg(proc.pid, sig)
        except ProcessLookupError:
            return
        try:
            proc.wait(timeout=wait)
            return
        except subprocess.TimeoutExpired:
            continue


def step_train(
    plan: Plan,
    store: Path,
    work: Path,
    out_dir: Path,
    rate: float | None,
    budget_s: float,
    hard_limit_s: float,
) -> dict[str, Any]:
    """Run the trainer CLI sized to ``budget_s``; stop it after ``hard_limit_s`` at most."""
    import yaml

    from trainer.config.settings import TrainConfig
    from trainer.train.runtime import autocast_dtype

    train_clips = 4 * plan.counts["train"]
    sizing = _size_training(plan, rate or plan.fallback_rate, budget_s, train_clips)
    sizing["rate_source"] = "step (eager)" if rate else "fallback guess"
    workers = _train_workers(plan)
    run = work / "run"
    overrides = {
        "epochs": plan.train_epochs,
        "device": plan.device,
        "num_workers": workers,
        "windows_per_clip": sizing["windows_per_clip"],
        "warmup_epochs": 1,
        "precise_bn": plan.precise_bn,
        "batch_size": plan.batch,
        "window": plan.window,
    }
    cmd = [sys.executable, "-m", "trainer.cli", "run", "--store", str(store)]
    cmd += ["--config", plan.config, "--out", str(run)]
    for key, value in overrides.items():
        cmd += ["--set", f"{key}={value}"]
    # Past this the run is stopped; what it logged so far is still reported.
    limit = max(30.0, min(budget_s * 1.6 + 30, budget_s + 90, hard_limit_s))
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(ROOT), env.get("PYTHONPATH")) if p)
    if plan.smoke:  # see main(): one thread, so a busy small machine stays quick
        env["OMP_NUM_THREADS"] = "1"
    log_path = work / "train.log"
    t0 = time.perf_counter()
    with log_path.open("w") as log:
        proc = subprocess.Popen(
            cmd, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
        )
        sampler = GpuSampler(out_dir / "nvidia_smi.csv") if plan.device == "cuda" else None
        timed_out = False
        try:
            proc.wait(timeout=limit)
        except subprocess.TimeoutExpired:
            timed_out = True
        finally:  # also when this process is being stopped: leave no trainer behind
            if proc.poll() is None:
                _stop_group(proc)
            gpu = sampler.stop() if sampler else None
    wall = time.perf_counter() - t0
    shutil.copyfile(log_path, out_dir / "train.log")
    copied = _copy_run_files(run, out_dir)

    epochs = _read_jsonl(run / "metrics.jsonl")
    windows_per_epoch = sizing["train_windows_per_epoch"]
    result: dict[str, Any] = {
        "command": " ".join(cmd),
        "overrides": overrides,
        "sizing": sizing,
        "returncode": proc.returncode,
        "timed_out": timed_out,
        "limit_s": limit,
        "wall_s": round(wall, 2),
        "epochs_logged": len(epochs),
        "gpu_sampled": gpu,
        "copied": copied,
        "log_tail": log_path.read_text()[-1500:],
    }
    if epochs:
        times = [e["epoch_time_s"] for e in epochs]
        result["epoch_time_s"] = times
        # Epoch time includes BatchNorm recalibration, val evaluation and checkpoints.
        result["windows_per_s_epoch"] = windows_per_epoch / statistics.median(times)
        steady = times[1:] or times
        result["windows_per_s_epoch_after_first"] = windows_per_epoch / statistics.median(steady)
        result["windows_per_s_overall"] = windows_per_epoch * len(epochs) / wall
        result["val_auc_per_epoch"] = [e["val"].get("auc") for e in epochs]
        result["train_loss_per_epoch"] = [e["train"].get("total") for e in epochs]
    if (run / "config.yaml").exists():
        cfg = TrainConfig.from_dict(yaml.safe_load((run / "config.yaml").read_text()))
        meta = json.loads((run / "meta.json").read_text()) if (run / "meta.json").exists() else {}
        device = torch.device(meta.get("device", plan.device))
        # The trainer's own decision, applied to the run's recorded config and device.
        amp = autocast_dtype(cfg, device)
        result["run_device"] = str(device)
        result["amp_setting"] = cfg.amp
        result["autocast_dtype"] = str(amp)
        result["bf16_autocast"] = amp == torch.bfloat16
    if (run / "report.json").exists():
        report = json.loads((run / "report.json").read_text())
        test = report["test"]
        result |= {
            "test_auc": test.get("auc"),
            "test_acc": test.get("acc"),
            "test_audio_auc": test.get("audio_auc"),
            "test_video_auc": test.get("video_auc"),
            "test_per_category_acc": test.get("per_category_acc"),
            "best_epoch": report.get("best_epoch"),
            "epochs_run": report.get("epochs_run"),
        }
    if proc.returncode != 0 and not timed_out:
        raise StepFailed(
            f"trainer exited with {proc.returncode}: {result['log_tail'][-600:]}", result
        )
    return result


def _result(steps: dict[str, Any], name: str) -> dict[str, Any]:
    entry = steps.get(name) or {}
    return entry.get("result") or {} if entry.get("status") in ("ok", "timed_out") else {}


def step_summary(plan: Plan, steps: dict[str, Any]) -> dict[str, Any]:
    """The issue's figures from the steps' results, next to its targets."""
    env, train = _result(steps, "env"), _result(steps, "train")
    peak = env.get("bf16_peak_tflops")
    flops = _result(steps, "flops").get("flops_per_window")
    rates: dict[str, float] = {}
    for mode, name in (("eager", "step"), ("compiled", "step_compiled")):
        for key, entry in _result(steps, name).items():
            if key.startswith("batch_") and "windows_per_s" in entry:
                rates[f"{key}_{mode}"] = entry["windows_per_s"]
    compiled_over_eager = {
        key: rates[f"{key}_compiled"] / rates[f"{key}_eager"]
        for key in (f"batch_{b}" for b in plan.step_batches)
        if f"{key}_compiled" in rates and f"{key}_eager" in rates
    }
    run_rate = train.get("windows_per_s_epoch_after_first")
    eager = rates.get(f"batch_{plan.batch}_eager")
    if run_rate:
        rates["whole_run"] = run_rate
    out: dict[str, Any] = {
        "device": env.get("gpu") or "cpu",
        "bf16_peak_tflops": peak,
        "peak_source": "vendor datasheet, dense bf16 (BF16_PEAK_TFLOPS)",
        "flops_per_window": flops,
        "windows_per_s": rates,
        "run_over_step": run_rate / eager if run_rate and eager else None,
        "compiled_over_eager": compiled_over_eager,
        "compiled_gradients_agree": _result(steps, "step_compiled")
        .get("gradient_check", {})
        .get("ok"),
        "dca_mssa_over_ca_sa_time": _result(steps, "attention").get(
            "ratio_time_dca_mssa_over_ca_sa"
        ),
        "targets": TARGETS,
    }
    if flops and peak:
        out["mfu"] = {key: flops * rate / (peak * 1e12) for key, rate in rates.items()}
    if plan.smoke:
        out["note"] = "cpu smoke run: the figures test the script, they measure nothing"
    return out


# --------------------------------------------------------------------------- main


def _parse(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out-dir", type=Path, required=True, help="where gpu.json goes")
    parser.add_argument(
        "--cpu-smoke",
        "--quick",
        dest="smoke",
        action="store_true",
        help="every step for a few iterations, tiny, on the CPU (a self-test)",
    )
    parser.add_argument(
        "--budget-s",
        type=float,
        default=None,
        help="wall-clock budget of the whole run (default 460, cpu smoke 150)",
    )
    parser.add_argument(
        "--work-dir", type=Path, default=None, help="store and run (default: a temporary dir)"
    )
    parser.add_argument("--keep", action="store_true", help="keep the work dir")
    return parser.parse_args(argv)


def _run_steps(plan: Plan, rec: Recorder, work: Path, out_dir: Path) -> None:
    """Every step in order; a step whose inputs are missing is skipped with the reason."""
    store = work / "store"
    rec.step("env", lambda: step_env(plan))
    gpu_missing = plan.device == "cuda" and not torch.cuda.is_available()
    stored = rec.step("store", lambda: step_store(plan, store)) is not None
    needs = {
        "loader": lambda: step_loader(plan, store),
        "step": lambda: step_step(plan, store, compiled=False),
        "attention": lambda: step_attention(plan, store),
        "flops": lambda: step_flops(plan),
        "train": lambda: _train(plan, rec, store, work, out_dir),
        # Last: its compilations take the longest, and the figures above must not wait.
        "step_compiled": lambda: step_step(plan, store, compiled=True),
    }
    for name, fn in needs.items():
        if gpu_missing:
            rec.skip(name, "no CUDA device available")
        elif not stored and name != "flops":
            rec.skip(name, "no store")
        else:
            rec.step(name, fn)
    rec.step("summary", lambda: step_summary(plan, rec.data["steps"]))


def _train(plan: Plan, rec: Recorder, store: Path, work: Path, out_dir: Path) -> dict[str, Any]:
    """``step_train`` sized by the eager step's rate, within its share of the budget."""
    rate = _result(rec.data["steps"], "step").get(f"batch_{plan.batch}", {}).get("windows_per_s")
    reserve = 5.0 if plan.smoke else RESERVE_AFTER_TRAIN_S
    share = min(plan.train_budget_s, rec.remaining() - reserve)
    hard = rec.remaining() - reserve / 2
    return step_train(plan, store, work, out_dir, rate, share, hard)


def main(argv: list[str] | None = None) -> int:
    args = _parse(argv)
    plan = SMOKE if args.smoke else FULL
    # An outer `timeout` sends SIGTERM: unwind through the finally blocks, so that the
    # trainer subprocess is stopped and gpu.json gets its last state.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(128 + signal.SIGTERM))
    if plan.smoke:
        # Intra-op threads spin against each other when the few cores are shared.
        torch.set_num_threads(1)
    budget = args.budget_s or (150.0 if plan.smoke else 460.0)
    args.out_dir.mkdir(parents=True, exist_ok=True)
    rec = Recorder(args.out_dir, budget, SMOKE_MIN_SECONDS if plan.smoke else MIN_SECONDS)
    rec.data["mode"] = "cpu-smoke" if plan.smoke else "full"
    work = args.work_dir or Path(tempfile.mkdtemp(prefix="bench-gpu-"))
    work.mkdir(parents=True, exist_ok=True)
    rec.log(f"mode {rec.data['mode']}, out {args.out_dir}, work {work}, budget {budget:.0f}s")
    statuses: dict[str, str] = {}
    try:
        _run_steps(plan, rec, work, args.out_dir)
    finally:
        statuses = {k: v["status"] for k, v in rec.data["steps"].items()}
        rec.data["summary_status"] = statuses
        rec.save()
        rec.log(f"done: {statuses}; results in {args.out_dir / 'gpu.json'}")
        if not args.keep and args.work_dir is None:
            shutil.rmtree(work, ignore_errors=True)
    return 0 if all(s in ("ok", "skipped") for s in statuses.values()) else 1


if __name__ == "__main__":
    raise SystemExit(main())
