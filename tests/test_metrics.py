"""Metrics, config resolution and checkpoint helpers of the trainer (fast, no training)."""

from __future__ import annotations

import json
import math
import random
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

from trainer.config.settings import TrainConfig, TrainerError, config_diff, load_config
from trainer.evaluate.metrics import (
    ClipScores,
    aggregate_windows,
    compute_metrics,
    json_safe,
    safe_auc,
)
from trainer.train.checkpoint import capture_rng, load_checkpoint, restore_rng, save_checkpoint

ROOT = Path(__file__).resolve().parents[1]


def test_windows_average_per_clip() -> None:
    means, counts = aggregate_windows(np.array([0, 0, 2]), np.array([[0.2], [0.6], [1.0]]), 3)
    assert counts.tolist() == [2, 0, 1]
    assert means[0, 0] == pytest.approx(0.4) and math.isnan(means[1, 0]) and means[2, 0] == 1.0


def test_auc_uses_probabilities_with_fake_positive() -> None:
    # Hard labels would give 0.5 here; the probabilities rank perfectly.
    assert safe_auc([0, 0, 1, 1], [0.1, 0.2, 0.3, 0.4]) == 1.0
    assert safe_auc([0, 1], [0.9, 0.1]) == 0.0
    assert math.isnan(safe_auc([1, 1, 1], [0.2, 0.5, 0.9]))


def _scores(fused: list[float], cats: list[str]) -> ClipScores:
    from schemas import labels_for

    labels = [labels_for(c) for c in cats]
    arr = np.array(fused)
    return ClipScores(
        prob={"audio": arr, "video": arr, "fused": arr},
        embedding=np.zeros((len(cats), 4)),
        label=np.array([lab.overall for lab in labels]),
        audio_label=np.array([lab.audio for lab in labels]),
        video_label=np.array([lab.video for lab in labels]),
        categories=cats,
        clip_ids=[str(i) for i in range(len(cats))],
    )


def test_per_category_accuracy_and_null_for_undefined() -> None:
    metrics = compute_metrics(_scores([0.1, 0.9, 0.4, 0.8], ["RARV", "FARV", "RAFV", "FAFV"]))
    assert metrics["acc"] == 0.75
    assert metrics["per_category_acc"] == {"RARV": 1.0, "FARV": 1.0, "RAFV": 0.0, "FAFV": 1.0}
    only_fake = compute_metrics(_scores([0.9, 0.8], ["FARV", "FAFV"]))
    assert math.isnan(only_fake["auc"]) and "auc" in only_fake["undefined"]
    text = json.dumps(json_safe(only_fake), allow_nan=False)
    assert json.loads(text)["auc"] is None and json.loads(text)["per_category_acc"]["RARV"] is None


def test_selection_breaks_saturated_auc_and_acc_ties_by_val_log_loss() -> None:
    from trainer.train.selection import val_key as _val_key

    cats = ["RARV", "FARV", "RAFV", "FAFV"]
    early = compute_metrics(_scores([0.45, 0.55, 0.6, 0.55], cats))  # right, but unsure
    late = compute_metrics(_scores([0.05, 0.95, 0.9, 0.97], cats))  # right and confident
    assert early["auc"] == late["auc"] == 1.0 and early["acc"] == late["acc"] == 1.0
    expected = -np.mean(np.log([0.95, 0.95, 0.9, 0.97]))
    assert late["log_loss"] == pytest.approx(expected) and late["log_loss"] < early["log_loss"]
    assert _val_key(late) > _val_key(early)
    # AUC still comes first: a better ranking wins over a lower loss.
    ranked_worse = compute_metrics(_scores([0.01, 0.99, 0.99, 0.005], cats))
    assert _val_key(early) > _val_key(ranked_worse)
    # Undefined metrics count as worst, and a confident mistake stays finite.
    assert _val_key(compute_metrics(_scores([0.9, 0.8], ["FARV", "FAFV"])))[0] == -math.inf
    assert math.isfinite(compute_metrics(_scores([1.0, 0.0], ["RARV", "FARV"]))["log_loss"])


def test_overrides_and_presets() -> None:
    cfg = load_config(
        "tiny", ["model.dim=32", "epochs=3", "lr=1e-3", "model.mssa_kernels=[1,3,3,5]"]
    )
    assert (cfg.model.dim, cfg.epochs, cfg.lr) == (32, 3, 0.001)
    assert cfg.model.mssa_kernels == (1, 3, 3, 5)
    paper = load_config("paper")
    assert paper.optimizer == "adam" and paper.epochs == 200 and paper.model.depth == 6
    with pytest.raises(TrainerError, match="model.dimm"):
        load_config("tiny", ["model.dimm=3"])
    with pytest.raises(TrainerError, match="'epochs'"):
        load_config("tiny", ["epochs=many"])
    with pytest.raises(TrainerError, match="optimizer"):
        load_config("tiny", ["optimizer=sgd"])
    assert config_diff(cfg, TrainConfig.from_dict(cfg.to_dict())) == []


