"""The training loop: train on ``train``, select the best epoch on ``val``, test once.

Checkpoint selection: the epoch with the highest **val AUC** of the fused head
(an undefined AUC counts as lowest), then the highest val ACC, then the lowest val
log loss; remaining ties keep the earlier epoch. On a small or easy val part AUC and
ACC saturate within a few epochs, and keeping the first epoch that reached them
picks an undertrained model; the log loss still tells those epochs apart. The test part
is not opened until training has finished; then the best checkpoint is
evaluated on it exactly once.

Epochs count from 1 in ``metrics.jsonl``, ``report.json`` and the log; the
checkpoint's ``epoch`` is the 0-based index of the last finished epoch.

Exact resumption: every epoch ends with ``checkpoints/last.pt`` holding the
model, optimizer, scheduler, every rank's RNG states and the best-so-far. The
data order depends only on ``(seed, epoch)`` (``DistributedSampler``, whose epoch
:class:`~trainer.data.EpochIndices` hands to every item), and the DataLoaders draw
their worker seeds from generators of their own, never from the global RNG that
dropout uses; so a run killed at any point and resumed with ``--resume``, or run
with any number of workers, finishes with the same numbers as an uninterrupted one.
"""

from __future__ import annotations

import json
import math
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch.utils.data import DataLoader, DistributedSampler

import schemas
from trainer import distributed as ddp
from trainer.checkpoint import (
    capture_rng,
    load_checkpoint,
    load_model_state,
    restore_rng,
    save_checkpoint,
)
from trainer.config import TrainConfig, TrainerError, config_diff, save_config
from trainer.data import ClipInfo, EpochIndices, WindowDataset
from trainer.inference import evaluate
from trainer.inputs import model_inputs
from trainer.metrics import ClipScores, compute_metrics, json_safe
from trainer.model import MSCT, msct_loss
from trainer.runtime import (
    autocast,
    autocast_dtype,
    new_run_dir,
    open_split,
    resolve_device,
    seed_everything,
    source_revision,
    write_json,
)

SELECTION = (
    "val AUC of the fused head, then val ACC, then lower val log loss "
    "(undefined counts as worst); ties keep the earlier epoch"
)
LOSS_PARTS = ("total", "audio", "video", "fused", "align")
LABELS = ("audio_label", "video_label", "label")  # msct_loss's label arguments, in order

RUNS_ROOT = Path("runs")  # where a run without --out gets its runs/<timestamp> directory

Log = Callable[[str], None]


# --------------------------------------------------------------------------- optimisation


def build_optimizer(cfg: TrainConfig, model: torch.nn.Module) -> torch.optim.Optimizer:
    params = [p for p in model.parameters() if p.requires_grad]
    if cfg.optimizer == "adamw":
        return torch.optim.AdamW(params, lr=cfg.lr, weight_decay=cfg.weight_decay)
    return torch.optim.Adam(params, lr=cfg.lr, weight_decay=cfg.weight_decay)


def build_scheduler(
    cfg: TrainConfig, optimizer: torch.optim.Optimizer, steps_per_epoch: int
) -> torch.optim.lr_scheduler.LambdaLR:
    """Per-step multiplier: linear warm-up, then a half cosine to zero (or constant)."""
    total = max(1, cfg.epochs * steps_per_epoch)
    warmup = min(cfg.warmup_epochs * steps_per_epoch, total - 1)
    schedule = cfg.schedule

    def factor(step: int) -> float:
        if step < warmup:
            return (step + 1) / warmup
        if schedule == "constant":
            return 1.0
        progress = (step - warmup) / max(1, total - warmup)
        return 0.5 * (1.0 + math.cos(math.pi * min(progress, 1.0)))

    return torch.optim.lr_scheduler.LambdaLR(optimizer, factor)


# --------------------------------------------------------------------------- BatchNorm before evaluation


