"""``mscct-train audit``: a checkpoint scored on the same clips, stored and perturbed.

The clips are a part of a split, chosen and checked as ``eval`` chooses them
(:func:`trainer.evaluate.eval_clips.eval_clips`, held out, the store's recipe checked against the
checkpoint's). Each clip is read whole from the store, changed by each perturbation of
:data:`PERTURBATIONS` (:mod:`trainer.audit.perturb`), cut into windows, normalised and scored as
``predict`` scores an in-memory clip (:func:`trainer.evaluate.inference.windows_from_arrays`,
:func:`~trainer.evaluate.inference.predict_windows`: the windows and per-clip normalisation of
``eval``), and its windows' scores are aggregated by the checkpoint's ``eval.aggregate``
(:func:`~trainer.evaluate.inference.clip_scores`). The scores of each perturbation are then set
against the baseline's (:mod:`trainer.audit.report`).

Frames stored without a face are left out of a window's mask, as ``eval`` leaves them out
(:mod:`trainer.data.face_valid`). Every perturbation picks and repeats stored frames and never
makes pixels, so it is applied to the frame numbers (:func:`perturb_clip`): the frames and
their face flags are then taken by the same numbers, and stay together.

Leading silence: the frames a clip's stored audio begins with that are silent are
measured on the features (:func:`trainer.audit.perturb.leading_silence`): nothing in a store made
without ``trim_silence`` records them. A trimmed store's manifest records the frames cut
at ingest (``trimmed_frames``), which count towards the clip's original silence.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch

import schemas
from trainer.audit import perturb as audit
from trainer.audit.report import audit_report
from trainer.config.settings import TrainConfig, TrainerError
from trainer.data.damage import damaged
from trainer.data.dataset import ClipInfo, eval_starts
from trainer.data.face_valid import FaceValidReader, face_flags
from trainer.data.streams import STREAM_ARRAYS, crop_mouth
from trainer.evaluate.eval_clips import check_held_out, eval_clips, trained_clip_ids
from trainer.evaluate.inference import (
    checked_store,
    clip_scores,
    model_from_checkpoint,
    predict_windows,
    windows_from_arrays,
)
from trainer.evaluate.metrics import ClipScores
from trainer.train import distributed as ddp
from trainer.train.runtime import Log, autocast_dtype, resolve_device

#: Audio shifts, in video frames: two small (within what lip-sync models tolerate as
#: noise) and two large enough that speech and lips no longer meet.
SHIFTS: tuple[int, ...] = (-5, -2, 2, 5)
#: Leading silence added to every clip when no evaluated fake has any to copy the length of.
DEFAULT_ADDED_S = 0.2
#: Frames dropped (and as many shown twice) per second of clip, at least one of each.
JITTER_EVENTS_PER_S = 0.5
#: Clips read and perturbed together before their windows are scored.
CLIPS_PER_CHUNK = 32


@dataclass(frozen=True)
class AuditClip:
    """One stored clip: its visual stream ``video`` (``(T, S, S, 3)`` face or
    ``(T, 88, 88)`` mouth crops, uint8), ``audio`` ``(T, 104)`` float32 as stored (not
    normalised), ``lead``, its leading-silence frames still in the tensors, and ``valid``
    ``(T,)`` bool, False on a frame stored without a face."""

    info: ClipInfo
    video: np.ndarray
    audio: np.ndarray
    lead: int
    valid: np.ndarray


@dataclass(frozen=True)
class AuditPlan:
    """What the perturbations need beyond a clip: the store's audio ``features``, each
    clip's donor of audio (an index into the clips, None where there is none), the
    leading-silence frames ``added`` to every clip, the seed, the frame rate."""

    features: str
    donors: list[int | None]
    added: int
    seed: int
    fps: int


Arrays = tuple[np.ndarray, np.ndarray]
#: A perturbation: (clip, its position, the plan, the clips' audio by position) -> arrays.
Perturb = Callable[[AuditClip, int, AuditPlan, Callable[[int], np.ndarray]], Arrays]


def _swap(
    clip: AuditClip, i: int, plan: AuditPlan, audio_of: Callable[[int], np.ndarray]
) -> Arrays:
    donor = plan.donors[i]
    assert donor is not None  # a perturbation without donors is skipped before
    return audit.swap_audio(clip.video, clip.audio, audio_of(donor))


def _shift(k: int) -> Perturb:
    return lambda clip, i, plan, audio_of: audit.shift_audio(clip.video, clip.audio, k)


def _silence(clip: AuditClip, i: int, plan: AuditPlan, audio_of: Any) -> Arrays:
    rows = audit.silence_rows(clip.audio, clip.lead, len(clip.audio), plan.features)
    return clip.video, audit.silence_audio(clip.audio, rows)


def _add(clip: AuditClip, i: int, plan: AuditPlan, audio_of: Any) -> Arrays:
    rows = audit.silence_rows(clip.audio, clip.lead, plan.added, plan.features)
    return audit.add_leading(clip.video, clip.audio, rows)


def _jitter(clip: AuditClip, i: int, plan: AuditPlan, audio_of: Any) -> Arrays:
    frames = len(clip.video)
    events = max(1, round(JITTER_EVENTS_PER_S * frames / plan.fps))
    index = audit.jitter_index(frames, events, np.random.default_rng([plan.seed, i]))
    return audit.jitter(clip.video, clip.audio, index)


#: Every perturbation by report name, the baseline first.
PERTURBATIONS: dict[str, Perturb] = {
    "baseline": lambda clip, i, plan, audio_of: (clip.video, clip.audio),
    "swap_audio": _swap,
    **{f"shift_audio_{k:+d}": _shift(k) for k in SHIFTS},
    "silence_audio": _silence,
    "freeze_video": lambda clip, i, plan, audio_of: (audit.freeze_video(clip.video), clip.audio),
    "cut_silence": lambda clip, i, plan, audio_of: audit.cut_leading(
        clip.video, clip.audio, clip.lead
    ),
    "add_silence": _add,
    "jitter": _jitter,
}


def perturb_clip(
    perturb: Perturb,
    clip: AuditClip,
    i: int,
    plan: AuditPlan,
    audio_of: Callable[[int], np.ndarray],
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``perturb`` applied to clip ``i``: its video ``(T', ...)``, audio ``(T', 104)`` and
    face flags ``(T',)``. The perturbation runs on the frame numbers ``(T,)`` in place of
    the frames; the stored frames and flags are then picked by them, in one copy."""
    numbers = replace(clip, video=np.arange(len(clip.video)))
    frames, audio = perturb(numbers, i, plan, audio_of)
    return clip.video[frames], audio, clip.valid[frames]


