"""Inference: window predictions, clip-level evaluation, checkpoints applied to stores and arrays.

A clip's score is the mean of its windows' softmax probabilities (fake = class 1),
per head: audio, video and fused. Where the store has frame labels, ``eval`` also
scores frames and segments (:mod:`trainer.evaluate.frame_eval`, rules in :mod:`trainer.evaluate.localisation`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import DataLoader, Subset

import schemas
from trainer.config.settings import TrainConfig, TrainerError
from trainer.data.dataset import ClipInfo, WindowDataset, eval_starts, window_arrays
from trainer.data.detector_store import check_detector_store
from trainer.data.face_valid import face_flags
from trainer.data.inputs import model_inputs
from trainer.data.reader import audio_stats
from trainer.data.streams import check_visual_input
from trainer.evaluate.clip_aggregate import AGGREGATES, aggregate_probs
from trainer.evaluate.eval_clips import all_eval_clips, check_held_out, eval_clips, trained_clip_ids
from trainer.evaluate.frame_eval import WindowOutputs, frame_report
from trainer.evaluate.metrics import ClipScores, aggregate_windows, compute_metrics, json_safe
from trainer.model import build_model
from trainer.train import distributed as ddp
from trainer.train.checkpoint import load_checkpoint, load_model_state
from trainer.train.runtime import Log, autocast, autocast_dtype, resolve_device


@torch.no_grad()
def predict_window_outputs(
    model: torch.nn.Module,
    batches: Any,
    device: torch.device,
    amp: torch.dtype | None,
) -> WindowOutputs:
    """Run the model over batches of window items, in their order.

    Returns each window's clip index, fake probabilities of the audio, video and fused
    heads ``(W, 3)``, embedding ``(W, 2C)`` and, with a frame head, its per-frame fake
    probabilities ``(W, window)`` (sigmoid of the frame logits).
    """
    model.eval()
    idx, probs, embs, frames = [], [], [], []
    for batch in batches:
        with autocast(device, amp):
            out = model(*model_inputs(batch, device))
        heads = (out.audio_logits, out.video_logits, out.fused_logits)
        p = torch.stack([h.float().softmax(-1)[:, 1] for h in heads], dim=1)
        idx.append(batch["clip_index"].numpy())
        probs.append(p.cpu().numpy())
        embs.append(out.embedding.float().cpu().numpy())
        if out.frame_logits is not None:
            frames.append(out.frame_logits.float().sigmoid().cpu().numpy())
    if not idx:
        empty = np.zeros((0, 0), np.float32)
        return WindowOutputs(np.zeros(0, np.int64), np.zeros((0, 3), np.float32), empty, None)
    frame_prob = np.concatenate(frames) if frames else None
    return WindowOutputs(
        np.concatenate(idx), np.concatenate(probs), np.concatenate(embs), frame_prob
    )


def predict_windows(
    model: torch.nn.Module,
    batches: Any,
    device: torch.device,
    amp: torch.dtype | None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Run the model over batches of window items.

    Returns ``clip_index (W,)``, ``prob (W, 3)`` fake probabilities of the audio,
    video and fused heads, and ``embedding (W, 2C)``.
    """
    out = predict_window_outputs(model, batches, device, amp)
    return out.clip_index, out.prob, out.embedding


def eval_loader(
    dataset: WindowDataset,
    *,
    batch_size: int,
    num_workers: int,
    info: ddp.DistInfo | None = None,
    persistent: bool = False,
) -> DataLoader:
    """This rank's share of an eval-mode dataset, in order: windows ``rank, rank + world,
    ...`` (no padding, so no window counts twice). ``persistent`` keeps the workers alive
    between passes, so a loader used every epoch starts them once per run."""
    info = info or ddp.DistInfo()
    shard = Subset(dataset, range(info.rank, len(dataset), info.world_size))
    # A private generator for the worker seed: evaluating leaves the global RNG alone.
    return DataLoader(
        shard,
        batch_size=batch_size,
        shuffle=False,
        num_workers=num_workers,
        persistent_workers=persistent and num_workers > 0,
        generator=torch.Generator(),
    )


