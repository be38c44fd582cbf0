"""A training run: train on ``train``, select the best epoch on ``val``, test once.

:class:`TrainingRun` is one run, in the order :meth:`TrainingRun.run` calls its parts:
:meth:`~TrainingRun.setup`, then per epoch :meth:`~TrainingRun.train_epoch` (the
steps of :func:`trainer.train.step.train_step`, then precise BN),
:meth:`~TrainingRun.validate` and :meth:`~TrainingRun.save_checkpoint`, and at the end
:meth:`~TrainingRun.finish`. The best epoch is chosen by :mod:`trainer.train.selection`. The
test part is not opened until training has finished; then the best checkpoint is
evaluated on it exactly once.

Epochs count from 1 in ``metrics.jsonl``, ``report.json`` and the log; the
checkpoint's ``epoch`` is the 0-based index of the last finished epoch.

Exact resumption: every epoch ends with ``checkpoints/last.pt`` holding the
model, optimizer, scheduler, every rank's RNG states and the
:class:`~trainer.train.state.TrainState`. The data order depends only on ``(seed, epoch)``
(``DistributedSampler``, whose epoch :class:`~trainer.data.dataset.EpochIndices` hands to every
item), and the DataLoaders draw their worker seeds from generators of their own, never
from the global RNG that dropout uses; so a run killed at any point and resumed with
``--resume``, or run with any number of workers, finishes with the same numbers as an
uninterrupted one.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import torch
from torch.utils.data import DataLoader, DistributedSampler

from trainer.config.settings import TrainConfig, TrainerError, save_config
from trainer.data.dataset import EpochIndices, WindowDataset
from trainer.data.detector_store import check_detector_store
from trainer.data.frame_labels import check_frame_labels
from trainer.data.streams import check_streams
from trainer.evaluate.inference import eval_loader, evaluate
from trainer.evaluate.metrics import ClipScores, compute_metrics, json_safe
from trainer.model import build_model
from trainer.train import distributed as ddp
from trainer.train.checkpoint import (
    capture_rng,
    load_checkpoint,
    load_for_resume,
    load_model_state,
    restore_rng,
)
from trainer.train.checkpoint import save_checkpoint as write_checkpoint
from trainer.train.logs import EpochLog, progress_bar, truncate_metrics
from trainer.train.optim import build_optimizer, build_scheduler
from trainer.train.precise_bn import recalibrate_bn
from trainer.train.run_dir import RUNS_ROOT, RunLock, RunPaths, claim_run_dir, shared_new_run_dir
from trainer.train.runtime import (
    Log,
    autocast_dtype,
    open_split,
    resolve_device,
    seed_everything,
    source_revision,
    write_json,
)
from trainer.train.selection import SELECTION, val_key
from trainer.train.state import TrainState
from trainer.train.step import LossTally, loss_parts, step_forward, train_step


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
    (:func:`trainer.train.runtime.new_run_dir`), on the main rank, whose choice every rank follows.
    Raises :class:`TrainerError` for every user error (store, split, run directory,
    checkpoint, non-finite loss).
    """
    info = ddp.detect()
    device = resolve_device(cfg, info)
    ddp.init(info, device)
    try:
        if out is None and resume:
            raise TrainerError("--resume needs the --out of the run to continue")
        training = TrainingRun(
            cfg, Path(store), split, Path(out) if out is not None else None,
            resume=resume, log=log, runs_root=runs_root, info=info, device=device,
        )  # fmt: skip
        return training.run()
    finally:
        ddp.shutdown()