def pair_donors(clips: Sequence[ClipInfo], seed: int) -> list[int | None]:
    """For each clip, a real clip (label 0) of another identity whose audio replaces its
    own: drawn uniformly from ``seed`` (the same pairs for the same clips and seed), None
    where every real clip is of the clip's identity."""
    real = sorted((c.identity, i) for i, c in enumerate(clips) if c.label == 0)
    identities = [identity for identity, _ in real]
    rng = np.random.default_rng(seed)
    donors: list[int | None] = []
    for clip in clips:
        # Real clips sorted by identity: the clip's own identity is one block [lo, hi).
        lo = int(np.searchsorted(identities, clip.identity, "left"))
        hi = int(np.searchsorted(identities, clip.identity, "right"))
        others = len(real) - (hi - lo)
        if others == 0:
            donors.append(None)
            continue
        u = int(rng.integers(others))
        donors.append(real[u if u < lo else u + hi - lo][1])
    return donors


def audit_checkpoint(
    path: str | Path,
    store: Path,
    split: str = "default",
    part: str = "test",
    seed: int = 0,
    log: Log = print,
) -> dict[str, Any]:
    """The audit report of a checkpoint on ``part`` of ``split`` of ``store``
    (:func:`trainer.audit.report.audit_report`). Clips the checkpoint was trained on are
    refused, as ``eval`` refuses them."""
    if part not in schemas.SPLITS:
        raise TrainerError(f"part must be one of {', '.join(schemas.SPLITS)}, not {part!r}")
    store = Path(store)
    model, ckpt, cfg = model_from_checkpoint(path)
    recipe, fingerprint = checked_store(ckpt, cfg, store, log)
    clips = eval_clips(ckpt, store, split, part, log).clips
    if not clips:
        raise TrainerError(f"split {split!r} has no {part} clips")
    check_held_out(clips, trained_clip_ids(ckpt, store, fingerprint), False, log)
    reader = _ClipSource(store, recipe, cfg.model.visual_input)
    original = [reader.trimmed.get(c.clip_id, 0) + reader.lead(c) for c in clips]
    fakes = [lead for lead, c in zip(original, clips, strict=True) if c.label == 1]
    added = round(float(np.median(fakes))) if fakes and max(fakes) > 0 else 0
    added = added or max(1, round(DEFAULT_ADDED_S * recipe.fps))
    plan = AuditPlan(recipe.features, pair_donors(clips, seed), added, seed, recipe.fps)
    skipped = {}
    if any(d is None for d in plan.donors):
        skipped["swap_audio"] = "no real clip of another identity to take the audio of"
    scores = _score_perturbations(model, cfg, clips, reader, plan, set(skipped))
    provenance = {
        "checkpoint": str(path), "store": str(store), "split": split, "part": part,
        "seed": seed, "aggregate": cfg.eval.aggregate, "trim_silence": recipe.trim_silence,
        "added_frames": added,
        "leading_silence_frames": _silence_summary(clips, original),
    }  # fmt: skip
    return audit_report(provenance, scores, skipped)


