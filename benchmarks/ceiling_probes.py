"""The probes of :mod:`benchmarks.bench_ceiling`: small models told where each cue is.

A probe is the ``tiny`` preset's own first stage of one modality plus a linear layer,
trained per frame with frame labels (1 = this frame carries the manipulation):

- video: :class:`trainer.model.visual.FrameEncoder` (the visual pre-encoder's per-frame
  CNN) → ``Linear(dim, 1)``, on the stored face crops normalised as the trainer does
  (:func:`trainer.inputs.video_for_model`);
- audio: the audio pre-encoder, ``Linear(104, dim)``, → ReLU → ``Linear(dim, 1)``, on
  the stored features normalised per clip and channel as the trainer does
  (:func:`trainer.reader.audio_stats`).

A clip's score is the mean of its ``TOP_K`` highest frame logits: over a whole-clip
fake that is about the clip's mean, and a partial fake's shortest manipulated run
(8 frames in ``hard-partial``) still fills it. Trained on the train part, scored on
the test part (other identities). Everything runs on the CPU in seconds to minutes.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from sklearn.metrics import roc_auc_score
from torch import nn

TOP_K = 8  # frames a clip score averages (the highest logits)
EPOCHS = 3
BATCH = 64
LR = 1e-3
VIDEO_FRAME_STRIDE = 2  # every other frame of a train clip: neighbours are near copies


@dataclass
class ProbeClip:
    """One clip as a probe reads it: per-frame inputs, frame labels and its clip label.

    ``inputs`` ``(T, ...)`` (face crops ``(T, S, S, 3)`` uint8 or audio ``(T, 104)``
    float32, normalised per clip); ``frame_labels`` ``(T,)`` uint8; ``label`` 0 or 1.
    """

    inputs: np.ndarray
    frame_labels: np.ndarray
    label: int


def _video_net(dim: int = 64) -> nn.Module:
    from trainer.config import load_config
    from trainer.model.visual import FrameEncoder

    cfg = load_config("tiny").model
    return nn.Sequential(FrameEncoder(cfg), nn.Linear(cfg.dim, 1))


def _audio_net() -> nn.Module:
    from trainer.config import load_config

    cfg = load_config("tiny").model
    return nn.Sequential(nn.Linear(cfg.audio_channels, cfg.dim), nn.ReLU(), nn.Linear(cfg.dim, 1))


def _video_tensor(frames: np.ndarray) -> torch.Tensor:
    """``(N, S, S, 3)`` uint8 → ``(N, 3, S, S)`` float32, normalised as the trainer does."""
    from trainer.inputs import video_for_model

    batch = torch.from_numpy(np.ascontiguousarray(frames))[None]  # (1, N, S, S, 3)
    return video_for_model(batch, None)[0].transpose(0, 1).contiguous()


def _to_tensor(modality: str, inputs: np.ndarray) -> torch.Tensor:
    if modality == "video":
        return _video_tensor(inputs)
    return torch.from_numpy(np.ascontiguousarray(inputs, dtype=np.float32))


def _training_set(modality: str, clips: list[ProbeClip]) -> tuple[np.ndarray, np.ndarray]:
    """Every train frame's input and label, stacked: ``(N, ...)`` and ``(N,)`` float32."""
    stride = VIDEO_FRAME_STRIDE if modality == "video" else 1
    inputs = np.concatenate([c.inputs[::stride] for c in clips])
    labels = np.concatenate([c.frame_labels[::stride] for c in clips]).astype(np.float32)
    return inputs, labels


def train_probe(modality: str, clips: list[ProbeClip], seed: int = 0) -> nn.Module:
    """A probe of ``modality`` (``video`` or ``audio``) trained on ``clips``' frames."""
    torch.manual_seed(seed)
    net = _video_net() if modality == "video" else _audio_net()
    inputs, labels = _training_set(modality, clips)
    # Frames of the rarer class weigh more, so that partial fakes are not ignored.
    positive = float(labels.mean())
    weight = torch.tensor((1 - positive) / max(positive, 1e-6))
    loss_fn = nn.BCEWithLogitsLoss(pos_weight=weight)
    optimiser = torch.optim.Adam(net.parameters(), lr=LR)
    order_rng = np.random.default_rng(seed)
    net.train()
    for _epoch in range(EPOCHS):
        order = order_rng.permutation(len(labels))
        for first in range(0, len(order), BATCH):
            idx = np.sort(order[first : first + BATCH])
            if len(idx) < 2:  # BatchNorm needs two samples
                continue
            logits = net(_to_tensor(modality, inputs[idx]))[:, 0]
            loss = loss_fn(logits, torch.from_numpy(labels[idx]))
            optimiser.zero_grad()
            loss.backward()
            optimiser.step()
    return net.eval()


@torch.no_grad()
def frame_logits(net: nn.Module, modality: str, clip: ProbeClip) -> np.ndarray:
    """The probe's logit for every frame of ``clip``: ``(T,)`` float32."""
    out = [
        net(_to_tensor(modality, clip.inputs[first : first + 256]))[:, 0]
        for first in range(0, len(clip.inputs), 256)
    ]
    return torch.cat(out).numpy()


def clip_score(logits: np.ndarray) -> float:
    """Mean of the ``TOP_K`` highest frame logits ``(T,)`` (all of them if fewer)."""
    k = min(TOP_K, logits.size)
    return float(np.sort(logits)[-k:].mean())


def _auc(labels: list[int] | np.ndarray, scores: list[float] | np.ndarray) -> float | None:
    labels = np.asarray(labels)
    if labels.min() == labels.max():
        return None
    return round(float(roc_auc_score(labels, scores)), 4)


def probe_ceiling(modality: str, train: list[ProbeClip], test: list[ProbeClip]) -> dict:
    """Train a probe on ``train`` and report its clip and frame AUC on ``test``."""
    net = train_probe(modality, train)
    logits = [frame_logits(net, modality, clip) for clip in test]
    frames = np.concatenate([c.frame_labels for c in test])
    return {
        "clip_auc": _auc([c.label for c in test], [clip_score(x) for x in logits]),
        "frame_auc": _auc(frames, np.concatenate(logits)),
        "train_clips": len(train),
        "test_clips": len(test),
        "train_frames": int(_training_set(modality, train)[1].size),
        "train_fake_frame_share": round(float(_training_set(modality, train)[1].mean()), 4),
        "epochs": EPOCHS,
    }
