"""``mscct-train audit``: the perturbations, and detectors whose answers are known.

Two detectors are built here, never trained, so their behaviour is known by construction
(registered for this module only): an *onset* detector that calls a clip fake when its
first frame is silent (the leading-silence shortcut of FakeAVCeleb, which the synthetic
dataset reproduces: its fakes start with 0.1-0.3 s of silence), and a *consistency*
detector that calls a clip real when its audio energy and its frames' brightness move
together (on a store written here whose real clips are made that way). The command on a
trained MSCT is checked in ``test_eval_cli.py``, against the test scores of its run.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from cli_helpers import call_main
from torch import Tensor, nn

import schemas
from trainer.audit import perturb as audit
from trainer.audit.run import (
    PERTURBATIONS,
    AuditClip,
    AuditPlan,
    audit_checkpoint,
    face_windows,
    pair_donors,
    perturb_clip,
)
from trainer.cli import main
from trainer.config.settings import TrainConfig
from trainer.data.dataset import ClipInfo
from trainer.model import build_model
from trainer.model.config import ConfigBasics
from trainer.model.loss import LossParts
from trainer.model.outputs import DetectorOutput, no_head
from trainer.model.registry import _REGISTRY, Reads, register_detector
from trainer.train.checkpoint import save_checkpoint

FEATURES = {"mfcc", "fbank"}
HOP_C0 = [0, 26, 52, 78]  # c0 (log energy) of each 10 ms hop of a frame's 104 channels


# --- the perturbations ------------------------------------------------------------------


def _clip(frames: int = 10) -> tuple[np.ndarray, np.ndarray]:
    """A clip whose every row names its frame: video ``(T, 4, 4, 3)``, audio ``(T, 104)``."""
    t = np.arange(frames)
    video = np.broadcast_to(t[:, None, None, None], (frames, 4, 4, 3)).astype(np.uint8)
    audio = np.broadcast_to(t[:, None], (frames, 104)).astype(np.float32)
    return video, audio


def test_shift_moves_audio_rows_by_k_and_pads_nothing() -> None:
    video, audio = _clip()
    late_v, late_a = audit.shift_audio(video, audio, 2)
    assert late_v.shape == (8, 4, 4, 3) and late_a.shape == (8, 104)
    assert list(late_v[:, 0, 0, 0]) == list(range(2, 10)) and list(late_a[:, 0]) == list(range(8))
    early_v, early_a = audit.shift_audio(video, audio, -5)
    assert list(early_v[:, 0, 0, 0]) == list(range(5)) and list(early_a[:, 0]) == list(range(5, 10))
    one_v, one_a = audit.shift_audio(video[:3], audio[:3], 5)  # at least one frame is kept
    assert len(one_v) == len(one_a) == 1


def test_swap_cut_add_freeze_and_jitter() -> None:
    video, audio = _clip()
    donor = np.full((7, 104), 50.0, np.float32)
    v, a = audit.swap_audio(video, audio, donor)
    assert v.shape[0] == a.shape[0] == 7 and np.all(a == 50.0)
    v, a = audit.cut_leading(video, audio, 3)
    assert v[0, 0, 0, 0] == 3 and a[0, 0] == 3 and len(v) == len(a) == 7
    silence = audit.silence_rows(audio, 0, 4, "mfcc")
    v, a = audit.add_leading(video, audio, silence)
    assert v.shape == (14, 4, 4, 3) and a.shape == (14, 104)
    assert np.all(v[:5, 0, 0, 0] == 0) and np.all(a[:4, 0] == audit.SILENT_LOG_ENERGY)
    assert np.array_equal(a[4:], audio)
    frozen = audit.freeze_video(video)
    assert frozen.shape == video.shape and np.all(frozen == 5)
    index = audit.jitter_index(10, 2, np.random.default_rng(0))
    assert len(index) == 10 and index[0] == 0 and np.all(np.diff(index) >= 0)
    assert len(set(index.tolist())) == 8  # two frames dropped, two shown twice
    v, a = audit.jitter(video, audio, index)
    assert np.array_equal(v[:, 0, 0, 0], a[:, 0].astype(np.uint8))  # the streams stay in step
    # A clip's own leading silence is what silence repeats.
    own = audit.silence_rows(
        np.arange(20, dtype=np.float32).reshape(5, 4).repeat(26, 1), 2, 5, "mfcc"
    )
    assert list(own[:, 0]) == [0.0, 4.0, 0.0, 4.0, 0.0]


def test_face_flags_follow_the_frames_they_belong_to() -> None:
    video, audio = _clip()
    valid = np.ones(10, np.bool_)
    valid[3] = False  # frame 3 was stored without a face
    clip = AuditClip(ClipInfo("c", "RARV", "x", 0, 0, 0, 10), video, audio, 0, valid)
    plan = AuditPlan("mfcc", [None], 2, 0, 25)
    v, a, flags = perturb_clip(PERTURBATIONS["shift_audio_+2"], clip, 0, plan, lambda j: audio)
    assert list(v[:, 0, 0, 0]) == list(range(2, 10)) and list(a[:, 0]) == list(range(8))
    assert list(np.flatnonzero(~flags)) == [1]  # frame 3, now second
    v, _, flags = perturb_clip(PERTURBATIONS["add_silence"], clip, 0, plan, lambda j: audio)
    assert len(v) == len(flags) == 12 and list(np.flatnonzero(~flags)) == [5]
    masks = face_windows(flags, 8, 8)  # windows at 0 and 4 (flush with the end)
    assert masks.shape == (2, 8) and list(np.flatnonzero(~masks[0])) == [5]
    assert list(np.flatnonzero(~masks[1])) == [1]
    assert face_windows(flags[:5], 8, 8)[0, 5:].all()  # padding: the padding mask's business


@pytest.mark.parametrize("features", sorted(FEATURES))
def test_silence_row_is_what_the_pipeline_stores_for_zero_samples(features: str) -> None:
    from pipeline.clip.audio_features import hop_features

    hops = hop_features(np.zeros(16_000), 16_000, features)  # 1 s of digital silence
    rows = hops[: 4 * (len(hops) // 4)].reshape(-1, 104)
    np.testing.assert_allclose(
        rows, np.tile(audit.silence_row(features), (len(rows), 1)), atol=1e-4
    )


def test_leading_silence_is_measured_on_the_features() -> None:
    rng = np.random.default_rng(0)
    speech = 20 + rng.standard_normal((30, 104)).astype(np.float32)
    silent = np.tile(audit.silence_row("mfcc"), (4, 1))
    assert audit.leading_silence(np.concatenate([silent, speech]), "mfcc", 30.0, 2) == 4
    assert audit.leading_silence(speech, "mfcc", 30.0, 2) == 0
    assert audit.leading_silence(np.tile(audit.silence_row("mfcc"), (9, 1)), "mfcc", 30.0, 2) == 0
    assert audit.leading_silence(np.concatenate([silent, speech[:1]]), "mfcc", 30.0, 2) == 3


def test_donors_are_real_clips_of_other_identities_drawn_from_the_seed() -> None:
    # Even clips fake, odd ones real; three identities.
    clips = [
        ClipInfo(f"c{i}", "RARV" if i % 2 else "FAFV", f"id{i % 3}", 0, 0, 1 - i % 2, 8)
        for i in range(12)
    ]
    donors = pair_donors(clips, seed=3)
    assert donors == pair_donors(clips, seed=3)
    for clip, donor in zip(clips, donors, strict=True):
        assert donor is not None
        assert clips[donor].label == 0 and clips[donor].identity != clip.identity
    alone = [ClipInfo("a", "RARV", "x", 0, 0, 0, 8), ClipInfo("b", "FAFV", "x", 1, 1, 1, 8)]
    assert pair_donors(alone, seed=0) == [None, None]


# --- detectors known by construction -----------------------------------------------------


@dataclass
class ProbeConfig(ConfigBasics):
    """The config of a detector built by hand: nothing to size."""

    name: str = "audit_onset"
    visual_input: str = "face"
    frame_head: bool = False
    max_frames: int = 512


class OnsetDetector(nn.Module):
    """Fake when every 10 ms hop of the window's first frame is silent: the normalised
    log energies (c0) of its four hops all below -2 (clip-normalised speech sits near 0,
    digital silence at -3 and below). Audio and fused heads say the same."""

    def forward(self, audio: Tensor, video: Tensor, mask: Tensor | None) -> DetectorOutput:
        loudest = audio[:, 0, HOP_C0].max(dim=1).values  # (B,)
        fake = 4.0 * (-2.0 - loudest)
        logits = torch.stack([torch.zeros_like(fake), fake], dim=1)
        return DetectorOutput(logits, no_head(logits), logits, logits)


class ConsistencyDetector(nn.Module):
    """Real when the audio's log energy and the frames' brightness are correlated over the
    window's real frames (correlation above 0.5), fake otherwise."""

    def forward(self, audio: Tensor, video: Tensor, mask: Tensor | None) -> DetectorOutput:
        keep = torch.ones(audio.shape[:2]) if mask is None else mask.float()  # (B, T)
        energy = audio[:, :, HOP_C0].mean(dim=2)  # (B, T)
        light = video.mean(dim=(1, 3, 4))  # (B, K, T, S, S) -> (B, T)
        n = keep.sum(1, keepdim=True)
        de = (energy - (energy * keep).sum(1, keepdim=True) / n) * keep
        dl = (light - (light * keep).sum(1, keepdim=True) / n) * keep
        corr = (de * dl).sum(1) / ((de.square().sum(1) * dl.square().sum(1)).sqrt() + 1e-6)
        fake = 10.0 * (0.5 - corr)
        logits = torch.stack([torch.zeros_like(fake), fake], dim=1)
        return DetectorOutput(logits, no_head(logits), logits, logits)


