"""GPU check of the trainer: one short, self-contained run on a CUDA machine.

    python3 -m benchmarks.bench_gpu --out-dir DIR            # the GPU run (4-5 minutes)
    python3 -m benchmarks.bench_gpu --out-dir DIR --quick    # tiny, CPU only, under a minute

Run it from the repository root (the project need not be installed; zarr is needed to
write the store). Everything it measures lands in ``DIR/gpu.json``, rewritten after every
step so that a run killed by a time limit still leaves the finished steps' numbers. Every
step records ``status`` (ok / error / skipped / timed_out; running if the process was
stopped during it), ``seconds`` and its result and / or the error text; a failing step
never stops the next one.

Steps, in the order they run:

``env``
    Python, torch, CUDA, cuDNN, GPU name, numpy / zarr versions, CPU count.
``store``
    A learnable synthetic store (``tests/trainer_fixtures.build_store``: fakes carry a
    visible cue per modality) at crop 112, 64 frames, 64 / 16 / 16 clips per category
    for train / val / test; its build time.
``loader_vs_gpu``
    Whether the input pipeline keeps the GPU fed, at the trainer's batch size (32) and
    window (50 frames) of the ``paper`` preset: windows/s that ``WindowDataset`` +
    ``DataLoader`` (train mode, pinned memory) deliver to the GPU alone, for 0, 4 and 8
    workers; the training step rate of the ``paper`` model with bf16 autocast on one
    batch held on the GPU (the loader's ceiling); and both together (the real pipeline).
    It runs before ``train`` because its step rate sizes the training run.
``train``
    The real trainer CLI in a subprocess, ``python3 -m trainer.cli run --config paper
    --set device=cuda ...`` (5 epochs, 1 warm-up epoch, 8 workers, windows per clip chosen
    so that it takes about 100 s at the step rate measured above). Records
    wall time, windows/s, test AUC / ACC from its ``report.json``, whether bf16 autocast
    was on (``trainer.runtime.autocast_dtype`` applied to the run's own config and
    device), and GPU utilisation / memory sampled with ``nvidia-smi`` meanwhile. Its
    ``report.json``, ``metrics.jsonl``, ``config.yaml``, ``meta.json``, plots and log are
    copied into DIR (``report.json``, ``train_*``, ``plots/``).
``model_cost``
    ``benchmarks.bench_model.gpu_throughput`` for both presets (paper batch 32 at 50
    frames, tiny batch 64 at 16 frames): training samples/s of DCA+MSSA and CA+SA with
    bf16 and Adam, and their time ratio on the GPU.

``--quick`` uses a tiny store and the ``tiny`` preset on the CPU (GPU-only parts are
recorded as skipped with the reason); it exists to test this script without a GPU.
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
from trainer.metrics import json_safe  # noqa: E402

PAPER_TRAIN_BATCH = 32  # the paper preset's batch size; bench_model's paper batch too


@dataclass(frozen=True)
class Plan:
    """Sizes of one run. ``counts`` are clips per category for train / val / test."""

    quick: bool
    device: str  # the device asked of the trainer and of the loader benchmark
    config: str  # trainer preset
    crop: int
    frames: int
    counts: dict[str, int]
    window: int
    batch: int
    loader_workers: tuple[int, ...]
    loader_batches: int  # batches timed per loader setting (after the first)
    model_steps: int  # timed training steps on a batch held on the device
    train_budget_s: float  # target wall time of the training subprocess
    train_epochs: int
    precise_bn: int  # BatchNorm recalibration batches per epoch (the paper preset: 50)
    max_windows_per_clip: int
    fallback_rate: float  # windows/s assumed when the step rate could not be measured


FULL = Plan(
    quick=False,
    device="cuda",
    config="paper",
    crop=112,
    frames=64,
    counts={"train": 64, "val": 16, "test": 16},
    window=50,
    batch=PAPER_TRAIN_BATCH,
    loader_workers=(0, 4, 8),
    loader_batches=30,
    model_steps=20,
    train_budget_s=100.0,
    train_epochs=5,
    precise_bn=50,
    max_windows_per_clip=40,
    fallback_rate=200.0,
)
QUICK = Plan(
    quick=True,
    device="cpu",
    config="tiny",
    crop=32,
    frames=24,
    counts={"train": 3, "val": 1, "test": 1},
    window=16,
    batch=8,
    loader_workers=(0, 2),
    loader_batches=3,
    model_steps=2,
    train_budget_s=30.0,
    train_epochs=2,
    precise_bn=1,
    max_windows_per_clip=2,
    fallback_rate=20.0,
)

# Seconds a step needs at least; a step is skipped when less than this is left.
MIN_SECONDS = {"store": 20, "loader_vs_gpu": 30, "train": 60, "model_cost": 25}
QUICK_MIN_SECONDS = {k: 2 for k in MIN_SECONDS}
# Fixed cost of a training run besides its epochs: interpreter, CUDA context, model
# build, final test evaluation, plots.
TRAIN_FIXED_S = 25.0
TRAIN_EPOCH_OVERHEAD_S = 3.0  # worker start-up (three loaders per epoch), checkpoints
RESERVE_AFTER_TRAIN_S = 45.0  # kept for model_cost when the budget runs short


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
        if self.remaining() < need:
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


def _train_config(plan: Plan, extra: list[str] | None = None) -> Any:
    """The trainer's config for ``plan`` (the store's crop needs no setting: the visual trunk
    pools globally)."""
    from trainer.config import load_config

    overrides = [f"window={plan.window}"]
    overrides += [f"batch_size={plan.batch}", f"device={plan.device}", *(extra or [])]
    return load_config(plan.config, overrides)


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


def _train_step(model: Any, optimizer: Any, batch: dict, cfg: Any, device: Any, amp: Any) -> None:
    """One optimiser step: the training loop's own :func:`trainer.step.train_step` (the copy
    of the batch to the device, forward, loss, finiteness check, backward, clipping,
    optimiser step, the per-step host sync of reading the losses), so the figure measured
    is the loop's."""
    from trainer.step import train_step

    train_step(model, batch, optimizer, cfg, device, amp)