@torch.no_grad()
def recalibrate_bn(
    model: torch.nn.Module,
    loader: DataLoader,
    max_batches: int,
    device: torch.device,
    amp: torch.dtype | None,
    info: ddp.DistInfo,
) -> None:
    """Recompute BatchNorm running statistics with the current weights ("precise BN").

    The running averages lag behind weights that move fast (few steps, high lr), and an
    eval-mode model then sees stale statistics; a pass over up to ``max_batches``
    training batches with cumulative averaging fixes that. Only BatchNorm layers are
    put in train mode, so dropout draws no random numbers and resumption stays exact.
    With several ranks the statistics are averaged over ranks.
    """
    net = ddp.unwrap(model)
    norms = [m for m in net.modules() if isinstance(m, torch.nn.modules.batchnorm._BatchNorm)]
    if not norms or max_batches <= 0:
        return
    net.eval()
    momenta = [m.momentum for m in norms]
    for m in norms:
        m.reset_running_stats()
        m.momentum = None  # cumulative average over the batches below
        m.train()
    for i, batch in enumerate(loader):
        if i >= max_batches:
            break
        with autocast(device, amp):
            net(*model_inputs(batch, device))
    for m, momentum in zip(norms, momenta, strict=True):
        m.momentum = momentum
        m.eval()
        if info.enabled:
            for buf in (m.running_mean, m.running_var):
                torch.distributed.all_reduce(buf, op=torch.distributed.ReduceOp.SUM)
                buf.div_(info.world_size)


def _val_key(metrics: dict[str, Any]) -> list[float]:
    """Selection key, compared lexicographically: [AUC, ACC, -log loss], undefined
    (NaN / None) as -inf."""

    def value(v: Any) -> float:
        return -math.inf if v is None or (isinstance(v, float) and math.isnan(v)) else float(v)

    return [value(metrics.get("auc")), value(metrics.get("acc")), -value(metrics.get("log_loss"))]


def _summary(metrics: dict[str, Any]) -> dict[str, Any]:
    keys = ("n", "acc", "auc", "log_loss", "audio_auc", "video_auc", "per_category_acc")
    return {k: metrics[k] for k in keys}


# --------------------------------------------------------------------------- training


@dataclass
class RunPaths:
    out: Path

    @property
    def last(self) -> Path:
        return self.out / "checkpoints" / "last.pt"

    @property
    def best(self) -> Path:
        return self.out / "checkpoints" / "best.pt"

    @property
    def metrics(self) -> Path:
        return self.out / "metrics.jsonl"


NOT_FINITE_HINT = "stopped (try a lower lr, amp=off or grad_clip > 0)"


def _check_loss(loss: torch.Tensor, epoch: int, step: int, info: ddp.DistInfo) -> None:
    """Raise on a non-finite loss on any rank (all ranks stop together)."""
    bad = 0.0 if bool(torch.isfinite(loss.detach())) else 1.0
    if info.enabled:
        bad = ddp.all_sum([bad], info)[0]
    if bad:
        raise TrainerError(
            f"loss is not finite at epoch {epoch + 1} step {step + 1}; {NOT_FINITE_HINT}"
        )


def _check_finite(loss: torch.Tensor) -> None:
    """Single-process default of :func:`train_step`'s ``check``."""
    if not bool(torch.isfinite(loss.detach())):
        raise TrainerError(f"loss is not finite; {NOT_FINITE_HINT}")


def train_step(
    model: torch.nn.Module,
    batch: dict[str, torch.Tensor],
    optimizer: torch.optim.Optimizer,
    cfg: TrainConfig,
    device: torch.device,
    amp: torch.dtype | None,
    *,
    scheduler: torch.optim.lr_scheduler.LRScheduler | None = None,
    check: Callable[[torch.Tensor], None] = _check_finite,
) -> dict[str, float]:
    """One optimisation step of the training loop, exactly as :func:`train` takes it.

    ``batch`` is a collated :class:`~trainer.data.WindowDataset` batch (audio (B, T, 104),
    uint8 video (B, T, S, S, 3), mask (B, T), labels (B,)), on the host or on ``device``.
    Forward and loss under ``amp`` autocast, ``check(total loss)`` before any weight moves
    (it raises on a non-finite loss), backward, gradient clipping at ``cfg.grad_clip``,
    the optimiser step and, when given, the scheduler step. Returns each loss part
    (``LOSS_PARTS``) as a float: reading them is a host sync, which every step of the loop
    pays and so every benchmark of it must pay too.
    """
    audio, video, mask = model_inputs(batch, device)
    labels = [batch[k].to(device, non_blocking=True) for k in LABELS]
    with autocast(device, amp):
        out = model(audio, video, mask)
        parts = msct_loss(out, *labels, mask, cfg.loss)
    check(parts.total)
    optimizer.zero_grad(set_to_none=True)
    parts.total.backward()
    if cfg.grad_clip > 0:
        torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip)
    optimizer.step()
    if scheduler is not None:
        scheduler.step()
    return {name: float(getattr(parts, name).detach()) for name in LOSS_PARTS}