def evaluate(
    model: torch.nn.Module,
    dataset: WindowDataset,
    *,
    device: torch.device,
    amp: torch.dtype | None = None,
    batch_size: int = 32,
    num_workers: int = 0,
    info: ddp.DistInfo | None = None,
    loader: DataLoader | None = None,
    aggregate: str = "mean",
) -> ClipScores:
    """Clip-level scores of an eval-mode dataset.

    With several ranks each evaluates its share of the windows (:func:`eval_loader`; pass
    ``loader``, made by it for ``dataset``, to reuse one across calls) and the outputs are
    gathered on all ranks. The scores' ``window_counts`` say how many windows each clip's
    score aggregates (by ``aggregate``, :mod:`trainer.evaluate.clip_aggregate`):
    ``len(eval_starts(...))`` of the clip, whatever the number of ranks.
    """
    info = info or ddp.DistInfo()
    if loader is None:
        loader = eval_loader(dataset, batch_size=batch_size, num_workers=num_workers, info=info)
    local = predict_windows(ddp.unwrap(model), loader, device, amp)
    gathered = ddp.gather_objects(local, info)
    clip_index = np.concatenate([g[0] for g in gathered])
    prob = np.concatenate([g[1] for g in gathered if len(g[1])])
    emb = np.concatenate([g[2] for g in gathered if len(g[2])])
    return clip_scores(dataset.clips, clip_index, prob, emb, aggregate)


def clip_scores(
    clips: tuple[ClipInfo, ...],
    clip_index: np.ndarray,
    prob: np.ndarray,
    emb: np.ndarray,
    aggregate: str = "mean",
) -> ClipScores:
    """Clip-level scores from window outputs: ``clip_index (W,)``, ``prob (W, 3)``,
    ``emb (W, 2C)``; each clip's score aggregates its windows' by ``aggregate``
    (:mod:`trainer.evaluate.clip_aggregate`), its embedding is their mean."""
    clip_prob, counts = aggregate_probs(clip_index, prob, len(clips), aggregate)
    clip_emb, _ = aggregate_windows(clip_index, emb, len(clips))
    if np.any(counts == 0):
        raise TrainerError("evaluation lost windows: some clips got no prediction")
    return ClipScores(
        prob={"audio": clip_prob[:, 0], "video": clip_prob[:, 1], "fused": clip_prob[:, 2]},
        embedding=clip_emb,
        label=np.array([c.label for c in clips]),
        audio_label=np.array([c.audio_label for c in clips]),
        video_label=np.array([c.video_label for c in clips]),
        categories=[c.category for c in clips],
        clip_ids=[c.clip_id for c in clips],
        window_counts=counts,
    )


def model_from_checkpoint(
    path: str | Path,
) -> tuple[torch.nn.Module, dict[str, Any], TrainConfig]:
    """An eval-mode model on CPU (its detector's, ``model.name``; ``msct`` for a checkpoint
    from before the registry), the checkpoint dict and its config."""
    ckpt = load_checkpoint(path)
    try:
        cfg = TrainConfig.from_stored(ckpt["config"])
    except TrainerError as exc:
        raise TrainerError(f"checkpoint {path} has an invalid config: {exc}") from None
    model = build_model(cfg.model)
    load_model_state(model, ckpt["model"], path)
    model.eval()
    return model, ckpt, cfg


#: Recipe fields that fix what a checkpoint's inputs mean, and must be the training
#: store's: the audio features (kind of the 104 channels, sample rate, and the frame
#: rate, which sets the audio hop and the time a window spans) and the crop size. Every
#: other field (trim, layout, dtype, face tracking, limits, landmarks, streams) may
#: differ: another dataset's store is made with its own. The visual stream the model
#: reads is checked separately (:func:`trainer.data.streams.check_visual_input`).
MUST_MATCH = ("features", "sample_rate", "fps", "crop_size")