def step_loader_vs_gpu(plan: Plan, store: Path) -> dict[str, Any]:
    from trainer.data import WindowDataset, split_clips
    from trainer.runtime import autocast_dtype

    cfg = _train_config(plan)
    device = torch.device(plan.device)
    pin = device.type == "cuda"
    amp = autocast_dtype(cfg, device)
    train = split_clips(store, "default")["train"]
    need = plan.batch * (plan.loader_batches + 2)
    clips = train * max(1, math.ceil(need / len(train)))
    dataset = WindowDataset(store, clips, plan.window, train=True, seed=0)
    result: dict[str, Any] = {
        "device": str(device),
        "batch": plan.batch,
        "window": plan.window,
        "crop": plan.crop,
        "pin_memory": pin,
        "autocast": str(amp),
        "window_mib": (3 * plan.window * plan.crop**2 + 4 * 104 * plan.window) / 2**20,
        "loader": {},
    }

    def to_device(batch: dict) -> torch.device:
        for value in batch.values():
            value.to(device, non_blocking=True)
        return device

    for workers in plan.loader_workers:
        # One failing setting (e.g. workers short of shared memory) must not hide the others.
        try:
            batches = iter(_loader(dataset, plan.batch, workers, pin))
            timing = _timed_batches(batches, plan.loader_batches, to_device)
        except Exception as exc:
            timing = {"error": f"{type(exc).__name__}: {exc}"}
        finally:
            batches = None  # shuts the workers down before the next setting starts
        result["loader"][f"workers_{workers}"] = timing

    try:
        result |= _model_rates(plan, cfg, dataset, device, amp, pin)
    except Exception as exc:
        result["model_error"] = f"{type(exc).__name__}: {exc}"
        result["model_traceback"] = traceback.format_exc(limit=-8)
        return result
    finally:
        if device.type == "cuda":
            torch.cuda.empty_cache()
    model_rate = result["model_step"]["windows_per_s"]
    result["loader_over_model"] = {
        name: r["windows_per_s"] / model_rate
        for name, r in result["loader"].items()
        if "windows_per_s" in r
    }
    result["pipeline_over_model"] = result["pipeline"]["windows_per_s"] / model_rate
    best = max((r.get("windows_per_s", 0.0) for r in result["loader"].values()), default=0.0)
    result["loader_keeps_up"] = best >= model_rate
    result["verdict"] = (
        f"loader alone up to {best:.0f} windows/s vs model step {model_rate:.0f} windows/s; "
        f"both together {result['pipeline']['windows_per_s']:.0f} windows/s "
        f"with {result['pipeline']['workers']} workers"
    )
    return result