@pytest.mark.parametrize("name", ["tiny", "paper"])
def test_config_files_mirror_the_presets(name: str) -> None:
    from_file = load_config(str(ROOT / "trainer" / "presets" / f"{name}.yaml"))
    assert config_diff(from_file, TrainConfig.preset(name)) == []
    assert yaml.safe_load((ROOT / "trainer" / "presets" / f"{name}.yaml").read_text())["model"]


def test_rng_states_round_trip_through_a_safe_checkpoint(tmp_path: Path) -> None:
    random.seed(1)
    np.random.seed(2)
    torch.manual_seed(3)
    state = capture_rng()
    expected = (random.random(), np.random.rand(), torch.rand(1).item())
    save_checkpoint(
        tmp_path / "c.pt",
        {
            "model": {},
            "epoch": 0,
            "config": {},
            "store_fingerprint": "x",
            "recipe": {},
            "rng": state,
        },
    )
    loaded = load_checkpoint(tmp_path / "c.pt")  # weights_only=True inside
    restore_rng(loaded["rng"])
    assert (random.random(), np.random.rand(), torch.rand(1).item()) == expected
    assert not list(tmp_path.glob(".*.tmp"))  # the atomic write cleans up after itself


def test_answering_fake_for_everything_scores_balanced_accuracy_one_half() -> None:
    cats = ["RARV", "FARV", "RAFV", "FAFV"] * 3  # 1:1:1:1, three clips in four fake
    metrics = compute_metrics(_scores([0.9] * len(cats), cats))
    assert metrics["acc"] == 0.75 and metrics["balanced_acc"] == 0.5
    assert metrics["eer"] == 0.5 and metrics["ap"] == 0.75  # a constant score ranks nothing
    for head in ("audio", "video"):
        assert metrics[f"{head}_balanced_acc"] == 0.5, head


def test_eer_and_ap_follow_the_ranking() -> None:
    from trainer.evaluate.metrics import average_precision, equal_error_rate

    y = np.array([0, 0, 1, 1])
    assert equal_error_rate(y, np.array([0.1, 0.2, 0.3, 0.4])) == 0.0
    assert equal_error_rate(y, np.array([0.4, 0.3, 0.2, 0.1])) == 1.0
    assert average_precision(y, np.array([0.1, 0.2, 0.3, 0.4])) == 1.0
    # One real ranked above one fake: FPR = FNR = 1/2 at the threshold between them.
    assert equal_error_rate(y, np.array([0.1, 0.35, 0.3, 0.4])) == pytest.approx(0.5)
    rng = np.random.default_rng(0)
    y, s = rng.integers(0, 2, 400), rng.random(400)
    s = s + 0.3 * y  # an informative score: the EER is where the two error rates cross
    eer = equal_error_rate(y, s)
    thresholds = np.sort(s)
    fpr = np.array([np.mean(s[y == 0] >= t) for t in thresholds])
    fnr = np.array([np.mean(s[y == 1] < t) for t in thresholds])
    crossing = np.argmin(np.abs(fpr - fnr))
    assert abs(eer - (fpr[crossing] + fnr[crossing]) / 2) < 0.01
    assert math.isnan(equal_error_rate(np.ones(3), np.array([0.1, 0.2, 0.3])))


def test_modality_metrics_score_each_head_against_its_own_label() -> None:
    cats = ["RARV", "FARV", "RAFV", "FAFV"]
    scores = _scores([0.1, 0.9, 0.9, 0.9], cats)
    scores.prob["audio"] = np.array([0.1, 0.9, 0.1, 0.9])  # right for the audio labels
    scores.prob["video"] = np.array([0.9, 0.9, 0.1, 0.1])  # reversed for the video labels
    metrics = compute_metrics(scores)
    assert metrics["audio_balanced_acc"] == 1.0 and metrics["audio_eer"] == 0.0
    assert metrics["video_balanced_acc"] == 0.0 and metrics["video_eer"] == 1.0
    assert metrics["video_ap"] == pytest.approx(0.5)
    only_fake = compute_metrics(_scores([0.9, 0.8], ["FARV", "FAFV"]))
    assert {"ap", "eer"} <= set(only_fake["undefined"]) and only_fake["balanced_acc"] == 1.0