def _silence_summary(clips: Sequence[ClipInfo], original: Sequence[int]) -> dict[str, Any]:
    """The clips' original leading silence by label: how many have any, their median."""
    out = {}
    for name, label in (("real", 0), ("fake", 1)):
        leads = [lead for lead, c in zip(original, clips, strict=True) if c.label == label]
        out[name] = {
            "clips": len(leads),
            "with_silence": sum(lead > 0 for lead in leads),
            "median": float(np.median(leads)) if leads else None,
        }
    return out


class _ClipSource:
    """Whole clips of a store as the audit needs them (read with ``schemas.open_stream``,
    the store's reader for every layout), their manifest's ``trimmed_frames``."""

    def __init__(self, store: Path, recipe: schemas.Recipe, visual_input: str) -> None:
        self.store, self.recipe, self.visual_input = store, recipe, visual_input
        table = schemas.read_manifest(store).select(["clip_id", "trimmed_frames"])
        ids, trimmed = (table.column(n).to_pylist() for n in ("clip_id", "trimmed_frames"))
        self.trimmed = {c: int(t or 0) for c, t in zip(ids, trimmed, strict=True)}
        self.faces = FaceValidReader(store)

    def array(self, clip: ClipInfo, name: str) -> np.ndarray:
        """One stored array of ``clip``, ``(T, ...)``, in memory; its frame count checked."""
        data = schemas.open_stream(self.store, clip.clip_id, name)
        if data is None or data.shape[0] != clip.num_frames:
            found = "no such array" if data is None else f"{data.shape[0]} frames"
            problem = f"its stored {name} has {found}, the manifest says {clip.num_frames} frames"
            raise damaged(self.store, clip.clip_id, problem)
        return np.array(data)

    def audio(self, clip: ClipInfo) -> np.ndarray:
        """``(T, 104)`` float32, as stored (not normalised)."""
        return self.array(clip, "audio").astype(np.float32, copy=False)

    def lead(self, clip: ClipInfo, audio: np.ndarray | None = None) -> int:
        """The leading-silence frames in the stored tensors (:func:`audit.leading_silence`)."""
        audio = self.audio(clip) if audio is None else audio
        recipe = self.recipe
        return audit.leading_silence(
            audio, recipe.features, recipe.silence_threshold_db, recipe.min_frames
        )

    def clip(self, clip: ClipInfo) -> AuditClip:
        video = self.array(clip, STREAM_ARRAYS[self.visual_input])
        if self.visual_input == "mouth":
            video = crop_mouth(video)  # the centre 88 x 88, as eval and predict take
        audio = self.audio(clip)
        valid = self.faces.clip(clip.clip_id, clip.num_frames)
        valid = np.ones(clip.num_frames, np.bool_) if valid is None else valid
        return AuditClip(clip, video, audio, self.lead(clip, audio), valid.astype(np.bool_))