def check_recipe(trained: schemas.Recipe, recipe: schemas.Recipe, store: Path, log: Log) -> None:
    """Refuse a store whose tensors mean something else than the checkpoint's inputs,
    naming each difference in one line; note the tolerated ones."""
    a, b = trained.to_dict(), recipe.to_dict()
    refused = [f"{k} {a[k]} (checkpoint) vs {b[k]} (store)" for k in MUST_MATCH if a[k] != b[k]]
    if refused:
        raise TrainerError(
            f"recipe mismatch: {'; '.join(refused)}; store {store} cannot be scored by this "
            "checkpoint: ingest the dataset with the checkpoint's "
            f"{', '.join(k for k in MUST_MATCH if a[k] != b[k])}"
        )
    changed = [k for k in a if a[k] != b[k]]
    if changed:
        log(f"note: store {store} differs from the training store in {', '.join(changed)}")


def evaluate_checkpoint(
    path: str | Path,
    store: Path,
    split: str = "default",
    part: str = "test",
    log: Log = print,
    *,
    force: bool = False,
    all_clips: bool = False,
    aggregate: str | None = None,
    split_store: Path | None = None,
) -> dict[str, Any]:
    """Metrics of a checkpoint on one part (``train``/``val``/``test``) of a split, or
    with ``all_clips`` on every ok, labelled clip of ``store`` (no split needed).

    ``store`` may be another store than the training store, of the same dataset or
    another, whose recipe agrees with the checkpoint's in :data:`MUST_MATCH`
    (:func:`check_recipe`); when it has no split ``split``, that of ``split_store``
    (never a path read from the checkpoint) is used, clips matched by clip id
    (:func:`eval_clips`). Clips the checkpoint was
    trained on (by clip id) are refused unless ``force`` (:func:`check_held_out`).

    The report is :func:`trainer.evaluate.metrics.compute_metrics`'s (as training's), provenance,
    ``per_dataset`` (the main scores of each dataset's clips) and, where clips have
    frame labels, ``frames`` (:func:`trainer.evaluate.frame_eval.frame_report`).

    Clip scores aggregate window scores by ``aggregate`` (``mean``, ``max``, ``logsumexp``;
    None: the checkpoint's ``eval.aggregate``), which the report records as ``aggregate``;
    ``"all"`` scores with the checkpoint's and adds ``by_aggregate``, the metrics of every
    aggregation of the same window scores.
    """
    check_aggregate(aggregate)
    if part not in schemas.SPLITS:
        raise TrainerError(f"part must be one of {', '.join(schemas.SPLITS)}, not {part!r}")
    store = Path(store)
    model, ckpt, cfg = model_from_checkpoint(path)
    recipe, fingerprint = checked_store(ckpt, cfg, store, log)
    if all_clips:
        chosen = all_eval_clips(store, log)
    else:
        chosen = eval_clips(ckpt, store, split, part, log, split_store)
    if not chosen.clips:
        raise TrainerError(f"split {split!r} has no {part} clips")
    trained_on = check_held_out(
        chosen.clips, trained_clip_ids(ckpt, store, fingerprint), force, log
    )
    dataset, outputs = _checkpoint_window_outputs(model, cfg, store, chosen.clips)
    how = cfg.eval.aggregate if aggregate in (None, "all") else aggregate
    scores = clip_scores(dataset.clips, outputs.clip_index, outputs.prob, outputs.embedding, how)
    provenance = {
        "part": "all" if all_clips else part,
        "split": None if all_clips else split,
        "store": str(store),
        "split_store": None if all_clips else str(chosen.split_store),
        "unavailable": len(chosen.unavailable),
        "trained_on": len(trained_on),
    }
    report = {**provenance, "aggregate": how, **compute_metrics(scores)}
    report["per_dataset"] = per_dataset(scores, dataset)
    if aggregate == "all":
        report["by_aggregate"] = by_aggregate(dataset.clips, outputs)
    frames = frame_report(dataset, outputs, recipe.fps)
    if frames is not None:
        report["frames"] = frames
        if frames["note"]:
            log(f"note: {frames['note']}")
    return json_safe(report)