def _model_rates(
    plan: Plan, cfg: Any, dataset: Any, device: torch.device, amp: Any, pin: bool
) -> dict[str, Any]:
    """Training windows/s of the model on one batch held on the device (``model_step``),
    and fed by the DataLoader with the training run's workers (``pipeline``)."""
    from trainer.model import MSCT
    from trainer.optim import build_optimizer

    torch.manual_seed(0)
    model = MSCT(cfg.model).to(device).train()
    optimizer = build_optimizer(cfg, model)
    fixed = next(iter(_loader(dataset, plan.batch, 0, pin)))
    fixed = {k: v.to(device) for k, v in fixed.items()}
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)

    def model_only(_: dict) -> torch.device:
        _train_step(model, optimizer, fixed, cfg, device, amp)
        return device

    for _ in range(2):  # kernels selected and memory pools grown before timing
        model_only(fixed)
    steps = iter([fixed] * (plan.model_steps + 1))
    out: dict[str, Any] = {"model_step": _timed_batches(steps, plan.model_steps, model_only)}
    out["model_step"]["params"] = sum(p.numel() for p in model.parameters())
    if device.type == "cuda":
        out["model_step"]["peak_memory_gib"] = torch.cuda.max_memory_allocated(device) / 2**30

    def pipelined(batch: dict) -> torch.device:
        # The host batch, as the loop hands it over: the step makes the copies itself.
        _train_step(model, optimizer, batch, cfg, device, amp)
        return device

    workers = _train_workers(plan)
    loader = iter(_loader(dataset, plan.batch, workers, pin))
    out["pipeline"] = {"workers": workers} | _timed_batches(loader, plan.loader_batches, pipelined)
    return out


def _train_workers(plan: Plan) -> int:
    """DataLoader workers for the training run: 8 where the cores allow, leaving two spare."""
    if plan.quick:
        return 0
    return max(0, min(8, (os.cpu_count() or 2) - 2))


def _size_training(plan: Plan, rate: float, budget_s: float, train_clips: int) -> dict[str, Any]:
    """Windows per clip so that ``train_epochs`` epochs fit ``budget_s`` at ``rate`` windows/s.

    A BatchNorm recalibration or evaluation window costs about a third of a training
    window (forward only).
    """
    from trainer.data import eval_starts

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
        "train_windows_per_epoch": per_clip * train_clips,
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

    from trainer.config import TrainConfig
    from trainer.runtime import autocast_dtype

    train_clips = 4 * plan.counts["train"]
    sizing = _size_training(plan, rate or plan.fallback_rate, budget_s, train_clips)
    sizing["rate_source"] = "loader_vs_gpu" if rate else "fallback guess"
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
    if plan.quick:  # see main(): one thread, so a busy small machine stays quick
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