class TrainingRun:
    """One training run of ``cfg`` on ``split`` of ``store``, written to ``out`` (None: a
    fresh directory under ``runs_root``); every rank of a distributed job runs its own."""

    def __init__(
        self,
        cfg: TrainConfig,
        store: Path,
        split: str,
        out: Path | None,
        *,
        resume: bool,
        log: Log,
        runs_root: Path,
        info: ddp.DistInfo,
        device: torch.device,
    ) -> None:
        self.cfg, self.store, self.split, self.out_arg = cfg, store, split, out
        self.resume, self.log, self.runs_root = resume, log, runs_root
        self.info, self.device = info, device
        self.amp = autocast_dtype(cfg, device)
        self.state = TrainState()
        self.stopped_early = False
        self.epoch_log: EpochLog | None = None  # the main rank's, once set up
        self.lock: RunLock | None = None  # the main rank's hold on the run directory

    def run(self) -> dict[str, Any]:
        """Set up, train every remaining epoch, then test the best one; the report."""
        try:
            self.setup()
            try:
                self.fit()
            finally:
                if self.epoch_log is not None:
                    self.epoch_log.close()
            ddp.barrier(self.info)
            return self.finish()
        finally:
            if self.lock is not None:
                self.lock.release()

    # ----------------------------------------------------------------------- setup

    def setup(self) -> None:
        """Open the split, check the run directory, build the model, data, optimiser and
        scheduler, and restore the checkpoint when resuming."""
        cfg, info = self.cfg, self.info
        self.store_recipe, self.fingerprint, self.parts = open_split(self.store, self.split)
        # All three parts, test included, before anything is trained: a run that could only
        # fail after its last epoch would waste the whole training.
        for part in ("train", "val", "test"):
            if not self.parts[part]:
                raise TrainerError(f"split {self.split!r} has no {part} clips")
        # The store's crop size needs no model setting: the visual trunk pools globally.
        # Its streams must hold those read (data.streams and the model's visual input),
        # checked before anything is made.
        check_streams(self.store_recipe, cfg.streams, cfg.model.visual_input, self.store)
        check_detector_store(cfg.model, self.store_recipe, self.store, cfg.window)
        if cfg.model.frame_head:
            check_frame_labels(self.parts["train"], self.store, "model.frame_head=true")
        out = self.out_arg
        if out is None:
            out = shared_new_run_dir(self.runs_root, info)
        self.paths = RunPaths(out)
        self._claim_run_dir()
        ckpt = load_for_resume(self.paths.last, self.fingerprint, cfg) if self.resume else None

        seed_everything(cfg.seed)
        model = build_model(cfg.model).to(self.device)
        if info.is_main:
            with _writing(out):
                (out / "checkpoints").mkdir(parents=True, exist_ok=True)
                self._write_meta(sum(p.numel() for p in model.parameters()))
        # Each clip appears windows_per_clip times per epoch; every copy draws its own
        # random window (the window depends on the item index), so short datasets still
        # give the optimiser enough steps per epoch.
        train_clips = self.parts["train"] * cfg.windows_per_clip
        # A frame head learns the train clips' frame labels: each must have them.
        train_set = WindowDataset(
            self.store, train_clips, cfg.window, train=True, seed=cfg.seed,
            visual_input=cfg.model.visual_input, streams=cfg.streams,
            frame_labels=cfg.model.frame_head,
        )  # fmt: skip
        self.val_set = self._eval_set("val")
        # Built once: with workers, they start at the first validation and live for the run.
        self.val_loader = eval_loader(
            self.val_set, batch_size=2 * cfg.batch_size, num_workers=cfg.num_workers,
            info=info, persistent=True,
        )  # fmt: skip
        self.loader = self._train_loader(train_set)
        self.optimizer = build_optimizer(cfg, model)
        self.scheduler = build_scheduler(cfg, self.optimizer, len(self.loader))
        if ckpt is not None:
            self._restore(model, ckpt)
        else:
            # Different dropout masks per rank; DDP broadcasts rank 0's initial weights anyway.
            torch.manual_seed(cfg.seed + 1000 * info.rank)
        self.model = ddp.wrap(model, info, self.device)
        self.forward = step_forward(cfg)  # the model and loss, compiled with cfg.compile
        if info.is_main:
            with _writing(out):
                self.epoch_log = EpochLog(self.paths.metrics, self.paths.tb, self.state.epoch + 1)
        self.interactive = info.is_main and sys.stderr.isatty()

    def _claim_run_dir(self) -> None:
        """The main rank checks ``--out`` and takes its lock (:func:`claim_run_dir`); every
        rank gets its verdict, so that all refuse together."""
        refusal = None
        if self.info.is_main:
            try:
                self.lock = claim_run_dir(self.paths, self.resume, self.store)
            except TrainerError as exc:
                refusal = str(exc)
        refusal = ddp.broadcast_object(refusal, self.info)
        if refusal is not None:
            raise TrainerError(refusal)

    def _train_loader(self, train_set: WindowDataset) -> DataLoader:
        """Shuffled by ``(seed, epoch)`` over this rank's share of ``train_set``."""
        cfg, info = self.cfg, self.info
        self.sampler = EpochIndices(
            DistributedSampler(
                train_set, num_replicas=info.world_size, rank=info.rank, shuffle=True, seed=cfg.seed
            )
        )
        return DataLoader(
            train_set,
            batch_size=cfg.batch_size,
            sampler=self.sampler,
            num_workers=cfg.num_workers,
            # Workers live for the whole run: their readers keep every clip they have
            # checked (and up to thousands open), so only the first epoch pays for that.
            persistent_workers=cfg.num_workers > 0,
            # Its own generator: making an iterator draws a worker seed, which must not come
            # from the global RNG that dropout uses, or the numbers would depend on
            # num_workers and on where a run was resumed. Items draw nothing from it.
            generator=torch.Generator().manual_seed(cfg.seed),
            pin_memory=self.device.type == "cuda",
            drop_last=len(self.sampler) > cfg.batch_size,  # a batch of one would upset batch norm
        )

    def _eval_set(self, part: str) -> WindowDataset:
        """Every eval window of the split's ``part`` (``val`` or ``test``)."""
        cfg = self.cfg
        return WindowDataset(
            self.store, self.parts[part], cfg.window, train=False, seed=cfg.seed,
            eval_stride=cfg.eval_stride, visual_input=cfg.model.visual_input,
        )  # fmt: skip

    def _restore(self, model: torch.nn.Module, ckpt: dict[str, Any]) -> None:
        """Continue from ``ckpt`` (``last.pt``): weights, optimiser, scheduler, state, RNG."""
        load_model_state(model, ckpt["model"], self.paths.last)
        self.optimizer.load_state_dict(ckpt["optimizer"])
        self.scheduler.load_state_dict(ckpt["scheduler"])
        self.state = TrainState.from_checkpoint(ckpt)
        rngs = ckpt["rng"]
        restore_rng(rngs[self.info.rank] if len(rngs) == self.info.world_size else rngs[0])
        if self.info.is_main:
            truncate_metrics(self.paths.metrics, self.state.epoch)
            self.log(
                f"resuming {self.paths.out} at epoch {self.state.epoch + 2} "
                f"(best so far: {self.state.best_epoch + 1})"
            )

    def _write_meta(self, parameters: int) -> None:
        """``meta.json`` (provenance of the run) and ``config.yaml``."""
        from schemas.recipe import software_version

        meta = {
            **source_revision(),  # git_revision and git_dirty of the trainer's own checkout
            "store": str(self.store.resolve()),
            "store_fingerprint": self.fingerprint,
            "split": self.split,
            "software_version": software_version(),
            "torch_version": torch.__version__,
            "python_version": sys.version.split()[0],
            "device": str(self.device),
            "world_size": self.info.world_size,
            "parameters": parameters,
            "selection": SELECTION,
            "started": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        }
        write_json(self.paths.out / "meta.json", meta)
        save_config(self.cfg, self.paths.out / "config.yaml")

    # ----------------------------------------------------------------------- epochs

    def fit(self) -> None:
        """Every remaining epoch: train, validate, log and checkpoint; stop early after
        ``cfg.patience`` epochs without improvement."""
        cfg, main = self.cfg, self.info.is_main
        for epoch in range(self.state.epoch + 1, cfg.epochs):
            t0 = time.perf_counter()
            train_loss = self.train_epoch(epoch)
            val = self.validate()
            improved = self.state.end_epoch(epoch, val_key(val), val)
            lr = self.optimizer.param_groups[0]["lr"]
            seconds = time.perf_counter() - t0
            rngs = ddp.gather_objects(capture_rng(), self.info)  # a collective: every rank
            if main:
                assert self.epoch_log is not None
                # The metrics line before the checkpoint: resuming truncates what follows it.
                self.epoch_log.write(epoch, train_loss, val, lr, self.state.best_epoch, seconds)
                self.save_checkpoint(improved, rngs)
                self.log(
                    f"epoch {epoch + 1}/{cfg.epochs}  loss {train_loss['total']:.4f}  "
                    f"val acc {val['acc']:.4f}  val auc {val['auc']:.4f}  lr {lr:.2e}  "
                    f"{seconds:.1f}s{'  *best*' if improved else ''}"
                )
            if self.state.out_of_patience(cfg.patience):
                self.stopped_early = True
                if main:
                    self.log(
                        f"no val improvement for {self.state.bad_epochs} epochs: stopping early"
                    )
                break

    def train_epoch(self, epoch: int) -> dict[str, float]:
        """One pass over the training loader (0-based ``epoch``), then precise BN; the mean
        of each loss part (:func:`~trainer.train.step.loss_parts`) over the epoch's windows of all
        ranks.

        The losses stay on the device (:class:`~trainer.train.step.LossTally`) and are read every
        ``cfg.sync_every`` steps and after the last step, so an epoch of S steps makes
        ⌈S / sync_every⌉ host reads; a read raises on a non-finite loss, naming its first
        step, before precise BN, validation or the checkpoint can use the spoilt weights.
        """
        self.sampler.set_epoch(epoch)  # the items' windows follow the epoch their index carries
        self.model.train()
        tally = LossTally(loss_parts(self.cfg), self.device, epoch, self.info)
        every, total = self.cfg.sync_every, len(self.loader)
        with progress_bar(self.interactive, epoch + 1) as progress:
            task = progress.add_task("train", total=total, loss=float("nan"))
            for step, batch in enumerate(self.loader):
                train_step(
                    self.model, batch, self.optimizer, self.cfg, self.device, self.amp,
                    scheduler=self.scheduler, tally=tally, forward=self.forward,
                )  # fmt: skip
                due = (step + 1) % every == 0 or step + 1 == total
                progress.update(task, advance=1, **({"loss": tally.read()["total"]} if due else {}))
        if tally.pending:  # a loader that ended before its length said
            tally.read()
        recalibrate_bn(
            self.model, self.loader, self.cfg.precise_bn, self.device, self.amp, self.info
        )
        totals = ddp.all_sum(tally.sums(), self.info)
        n = max(totals[-1], 1.0)
        return {k: totals[i] / n for i, k in enumerate(tally.parts)}

    def validate(self) -> dict[str, Any]:
        """Clip-level metrics (:func:`trainer.evaluate.metrics.compute_metrics`) of the val part,
        through the run's one val loader (its workers start once per run)."""
        return compute_metrics(self._evaluate(self.val_set, self.val_loader))

    def _evaluate(self, dataset: WindowDataset, loader: DataLoader | None = None) -> ClipScores:
        cfg = self.cfg
        return evaluate(
            self.model, dataset, device=self.device, amp=self.amp, batch_size=2 * cfg.batch_size,
            num_workers=cfg.num_workers, info=self.info, loader=loader,
            aggregate=cfg.eval.aggregate,
        )  # fmt: skip

    def save_checkpoint(self, improved: bool, rngs: list[dict[str, Any]]) -> None:
        """Write ``last.pt`` (and ``best.pt`` when the epoch ``improved``) on the main rank:
        model, optimiser, scheduler, :class:`TrainState`, every rank's RNG states ``rngs``
        and where the run came from."""
        state = {
            "model": ddp.unwrap(self.model).state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict(),
            **self.state.to_checkpoint(),
            "rng": rngs,
            "config": self.cfg.to_dict(),
            "store_fingerprint": self.fingerprint,
            "recipe": self.store_recipe.to_dict(),
            "split": self.split,
            # What `mscct-train eval` needs to refuse scoring clips the model trained on,
            # and to find the split when evaluating on another store.
            "store": str(self.store.resolve()),
            "train_clips": [c.clip_id for c in self.parts["train"]],
        }
        with _writing(self.paths.out):
            if improved:
                write_checkpoint(self.paths.best, state)
            write_checkpoint(self.paths.last, state)

    # ----------------------------------------------------------------------- the end

    def finish(self) -> dict[str, Any]:
        """Load the best checkpoint, evaluate the test part once, write the report and plots."""
        best = load_checkpoint(self.paths.best)
        load_model_state(ddp.unwrap(self.model), best["model"], self.paths.best)
        scores = self._evaluate(self._eval_set("test"))  # the only place test is opened
        test = compute_metrics(scores)
        out = self.paths.out
        report = {
            "val": self.state.best_val,
            "test": test,
            "detector": self.cfg.model.name,
            "best_epoch": self.state.best_epoch + 1,
            "selection": SELECTION,
            "epochs_run": self.state.epoch + 1,
            "stopped_early": self.stopped_early,
            "store": str(self.store),
            "store_fingerprint": self.fingerprint,
            "split": self.split,
            "recipe": self.store_recipe.to_dict(),
            "run_dir": str(out),
        }
        if self.info.is_main:
            with _writing(out):
                write_json(self.paths.report, report)
            _write_plots(out, scores, test, self.log)
            for name in sorted(test["undefined"]):
                self.log(
                    f"note: test {name} is undefined (only one class present) and reported as null"
                )
            self.log(
                f"best epoch {self.state.best_epoch + 1} (by {SELECTION.split(';')[0]}); test acc "
                f"{test['acc']:.4f} auc {test['auc']:.4f}; report: {self.paths.report}"
            )
        return json_safe(report)


@contextmanager
def _writing(out: Path) -> Iterator[None]:
    """A file system error while writing the run directory (a full disk, a quota, no
    permission) as one line; the checkpoints already written stay intact (atomic writes)."""
    try:
        yield
    except OSError as exc:
        raise TrainerError(
            f"cannot write the run directory {out}: {exc.strerror or exc}; free space or pass "
            "another --out (--resume continues from the last checkpoint written)"
        ) from None


def _write_plots(out: Path, scores: ClipScores, metrics: dict[str, Any], log: Log) -> None:
    from trainer.evaluate.plots import write_all

    try:
        write_all(out / "plots", scores, metrics)
    except Exception as exc:  # a plot must never cost the run its report
        log(f"warning: plots not written ({exc})")


__all__: Sequence[str] = ("TrainingRun", "train")