def _checkpoint_window_outputs(
    model: torch.nn.Module, cfg: TrainConfig, store: Path, clips: Sequence[ClipInfo]
) -> tuple[WindowDataset, WindowOutputs]:
    """Run a checkpoint's model (moved to the device ``cfg`` asks for) over every eval
    window of ``clips`` in ``store``, in one process and in window order: frame scores
    need each window's place.

    Returns:
        The eval-mode dataset and its window outputs: clip index ``(W,)``, fake
        probabilities of the audio, video and fused heads ``(W, 3)``, embedding
        ``(W, 2C)`` and, with a frame head, per-frame probabilities ``(W, window)``.
    """
    device = resolve_device(cfg, ddp.DistInfo())
    model.to(device)
    dataset = WindowDataset(
        store, clips, cfg.window, train=False, seed=cfg.seed, eval_stride=cfg.eval_stride,
        visual_input=cfg.model.visual_input,
    )  # fmt: skip
    # A private generator for the loader's seed, as in evaluate().
    loader = DataLoader(
        dataset, batch_size=2 * cfg.batch_size, shuffle=False, generator=torch.Generator()
    )
    return dataset, predict_window_outputs(model, loader, device, autocast_dtype(cfg, device))


def check_aggregate(aggregate: str | None) -> None:
    """Refuse an ``eval --aggregate`` that names no aggregation (None: the checkpoint's)."""
    if aggregate is not None and aggregate not in (*AGGREGATES, "all"):
        raise TrainerError(
            f"--aggregate must be one of {', '.join(AGGREGATES)} or all, not {aggregate!r}"
        )


def by_aggregate(clips: tuple[ClipInfo, ...], outputs: WindowOutputs) -> dict[str, dict[str, Any]]:
    """The metrics of every window-to-clip aggregation of the same window outputs."""
    windows = (outputs.clip_index, outputs.prob, outputs.embedding)
    return {name: compute_metrics(clip_scores(clips, *windows, name)) for name in AGGREGATES}


def checked_store(
    ckpt: dict[str, Any], cfg: TrainConfig, store: Path, log: Log
) -> tuple[schemas.Recipe, str]:
    """The recipe and fingerprint of a store the checkpoint can score (else one line)."""
    try:
        recipe = schemas.open_store(store).recipe
        fingerprint = schemas.store_fingerprint(store)
    except (schemas.StoreError, schemas.SchemaError) as exc:
        raise TrainerError(str(exc)) from None
    check_recipe(schemas.Recipe.from_dict(ckpt["recipe"]), recipe, store, log)
    check_visual_input(recipe, cfg.model.visual_input, store)
    check_detector_store(cfg.model, recipe, store)
    if fingerprint != ckpt["store_fingerprint"]:
        log(f"note: store fingerprint {fingerprint} differs from the training store's")
    return recipe, fingerprint


#: The scores of each dataset's line in an eval report.
DATASET_SCORES = ("n", "acc", "balanced_acc", "auc", "ap", "eer", "audio_auc", "video_auc")


def per_dataset(scores: ClipScores, dataset: WindowDataset) -> dict[str, dict[str, Any]]:
    """The main clip-level scores of the clips of each dataset (manifest ``dataset``)."""
    names = np.array([clip.dataset for clip in dataset.clips])
    out = {}
    for name in sorted(set(names.tolist())):
        keep = names == name
        subset = ClipScores(
            prob={head: p[keep] for head, p in scores.prob.items()},
            embedding=scores.embedding[keep],
            label=scores.label[keep],
            audio_label=scores.audio_label[keep],
            video_label=scores.video_label[keep],
            categories=[c for c, k in zip(scores.categories, keep, strict=True) if k],
            clip_ids=[c for c, k in zip(scores.clip_ids, keep, strict=True) if k],
        )
        metrics = compute_metrics(subset)
        out[name] = {key: metrics[key] for key in DATASET_SCORES}
    return out