def step_model_cost(plan: Plan) -> dict[str, Any]:
    from benchmarks.bench_model import gpu_throughput

    result: dict[str, Any] = {}
    for preset, batch, frames in (("paper", PAPER_TRAIN_BATCH, 50), ("tiny", 64, 16)):
        if torch.cuda.is_available():
            torch.cuda.empty_cache()
            torch.cuda.reset_peak_memory_stats()
        result[preset] = gpu_throughput(preset, batch, frames, steps=15)
        ratio = result[preset].get("ratio_time_dca_mssa_over_ca_sa")
        if ratio is not None:
            result[f"{preset}_ratio_dca_mssa_over_ca_sa"] = ratio
    return result


# --------------------------------------------------------------------------- main


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out-dir", type=Path, required=True, help="where gpu.json goes")
    parser.add_argument("--quick", action="store_true", help="tiny, on the CPU (a self-test)")
    parser.add_argument(
        "--budget-s",
        type=float,
        default=None,
        help="wall-clock budget of the whole run (default 420, quick 120)",
    )
    parser.add_argument(
        "--work-dir", type=Path, default=None, help="store and run (default: a temporary dir)"
    )
    parser.add_argument("--keep", action="store_true", help="keep the work dir")
    args = parser.parse_args(argv)

    plan = QUICK if args.quick else FULL
    # An outer `timeout` sends SIGTERM: unwind through the finally blocks, so that the
    # trainer subprocess is stopped and gpu.json gets its last state.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(128 + signal.SIGTERM))
    if args.quick:
        # Intra-op threads spin against each other when the few cores are shared.
        torch.set_num_threads(1)
    budget = args.budget_s or (120.0 if args.quick else 420.0)
    args.out_dir.mkdir(parents=True, exist_ok=True)
    rec = Recorder(args.out_dir, budget, QUICK_MIN_SECONDS if args.quick else MIN_SECONDS)
    rec.data["mode"] = "quick" if args.quick else "full"
    work = args.work_dir or Path(tempfile.mkdtemp(prefix="bench-gpu-"))
    work.mkdir(parents=True, exist_ok=True)
    store = work / "store"
    rec.log(f"mode {rec.data['mode']}, out {args.out_dir}, work {work}, budget {budget:.0f}s")
    try:
        rec.step("env", lambda: step_env(plan))
        cuda = torch.cuda.is_available()
        gpu_reason = None
        if plan.device == "cuda" and not cuda:
            gpu_reason = "no CUDA device available"
        elif plan.quick:
            gpu_reason = "quick mode runs on the CPU"
        stored = rec.step("store", lambda: step_store(plan, store)) is not None

        if not stored:
            rec.skip("loader_vs_gpu", "no store")
            comparison = None
        elif plan.device == "cuda" and not cuda:
            rec.skip("loader_vs_gpu", gpu_reason or "")
            comparison = None
        else:
            comparison = rec.step("loader_vs_gpu", lambda: step_loader_vs_gpu(plan, store))

        rate = None
        if comparison and "pipeline" in comparison:
            rate = min(
                comparison["model_step"]["windows_per_s"], comparison["pipeline"]["windows_per_s"]
            )
        if not stored:
            rec.skip("train", "no store")
        elif plan.device == "cuda" and not cuda:
            rec.skip("train", gpu_reason or "")
        else:
            share = min(plan.train_budget_s, rec.remaining() - RESERVE_AFTER_TRAIN_S)
            hard = rec.remaining() - 30
            rec.step(
                "train",
                lambda: step_train(plan, store, work, args.out_dir, rate, share, hard),
            )

        if gpu_reason:
            rec.skip("model_cost", gpu_reason)
        else:
            rec.step("model_cost", lambda: step_model_cost(plan))
    finally:
        statuses = {k: v["status"] for k, v in rec.data["steps"].items()}
        rec.data["summary"] = statuses
        rec.save()
        rec.log(f"done: {statuses}; results in {args.out_dir / 'gpu.json'}")
        if not args.keep and args.work_dir is None:
            shutil.rmtree(work, ignore_errors=True)
    return 0 if all(s in ("ok", "skipped") for s in statuses.values()) else 1


if __name__ == "__main__":
    raise SystemExit(main())
