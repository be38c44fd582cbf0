"""The probes of :mod:`benchmarks.bench_ceiling`: small models told where each cue is.

A probe is the ``tiny`` preset's own first stage of one modality plus a linear layer,
trained per frame with frame labels (1 = this frame carries the manipulation):

- video: :class:`trainer.model.visual.FrameEncoder` (the visual pre-encoder's per-frame
  CNN) → ``Linear(dim, 1)``, on the stored face crops normalised as the trainer does
  (:func:`trainer.data.inputs.video_for_model`);
- audio: the audio pre-encoder, ``Linear(104, dim)``, on every frame of the model's
  window (``AUDIO_WINDOW`` = the ``tiny`` preset's 16 frames) centred on the frame, →
  ReLU → one ``Linear(16 * dim, 1)``, on the stored features normalised per clip and
  channel as the trainer does (:func:`trainer.data.reader.audio_stats`). Per-clip
  normalisation turns the voice conversion into a pattern over time, which one frame
  alone hardly shows: the first measurement, a per-frame probe (``Linear(dim, 1)`` on one
  frame, 3 epochs), reached clip AUC 0.87 on the hard store where the ``tiny`` model had
  reached 0.96 ± 0.02 on the same audio cue, so it was no ceiling
  (``benchmarks/results/ceiling_hard.json`` records both).

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
EPOCHS = {"video": 3, "audio": 8}  # audio's probe is tiny: more passes cost seconds
AUDIO_WINDOW = 16  # frames the audio probe sees, the tiny preset's window
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
    from trainer.config.settings import load_config
    from trainer.model.visual import FrameEncoder

    cfg = load_config("tiny").model
    return nn.Sequential(FrameEncoder(cfg), nn.Linear(cfg.dim, 1))


def _audio_net() -> nn.Module:
    """``(N, AUDIO_WINDOW, 104)`` windows → ``(N, 1)`` logits of their centre frames."""
    from trainer.config.settings import load_config

    cfg = load_config("tiny").model
    return nn.Sequential(
        nn.Linear(cfg.audio_channels, cfg.dim),  # the audio pre-encoder, on every frame
        nn.ReLU(),
        nn.Flatten(1),
        nn.Linear(AUDIO_WINDOW * cfg.dim, 1),
    )


def audio_windows(features: np.ndarray) -> np.ndarray:
    """Each frame's window of a clip's ``(T, 104)`` features, edge-padded: ``(T, W, 104)``."""
    before = AUDIO_WINDOW // 2
    padded = np.pad(features, ((before, AUDIO_WINDOW - 1 - before), (0, 0)), mode="edge")
    return np.lib.stride_tricks.sliding_window_view(padded, AUDIO_WINDOW, axis=0).transpose(0, 2, 1)


def _video_tensor(frames: np.ndarray) -> torch.Tensor:
    """``(N, S, S, 3)`` uint8 → ``(N, 3, S, S)`` float32, normalised as the trainer does."""
    from trainer.data.inputs import video_for_model

    batch = torch.from_numpy(np.array(frames, dtype=np.uint8))[None]  # (1, N, S, S, 3), a copy
    return video_for_model(batch, None)[0].transpose(0, 1).contiguous()


def _to_tensor(modality: str, inputs: np.ndarray) -> torch.Tensor:
    if modality == "video":
        return _video_tensor(inputs)
    return torch.from_numpy(np.ascontiguousarray(inputs, dtype=np.float32))


def _frame_inputs(modality: str, clip: ProbeClip) -> np.ndarray:
    """What the probe reads for each frame: the frame (video) or its window (audio)."""
    return clip.inputs if modality == "video" else audio_windows(clip.inputs)


def _training_set(modality: str, clips: list[ProbeClip]) -> tuple[np.ndarray, np.ndarray]:
    """Every train frame's input and label, stacked: ``(N, ...)`` and ``(N,)`` float32."""
    stride = VIDEO_FRAME_STRIDE if modality == "video" else 1
    inputs = np.concatenate([_frame_inputs(modality, c)[::stride] for c in clips])
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
    for _epoch in range(EPOCHS[modality]):
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
    inputs = _frame_inputs(modality, clip)
    out = [
        net(_to_tensor(modality, inputs[first : first + 256]))[:, 0]
        for first in range(0, len(inputs), 256)
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
    stride = VIDEO_FRAME_STRIDE if modality == "video" else 1
    train_labels = np.concatenate([c.frame_labels[::stride] for c in train])
    logits = [frame_logits(net, modality, clip) for clip in test]
    frames = np.concatenate([c.frame_labels for c in test])
    return {
        "clip_auc": _auc([c.label for c in test], [clip_score(x) for x in logits]),
        "frame_auc": _auc(frames, np.concatenate(logits)),
        "train_clips": len(train),
        "test_clips": len(test),
        "train_frames": int(train_labels.size),
        "train_fake_frame_share": round(float(train_labels.mean()), 4),
        "epochs": EPOCHS[modality],
        "probe": "frame encoder + linear"
        if modality == "video"
        else f"pre-encoder on a {AUDIO_WINDOW}-frame window + linear",
    }
