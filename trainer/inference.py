"""Inference: window predictions, clip-level evaluation, checkpoints applied to stores and arrays.

A clip's score is the mean of its windows' softmax probabilities (fake = class 1),
per head: audio, video and fused.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import DataLoader, Subset

import schemas
from trainer import distributed as ddp
from trainer.checkpoint import load_checkpoint, load_model_state
from trainer.config import TrainConfig, TrainerError
from trainer.data import WindowDataset, eval_starts, window_arrays
from trainer.inputs import model_inputs
from trainer.metrics import ClipScores, aggregate_windows, compute_metrics, json_safe
from trainer.model import MSCT
from trainer.reader import audio_stats
from trainer.runtime import autocast, autocast_dtype, open_split, resolve_device

Log = Callable[[str], None]


@torch.no_grad()
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
    model.eval()
    idx, probs, embs = [], [], []
    for batch in batches:
        with autocast(device, amp):
            out = model(*model_inputs(batch, device))
        heads = (out.audio_logits, out.video_logits, out.fused_logits)
        p = torch.stack([h.float().softmax(-1)[:, 1] for h in heads], dim=1)
        idx.append(batch["clip_index"].numpy())
        probs.append(p.cpu().numpy())
        embs.append(out.embedding.float().cpu().numpy())
    if not idx:
        return np.zeros(0, np.int64), np.zeros((0, 3), np.float32), np.zeros((0, 0), np.float32)
    return np.concatenate(idx), np.concatenate(probs), np.concatenate(embs)


def evaluate(
    model: torch.nn.Module,
    dataset: WindowDataset,
    *,
    device: torch.device,
    amp: torch.dtype | None = None,
    batch_size: int = 32,
    num_workers: int = 0,
    info: ddp.DistInfo | None = None,
) -> ClipScores:
    """Clip-level scores of an eval-mode dataset.

    With several ranks each evaluates windows ``rank, rank + world, ...`` (no
    padding, so no window counts twice) and the outputs are gathered on all ranks.
    """
    info = info or ddp.DistInfo()
    shard = Subset(dataset, range(info.rank, len(dataset), info.world_size))
    # A private generator for the worker seed: evaluating leaves the global RNG alone.
    loader = DataLoader(
        shard,
        batch_size=batch_size,
        shuffle=False,
        num_workers=num_workers,
        generator=torch.Generator(),
    )
    local = predict_windows(ddp.unwrap(model), loader, device, amp)
    gathered = ddp.gather_objects(local, info)
    clip_index = np.concatenate([g[0] for g in gathered])
    prob = np.concatenate([g[1] for g in gathered if len(g[1])])
    emb = np.concatenate([g[2] for g in gathered if len(g[2])])
    clips = dataset.clips
    clip_prob, counts = aggregate_windows(clip_index, prob, len(clips))
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
    )


def model_from_checkpoint(path: str | Path) -> tuple[MSCT, dict[str, Any], TrainConfig]:
    """An eval-mode model on CPU, the checkpoint dict and its config."""
    ckpt = load_checkpoint(path)
    try:
        cfg = TrainConfig.from_dict(ckpt["config"])
    except TrainerError as exc:
        raise TrainerError(f"checkpoint {path} has an invalid config: {exc}") from None
    model = MSCT(cfg.model)
    load_model_state(model, ckpt["model"], path)
    model.eval()
    return model, ckpt, cfg


def evaluate_checkpoint(
    path: str | Path, store: Path, split: str = "default", part: str = "test", log: Log = print
) -> dict[str, Any]:
    """Metrics of a checkpoint on one part (``train``/``val``/``test``) of a store's split."""
    if part not in schemas.SPLITS:
        raise TrainerError(f"part must be one of {', '.join(schemas.SPLITS)}, not {part!r}")
    model, ckpt, cfg = model_from_checkpoint(path)
    recipe, fingerprint, parts = open_split(Path(store), split)
    trained = schemas.Recipe.from_dict(ckpt["recipe"])
    if trained != recipe:
        raise TrainerError(
            f"store {store} was made with another recipe than the checkpoint's "
            f"({'; '.join(trained.diff(recipe))})"
        )
    if fingerprint != ckpt["store_fingerprint"]:
        log(f"note: store fingerprint {fingerprint} differs from the training store's")
    if not parts[part]:
        raise TrainerError(f"split {split!r} has no {part} clips")
    device = resolve_device(cfg, ddp.DistInfo())
    model.to(device)
    dataset = WindowDataset(
        store, parts[part], cfg.window, train=False, seed=cfg.seed, eval_stride=cfg.eval_stride
    )
    scores = evaluate(
        model,
        dataset,
        device=device,
        amp=autocast_dtype(cfg, device),
        batch_size=2 * cfg.batch_size,
    )
    return json_safe({"part": part, "split": split, **compute_metrics(scores)})


def windows_from_arrays(
    video: np.ndarray, audio: np.ndarray, window: int, stride: int | None = None
) -> dict[str, torch.Tensor]:
    """Eval windows of one in-memory clip, made exactly as ``WindowDataset`` makes them.

    Args:
        video: ``(T, S, S, 3)`` uint8 face crops.
        audio: ``(T, 104)`` audio features.

    Returns:
        A batch: ``audio (N, window, 104)`` normalised, ``video (N, window, S, S, 3)``
        uint8, ``mask (N, window)`` bool, ``clip_index (N,)`` zeros.
    """
    frames = video.shape[0]
    mean, inv_std = audio_stats(audio)
    items = [
        window_arrays(
            video[start : start + window],
            (np.asarray(audio[start : start + window], np.float32) - mean) * inv_std,
            window,
        )
        for start in eval_starts(frames, window, stride or window)
    ]
    v, a, m = (torch.from_numpy(np.stack(parts)) for parts in zip(*items, strict=True))
    return {"audio": a, "video": v, "mask": m, "clip_index": torch.zeros(len(m), dtype=torch.int64)}


def predict_arrays(
    model: torch.nn.Module, cfg: TrainConfig, video: np.ndarray, audio: np.ndarray
) -> dict[str, float]:
    """Fake probabilities ``{"audio", "video", "overall"}`` of one clip (mean over its windows)."""
    batch = windows_from_arrays(video, audio, cfg.window, cfg.eval_stride)
    device = next(model.parameters()).device
    chunks = [
        {k: v[i : i + 2 * cfg.batch_size] for k, v in batch.items()}
        for i in range(0, len(batch["mask"]), 2 * cfg.batch_size)
    ]
    _, prob, _ = predict_windows(model, chunks, device, None)
    mean = prob.mean(axis=0)
    return {"audio": float(mean[0]), "video": float(mean[1]), "overall": float(mean[2])}