def _no_loss(*args: object) -> LossParts:
    raise AssertionError("the detectors here are built by hand, never trained")


def _build(module: type[nn.Module], cfg: ProbeConfig) -> nn.Module:
    return module()


@pytest.fixture(scope="module", autouse=True)
def probes() -> Iterator[None]:
    """The two detectors, registered for this module only."""
    detectors: dict[str, type[nn.Module]] = {
        "audit_onset": OnsetDetector,
        "audit_consistency": ConsistencyDetector,
    }
    for name, module in detectors.items():
        register_detector(
            name, config=ProbeConfig, loss=_no_loss, reads=lambda cfg: Reads(streams=("face",)),
            presets={"tiny": "tiny", "paper": "paper"},
        )(functools.partial(_build, module))  # fmt: skip
    yield
    for name in detectors:
        del _REGISTRY[name]


def _checkpoint(path: Path, detector: str, store: Path, window: int) -> Path:
    """A checkpoint of a hand-built detector for ``store``, trained on no clip."""
    cfg = TrainConfig.from_dict(
        {
            "model": {"name": detector},
            "loss": {},
            "window": window,
            "device": "cpu",
            "batch_size": 8,
        }
    )
    save_checkpoint(path, {
        "model": build_model(cfg.model).state_dict(), "epoch": 0, "config": cfg.to_dict(),
        "store_fingerprint": schemas.store_fingerprint(store),
        "recipe": schemas.open_store(store).recipe.to_dict(), "train_clips": [],
    })  # fmt: skip
    return path