def windows_from_arrays(
    video: np.ndarray,
    audio: np.ndarray,
    window: int,
    stride: int | None = None,
    face_valid: np.ndarray | None = None,
) -> dict[str, torch.Tensor]:
    """Eval windows of one in-memory clip, made exactly as ``WindowDataset`` makes them.

    Args:
        video: ``(T, S, S, 3)`` uint8 face crops, or ``(T, 88, 88)`` mouth crops for a
            mouth model (:func:`trainer.data.streams.clip_stream` makes either).
        audio: ``(T, 104)`` audio features.
        face_valid: ``(T,)`` 1 where the frame has a face (``ClipTensors.face_valid``);
            a frame without one is left out of the mask, as :mod:`trainer.data.face_valid`
            leaves it out of a stored clip's. None: every frame has a face.

    Returns:
        A batch: ``audio (N, window, 104)`` normalised, ``video (N, window, *video.shape[1:])``
        uint8, ``mask (N, window)`` bool, ``clip_index (N,)`` zeros.
    """
    frames = video.shape[0]
    mean, inv_std = audio_stats(audio)
    starts = eval_starts(frames, window, stride or window)
    items = [
        window_arrays(
            video[start : start + window],
            (np.asarray(audio[start : start + window], np.float32) - mean) * inv_std,
            window,
        )
        for start in starts
    ]
    v, a, m = (torch.from_numpy(np.stack(parts)) for parts in zip(*items, strict=True))
    if face_valid is not None:  # padding is out of the mask already (window_arrays)
        m &= torch.from_numpy(face_flags(face_valid, starts, window))
    return {"audio": a, "video": v, "mask": m, "clip_index": torch.zeros(len(m), dtype=torch.int64)}


@dataclass(frozen=True)
class WindowScores:
    """The per-window fake probabilities of one clip, as ``predict`` computes them."""

    starts: np.ndarray  # (W,) first frame of each window
    window: int  # frames per window (the last window of a short clip is padded)
    num_frames: int  # T of the clip
    prob: np.ndarray  # (W, 3) fake probability of the audio, video and fused heads

    def mean(self) -> dict[str, float]:
        """The clip's scores ``{"audio", "video", "overall"}``: the mean over its windows."""
        mean = self.prob.mean(axis=0)
        return {"audio": float(mean[0]), "video": float(mean[1]), "overall": float(mean[2])}

    def clip(self, aggregate: str = "mean") -> dict[str, float]:
        """The clip's scores ``{"audio", "video", "overall"}``, its windows' aggregated by
        ``aggregate`` (:mod:`trainer.evaluate.clip_aggregate`)."""
        if aggregate == "mean":
            return self.mean()
        one = np.zeros(len(self.prob), np.int64)  # every window belongs to clip 0
        p = aggregate_probs(one, self.prob, 1, aggregate)[0][0]
        return {"audio": float(p[0]), "video": float(p[1]), "overall": float(p[2])}


def window_scores(
    model: torch.nn.Module,
    cfg: TrainConfig,
    video: np.ndarray,
    audio: np.ndarray,
    face_valid: np.ndarray | None = None,
) -> WindowScores:
    """Score every eval window of one in-memory clip (see :func:`windows_from_arrays`;
    ``face_valid (T,)``: frames without a face are masked, None: none)."""
    stride = cfg.eval_stride or cfg.window
    batch = windows_from_arrays(video, audio, cfg.window, stride, face_valid)
    device = next(model.parameters()).device
    chunks = [
        {k: v[i : i + 2 * cfg.batch_size] for k, v in batch.items()}
        for i in range(0, len(batch["mask"]), 2 * cfg.batch_size)
    ]
    _, prob, _ = predict_windows(model, chunks, device, None)
    starts = np.asarray(eval_starts(video.shape[0], cfg.window, stride), np.int64)
    return WindowScores(starts, cfg.window, video.shape[0], prob)


def predict_arrays(
    model: torch.nn.Module,
    cfg: TrainConfig,
    video: np.ndarray,
    audio: np.ndarray,
    face_valid: np.ndarray | None = None,
) -> dict[str, float]:
    """Fake probabilities ``{"audio", "video", "overall"}`` of one clip (its windows'
    aggregated by ``cfg.eval.aggregate``; frames without a face masked)."""
    return window_scores(model, cfg, video, audio, face_valid).clip(cfg.eval.aggregate)