def _progress(enabled: bool, epoch: int) -> Any:
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    progress = Progress(
        TextColumn(f"epoch {epoch}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("loss {task.fields[loss]:.4f}"),
        TimeElapsedColumn(),
        transient=True,
        disable=not enabled,
    )
    return progress


def train(
    cfg: TrainConfig,
    store: Path,
    split: str,
    out: Path | None,
    *,
    resume: bool = False,
    log: Log = print,
    runs_root: Path = RUNS_ROOT,
) -> dict[str, Any]:
    """Train, select on val, test once; return the report (also written to ``out/report.json``;
    its ``run_dir`` names ``out``).

    ``out=None`` creates a new ``runs_root/<timestamp>`` directory, atomically and uniquely
    (:func:`trainer.runtime.new_run_dir`), on the main rank, whose choice every rank follows.
    Raises :class:`TrainerError` for every user error (store, split, run directory,
    checkpoint, non-finite loss).
    """
    info = ddp.detect()
    device = resolve_device(cfg, info)
    ddp.init(info, device)
    try:
        if out is None and resume:
            raise TrainerError("--resume needs the --out of the run to continue")
        out = Path(out) if out is not None else None
        return _train(cfg, Path(store), split, out, runs_root, resume, log, info, device)
    finally:
        ddp.shutdown()


def _prepare_run(
    cfg: TrainConfig,
    paths: RunPaths,
    resume: bool,
    fingerprint: str,
) -> dict[str, Any] | None:
    """Check the run directory; return the checkpoint to resume from (or None)."""
    if paths.out.exists() and not paths.out.is_dir():
        raise TrainerError(f"--out {paths.out} is a file, not a run directory; pass another --out")
    if not resume:
        if paths.last.exists():
            raise TrainerError(
                f"{paths.out} already holds a run; pass --resume to continue it or another --out"
            )
        return None
    if not paths.last.exists():
        raise TrainerError(f"nothing to resume: {paths.last} does not exist")
    ckpt = load_checkpoint(paths.last)
    if ckpt["store_fingerprint"] != fingerprint:
        raise TrainerError(
            f"the store changed since {paths.last} was written (fingerprint "
            f"{ckpt['store_fingerprint']} != {fingerprint}); refusing to resume"
        )
    try:
        saved = TrainConfig.from_dict(ckpt["config"])
    except TrainerError as exc:
        raise TrainerError(f"checkpoint {paths.last} has an invalid config: {exc}") from None
    diff = config_diff(saved, cfg)
    if diff:
        raise TrainerError(f"config differs from the checkpoint's: {'; '.join(diff[:3])}")
    return ckpt


def _new_run_dir(root: Path, info: ddp.DistInfo) -> Path:
    """A fresh ``root/<timestamp>`` made by the main rank (atomically, with a suffix when
    another run took the name this second); every rank gets the main rank's path."""
    made = str(new_run_dir(root)) if info.is_main else None
    return Path(ddp.broadcast_object(made, info))


def _write_meta(
    cfg: TrainConfig,
    paths: RunPaths,
    store: Path,
    fingerprint: str,
    split: str,
    device: Any,
    world: int,
    parameters: int,
) -> None:
    from schemas.store import software_version

    meta = {
        **source_revision(),  # git_revision and git_dirty of the trainer's own checkout
        "store": str(store.resolve()),
        "store_fingerprint": fingerprint,
        "split": split,
        "software_version": software_version(),
        "torch_version": torch.__version__,
        "python_version": sys.version.split()[0],
        "device": str(device),
        "world_size": world,
        "parameters": parameters,
        "selection": SELECTION,
        "started": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    }
    write_json(paths.out / "meta.json", meta)
    save_config(cfg, paths.out / "config.yaml")


def _train(
    cfg: TrainConfig,
    store: Path,
    split: str,
    out_arg: Path | None,
    runs_root: Path,
    resume: bool,
    log: Log,
    info: ddp.DistInfo,
    device: torch.device,
) -> dict[str, Any]:
    recipe, fingerprint, parts = open_split(store, split)
    # All three parts, test included, before anything is trained: a run that could only
    # fail after its last epoch would waste the whole training.
    for part in ("train", "val", "test"):
        if not parts[part]:
            raise TrainerError(f"split {split!r} has no {part} clips")
    # The store's crop size needs no model setting: the visual trunk pools globally.
    out = out_arg if out_arg is not None else _new_run_dir(runs_root, info)
    paths = RunPaths(out)
    ckpt = _prepare_run(cfg, paths, resume, fingerprint)
    main = info.is_main
    amp = autocast_dtype(cfg, device)

    seed_everything(cfg.seed)
    model = MSCT(cfg.model).to(device)
    if main:
        (out / "checkpoints").mkdir(parents=True, exist_ok=True)
        n_params = sum(p.numel() for p in model.parameters())
        _write_meta(cfg, paths, store, fingerprint, split, device, info.world_size, n_params)
    # Each clip appears windows_per_clip times per epoch; every copy draws its own
    # random window (the window depends on the item index), so short datasets still
    # give the optimiser enough steps per epoch.
    train_clips = parts["train"] * cfg.windows_per_clip
    train_set = WindowDataset(store, train_clips, cfg.window, train=True, seed=cfg.seed)
    val_set = WindowDataset(
        store, parts["val"], cfg.window, train=False, seed=cfg.seed, eval_stride=cfg.eval_stride
    )
    sampler = EpochIndices(
        DistributedSampler(
            train_set, num_replicas=info.world_size, rank=info.rank, shuffle=True, seed=cfg.seed
        )
    )
    loader = DataLoader(
        train_set,
        batch_size=cfg.batch_size,
        sampler=sampler,
        num_workers=cfg.num_workers,
        # Workers live for the whole run: their readers keep every clip they have
        # checked (and up to thousands open), so only the first epoch pays for that.
        persistent_workers=cfg.num_workers > 0,
        # Its own generator: making an iterator draws a worker seed, which must not come
        # from the global RNG that dropout uses, or the numbers would depend on
        # num_workers and on where a run was resumed. Items draw nothing from it.
        generator=torch.Generator().manual_seed(cfg.seed),
        pin_memory=device.type == "cuda",
        drop_last=len(sampler) > cfg.batch_size,  # a batch of one would upset batch norm
    )
    optimizer = build_optimizer(cfg, model)
    scheduler = build_scheduler(cfg, optimizer, len(loader))

    start_epoch, best_epoch, best_key, bad_epochs = 0, -1, [-math.inf] * 3, 0
    best_val: dict[str, Any] = {}
    if ckpt is not None:
        load_model_state(model, ckpt["model"], paths.last)
        optimizer.load_state_dict(ckpt["optimizer"])
        scheduler.load_state_dict(ckpt["scheduler"])
        start_epoch = int(ckpt["epoch"]) + 1
        best_epoch, best_key = int(ckpt["best_epoch"]), list(ckpt["best_metric"])
        best_key += [-math.inf] * (3 - len(best_key))  # keys of older runs had no log loss
        bad_epochs, best_val = int(ckpt["bad_epochs"]), dict(ckpt["best_val"])
        rngs = ckpt["rng"]
        restore_rng(rngs[info.rank] if len(rngs) == info.world_size else rngs[0])
        if main:
            _truncate_metrics(paths.metrics, int(ckpt["epoch"]))
            log(f"resuming {out} at epoch {start_epoch + 1} (best so far: {best_epoch + 1})")
    else:
        # Different dropout masks per rank; DDP broadcasts rank 0's initial weights anyway.
        torch.manual_seed(cfg.seed + 1000 * info.rank)
    model = ddp.wrap(model, info, device)

    writer = None
    if main:
        from torch.utils.tensorboard import SummaryWriter

        writer = SummaryWriter(str(out / "tb"), purge_step=start_epoch)
    interactive = main and sys.stderr.isatty()
    stopped_early = False
    for epoch in range(start_epoch, cfg.epochs):
        t0 = time.perf_counter()
        sampler.set_epoch(epoch)  # the items' windows follow the epoch their index carries
        sums = _train_epoch(
            model, loader, optimizer, scheduler, cfg, epoch, device, amp, info, interactive
        )
        recalibrate_bn(model, loader, cfg.precise_bn, device, amp, info)
        totals = ddp.all_sum(sums, info)
        n = max(totals[-1], 1.0)
        train_loss = {k: totals[i] / n for i, k in enumerate(LOSS_PARTS)}
        val_scores = evaluate(
            model, val_set, device=device, amp=amp, batch_size=2 * cfg.batch_size,
            num_workers=cfg.num_workers, info=info,
        )  # fmt: skip
        val_metrics = compute_metrics(val_scores)
        key = _val_key(val_metrics)
        improved = key > best_key
        if improved:
            best_epoch, best_key, bad_epochs, best_val = epoch, key, 0, val_metrics
        else:
            bad_epochs += 1
        lr = optimizer.param_groups[0]["lr"]
        elapsed = time.perf_counter() - t0
        rngs = ddp.gather_objects(capture_rng(), info)
        if main:
            record = {
                "epoch": epoch + 1,
                "train": train_loss,
                "val": _summary(val_metrics),
                "lr": lr,
                "best_epoch": best_epoch + 1,
                "epoch_time_s": elapsed,
            }
            with paths.metrics.open("a") as fh:
                fh.write(json.dumps(json_safe(record), allow_nan=False) + "\n")
            assert writer is not None
            for k, v in train_loss.items():
                writer.add_scalar(f"train/loss_{k}", v, epoch)
            for k in ("acc", "auc", "audio_auc", "video_auc"):
                if val_metrics[k] == val_metrics[k]:  # NaN is skipped
                    writer.add_scalar(f"val/{k}", val_metrics[k], epoch)
            writer.add_scalar("lr", lr, epoch)
            writer.flush()
            state = {
                "model": ddp.unwrap(model).state_dict(),
                "optimizer": optimizer.state_dict(),
                "scheduler": scheduler.state_dict(),
                "epoch": epoch,
                "best_epoch": best_epoch,
                "best_metric": best_key,
                "best_val": json_safe(val_metrics if improved else best_val),
                "bad_epochs": bad_epochs,
                "rng": rngs,
                "config": cfg.to_dict(),
                "store_fingerprint": fingerprint,
                "recipe": recipe.to_dict(),
                "split": split,
                # What `mscct-train eval` needs to refuse scoring clips the model trained on,
                # and to find the split when evaluating on another store.
                "store": str(store.resolve()),
                "train_clips": [c.clip_id for c in parts["train"]],
            }
            if improved:
                save_checkpoint(paths.best, state)
            save_checkpoint(paths.last, state)
            auc = val_metrics["auc"]
            log(
                f"epoch {epoch + 1}/{cfg.epochs}  loss {train_loss['total']:.4f}  "
                f"val acc {val_metrics['acc']:.4f}  val auc {auc:.4f}  lr {lr:.2e}  "
                f"{elapsed:.1f}s{'  *best*' if improved else ''}"
            )
        if cfg.patience is not None and bad_epochs >= cfg.patience:
            stopped_early = True
            if main:
                log(f"no val improvement for {bad_epochs} epochs: stopping early")
            break
    if writer is not None:
        writer.close()
    ddp.barrier(info)
    return _finish(
        cfg, store, split, out, model, parts, best_epoch, best_val, recipe, fingerprint,
        device, amp, info, log, stopped_early,
    )  # fmt: skip


def _train_epoch(
    model: torch.nn.Module,
    loader: DataLoader,
    optimizer: torch.optim.Optimizer,
    scheduler: torch.optim.lr_scheduler.LambdaLR,
    cfg: TrainConfig,
    epoch: int,
    device: torch.device,
    amp: torch.dtype | None,
    info: ddp.DistInfo,
    interactive: bool,
) -> list[float]:
    """One pass over the training loader; returns sums of each loss part × batch and the count."""
    model.train()
    sums = [0.0] * (len(LOSS_PARTS) + 1)
    with _progress(interactive, epoch + 1) as progress:
        task = progress.add_task("train", total=len(loader), loss=float("nan"))
        for step, batch in enumerate(loader):
            losses = train_step(
                model, batch, optimizer, cfg, device, amp, scheduler=scheduler,
                check=lambda loss, step=step: _check_loss(loss, epoch, step, info),
            )  # fmt: skip
            size = float(batch["label"].shape[0])
            for i, name in enumerate(LOSS_PARTS):
                sums[i] += losses[name] * size
            sums[-1] += size
            progress.update(task, advance=1, loss=losses["total"])
    return sums


def _truncate_metrics(path: Path, last_epoch: int) -> None:
    """Keep the log lines of epochs ``<= last_epoch`` (0-based; lines count from 1). Drop log lines of epochs after the checkpoint (a killed run may have logged one more)."""
    if not path.exists():
        return
    keep = [
        line
        for line in path.read_text().splitlines()
        if line.strip() and json.loads(line)["epoch"] <= last_epoch + 1
    ]
    path.write_text("".join(line + "\n" for line in keep))


def _finish(
    cfg: TrainConfig,
    store: Path,
    split: str,
    out: Path,
    model: torch.nn.Module,
    parts: dict[str, list[ClipInfo]],
    best_epoch: int,
    best_val: dict[str, Any],
    recipe: schemas.Recipe,
    fingerprint: str,
    device: torch.device,
    amp: torch.dtype | None,
    info: ddp.DistInfo,
    log: Log,
    stopped_early: bool,
) -> dict[str, Any]:
    """Load the best checkpoint, evaluate the test part once, write the report and plots."""
    paths = RunPaths(out)
    best = load_checkpoint(paths.best)
    load_model_state(ddp.unwrap(model), best["model"], paths.best)
    # The only place the test part is opened.
    test_set = WindowDataset(
        store, parts["test"], cfg.window, train=False, seed=cfg.seed, eval_stride=cfg.eval_stride
    )
    scores = evaluate(
        model, test_set, device=device, amp=amp, batch_size=2 * cfg.batch_size,
        num_workers=cfg.num_workers, info=info,
    )  # fmt: skip
    test = compute_metrics(scores)
    report = {
        "val": best_val,
        "test": test,
        "best_epoch": best_epoch + 1,
        "selection": SELECTION,
        "epochs_run": int(load_checkpoint(paths.last)["epoch"]) + 1,
        "stopped_early": stopped_early,
        "store": str(store),
        "store_fingerprint": fingerprint,
        "split": split,
        "recipe": recipe.to_dict(),
        "run_dir": str(out),
    }
    if info.is_main:
        write_json(out / "report.json", report)
        _write_plots(out, scores, test, log)
        for name in sorted(test["undefined"]):
            log(f"note: test {name} is undefined (only one class present) and reported as null")
        log(
            f"best epoch {best_epoch + 1} (by {SELECTION.split(';')[0]}); test acc "
            f"{test['acc']:.4f} auc {test['auc']:.4f}; report: {out / 'report.json'}"
        )
    return json_safe(report)


def _write_plots(out: Path, scores: ClipScores, metrics: dict[str, Any], log: Log) -> None:
    from trainer.plots import write_all

    try:
        write_all(out / "plots", scores, metrics)
    except Exception as exc:  # a plot must never cost the run its report
        log(f"warning: plots not written ({exc})")


__all__: Sequence[str] = ("SELECTION", "train", "train_step")