def _all_in_test(store: Path) -> Path:
    """Write a split ``default`` that puts every clip of ``store`` in its test part."""
    rows = schemas.read_manifest(store).select(["clip_id", "category", "identity", "label"])
    table = [{**row, "split": "test"} for row in rows.to_pylist()]
    schemas.write_split(store, "default", schemas.rows_to_table(table, schemas.SPLIT_SCHEMA), {})
    return store


def _small_crops(src: Path, dst: Path, step: int = 7) -> Path:
    """``src``'s clips with their audio as stored and every ``step``-th pixel of their face
    crops (112 -> 16): the onset detector reads only the audio, and small frames keep
    the audit of eleven versions of each clip quick."""
    recipe = schemas.open_store(src).recipe
    small = {"crop_size": recipe.crop_size // step, "landmarks": False}  # no landmarks to shrink
    recipe = schemas.Recipe.from_dict({**recipe.to_dict(), **small})
    schemas.create_store(dst, recipe)
    rows = schemas.read_manifest(src).to_pylist()
    for row in rows:
        row["recipe_hash"] = recipe.hash()
        video, audio = (np.array(a) for a in schemas.open_clip(src, row["clip_id"]))
        schemas.write_clip(dst, row["clip_id"], video[:, ::step, ::step], audio, row, recipe,
                           durable=False)  # fmt: skip
    schemas.write_manifest(dst, schemas.rows_to_table(rows, schemas.MANIFEST_SCHEMA))
    return dst


def _audit_json(capsys: pytest.CaptureFixture[str], *args: str) -> dict:
    capsys.readouterr()
    code = call_main(main, ["audit", *args, "--json"])
    captured = capsys.readouterr()
    assert code == 0, captured.err
    return json.loads(captured.out)


def test_onset_shortcut_collapses_without_leading_silence(
    ingested_store: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    store = _all_in_test(_small_crops(ingested_store, tmp_path / "store"))
    ckpt = _checkpoint(tmp_path / "onset.pt", "audit_onset", store, window=96)
    report = _audit_json(capsys, str(ckpt), "--store", str(store), "--seed", "1")
    runs = report["perturbations"]
    assert runs["baseline"]["fused"]["auc"] == 1.0  # the shortcut works on the stored clips
    assert report["leading_silence_frames"]["fake"]["with_silence"] == 9
    assert report["leading_silence_frames"]["real"]["with_silence"] == 0
    # Leading silence cut: every fake it caught is now called real.
    assert runs["cut_silence"]["fused"]["fake_flipped"] == 1.0
    assert runs["cut_silence"]["fused"]["balanced_acc"] == 0.5
    # Added: every real clip is called fake.
    assert runs["add_silence"]["fused"]["real_flipped"] == 1.0
    # Another person's voice on a real face: the shortcut does not notice.
    assert runs["swap_audio"]["fused"]["real_flipped"] == 0.0
    assert runs["freeze_video"]["fused"]["real_flipped"] == 0.0
    assert runs["jitter"]["fused"]["real_flipped"] == 0.0


def _coupled_store(path: Path, per_category: int = 4, frames: int = 40) -> Path:
    """A store whose real clips' (RARV) frame brightness follows their audio's log energy,
    frame by frame (white noise, so any shift decorrelates them); every other clip's
    brightness follows noise of its own. No leading silence anywhere."""
    recipe = schemas.Recipe(crop_size=16)
    schemas.create_store(path, recipe)
    rng = np.random.default_rng(0)
    rows = []
    for index in range(per_category * len(schemas.CATEGORIES)):
        category = schemas.CATEGORIES[index % len(schemas.CATEGORIES)]
        labels = schemas.labels_for(category)
        energy = rng.standard_normal(frames).astype(np.float32)
        audio = rng.standard_normal((frames, 104)).astype(np.float32)
        audio[:, HOP_C0] = 20.0 + 2.0 * energy[:, None]
        drive = energy if category == "RARV" else rng.standard_normal(frames)
        light = np.clip(128 + 40 * drive, 0, 255).astype(np.uint8)
        video = np.broadcast_to(light[:, None, None, None], (frames, 16, 16, 3)).copy()
        row: dict[str, Any] = {
            "clip_id": f"clip{index:03d}", "path": f"{category}/id{index:03d}/0.mp4",
            "category": category, "source_type": schemas.CATEGORY_TO_TYPE_DIR[category],
            "audio_label": labels.audio, "video_label": labels.video, "label": labels.overall,
            "identity": f"id{index:03d}", "method": "real" if category == "RARV" else "synthetic",
            "num_frames": frames, "trimmed_frames": 0, "source_fingerprint": f"fp{index}",
            "recipe_hash": recipe.hash(), "status": schemas.STATUS_OK, "error": "",
        }  # fmt: skip
        schemas.write_clip(path, row["clip_id"], video, audio, row, recipe)
        rows.append(row)
    schemas.write_manifest(path, schemas.rows_to_table(rows, schemas.MANIFEST_SCHEMA))
    return _all_in_test(path)


def test_consistency_detector_flips_real_clips_on_swapped_and_shifted_audio(
    tmp_path: Path,
) -> None:
    store = _coupled_store(tmp_path / "store")
    ckpt = _checkpoint(tmp_path / "consistency.pt", "audit_consistency", store, window=40)
    runs = audit_checkpoint(ckpt, store, seed=0, log=lambda _: None)["perturbations"]
    assert runs["baseline"]["fused"]["auc"] == 1.0
    for name in ("swap_audio", "shift_audio_-5", "shift_audio_-2", "shift_audio_+2",
                 "shift_audio_+5", "silence_audio", "freeze_video"):  # fmt: skip
        assert runs[name]["fused"]["real_flipped"] == 1.0, name
    # Both streams jittered together, or no silence to cut: nothing changes.
    assert runs["jitter"]["fused"]["real_flipped"] == 0.0
    assert runs["cut_silence"]["fused"] == runs["baseline"]["fused"]