def _score_perturbations(
    model: torch.nn.Module,
    cfg: TrainConfig,
    clips: Sequence[ClipInfo],
    reader: _ClipSource,
    plan: AuditPlan,
    skipped: set[str],
) -> dict[str, ClipScores]:
    """The clip scores of every perturbation not ``skipped``, clips read chunk by chunk
    (each once per chunk, whatever the number of perturbations)."""
    device = resolve_device(cfg, ddp.DistInfo())
    model.to(device)
    amp = autocast_dtype(cfg, device)
    names = [name for name in PERTURBATIONS if name not in skipped]
    outputs: dict[str, list[tuple[np.ndarray, np.ndarray, np.ndarray]]] = {n: [] for n in names}
    for first in range(0, len(clips), CLIPS_PER_CHUNK):
        chunk = range(first, min(first + CLIPS_PER_CHUNK, len(clips)))
        read = [reader.clip(clips[i]) for i in chunk]

        def audio_of(j: int) -> np.ndarray:
            return reader.audio(clips[j])

        for name in names:
            perturb = PERTURBATIONS[name]
            arrays = [
                (i, *perturb_clip(perturb, clip, i, plan, audio_of))
                for i, clip in zip(chunk, read, strict=True)
            ]
            batches = _batches(arrays, cfg, 2 * cfg.batch_size)
            outputs[name].append(predict_windows(model, batches, device, amp))
    scores = {}
    for name, parts in outputs.items():
        index, prob, emb = (np.concatenate(p) for p in zip(*parts, strict=True))
        scores[name] = clip_scores(tuple(clips), index, prob, emb, cfg.eval.aggregate)
    return scores


def _batches(
    arrays: Sequence[tuple[int, np.ndarray, np.ndarray, np.ndarray]], cfg: TrainConfig, size: int
) -> Iterator[dict[str, torch.Tensor]]:
    """Batches of at most ``size`` eval windows of perturbed clips ``(index, video, audio,
    valid)``, each window made by :func:`~trainer.evaluate.inference.windows_from_arrays`, its mask
    also False on frames without a face (as ``eval``'s), and tagged with its clip's index:
    ``audio (B, window, 104)``, ``video (B, window, ...)``, ``mask (B, window)``,
    ``clip_index (B,)``."""
    windows = []
    stride = cfg.eval_stride or cfg.window
    for index, video, audio, valid in arrays:
        batch = windows_from_arrays(video, audio, cfg.window, stride)
        batch["clip_index"].fill_(index)
        batch["mask"] &= torch.from_numpy(face_windows(valid, cfg.window, stride))
        windows.append(batch)
    joined = {key: torch.cat([w[key] for w in windows]) for key in windows[0]}
    for start in range(0, len(joined["mask"]), size):
        yield {key: value[start : start + size] for key, value in joined.items()}


def face_windows(valid: np.ndarray, window: int, stride: int) -> np.ndarray:
    """The face flags ``(T,)`` of a clip cut as its eval windows are: ``(N, window)`` bool,
    True on padding (the padding mask covers it), as :mod:`trainer.data.face_valid` gives them."""
    return face_flags(valid, eval_starts(len(valid), window, stride), window)
