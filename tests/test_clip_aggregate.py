"""``eval.aggregate``: window-to-clip aggregation by mean, max or logsumexp, its config key,
and ``mscct-train eval --aggregate``."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
from cli_helpers import call_main
from trainer_fixtures import build_store

from trainer.cli import main
from trainer.config.settings import TrainerError, load_config
from trainer.evaluate.clip_aggregate import AGGREGATES, aggregate_probs


def _logit(p: float) -> float:
    return math.log(p / (1 - p))


def test_each_aggregation_against_its_written_formula() -> None:
    # clip 0: windows 0.2 and 0.6; clip 1: one window of 0.9; clip 2: no window.
    index, prob = np.array([0, 1, 0]), np.array([[0.2], [0.9], [0.6]])
    mean, counts = aggregate_probs(index, prob, 3, "mean")
    top, _ = aggregate_probs(index, prob, 3, "max")
    soft, _ = aggregate_probs(index, prob, 3, "logsumexp")
    assert counts.tolist() == [2, 1, 0]
    pooled = math.log(math.exp(_logit(0.2)) + math.exp(_logit(0.6))) - math.log(2)
    assert mean[0, 0] == pytest.approx(0.4)
    assert top[0, 0] == pytest.approx(0.6)
    assert soft[0, 0] == pytest.approx(1 / (1 + math.exp(-pooled)))
    for clip in (mean, top, soft):
        assert clip[1, 0] == pytest.approx(0.9)  # one window: every aggregation agrees
        assert np.isnan(clip[2, 0])  # no window: NaN, for the caller to refuse


def test_logsumexp_keeps_equal_windows_and_leans_to_the_highest() -> None:
    rng = np.random.default_rng(0)
    index = np.repeat(np.arange(50), 4)
    prob = rng.uniform(0.01, 0.99, size=(200, 3))
    mean, _ = aggregate_probs(index, prob, 50, "mean")
    top, _ = aggregate_probs(index, prob, 50, "max")
    soft, _ = aggregate_probs(index, prob, 50, "logsumexp")
    z = _logit_array(prob).reshape(50, 4, 3)
    assert (_logit_array(soft) >= z.mean(axis=1) - 1e-9).all()  # above the mean log-odds
    assert (soft <= top + 1e-12).all() and (top >= mean).all()
    same, _ = aggregate_probs(np.zeros(3, np.int64), np.full((3, 2), 0.3), 1, "logsumexp")
    np.testing.assert_allclose(same, 0.3)  # windows all at p give p: 0.5 stays the threshold
    sure, _ = aggregate_probs(np.zeros(2, np.int64), np.array([[0.0], [1.0]]), 1, "logsumexp")
    assert np.isfinite(sure).all()  # saturated windows are clipped, not infinite
    with pytest.raises(ValueError, match="aggregate"):
        aggregate_probs(index, prob, 50, "median")


def _logit_array(p: np.ndarray) -> np.ndarray:
    return np.log(p) - np.log1p(-p)


def test_the_config_key_defaults_to_mean_and_is_checked() -> None:
    for preset in ("tiny", "paper"):
        assert load_config(preset).eval.aggregate == "mean"
    assert load_config("tiny", ["eval.aggregate=logsumexp"]).eval.aggregate == "logsumexp"
    with pytest.raises(TrainerError, match="eval.aggregate"):
        load_config("tiny", ["eval.aggregate=median"])
    assert set(AGGREGATES) == {"mean", "max", "logsumexp"}


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A store of 16-frame clips and a one-epoch checkpoint with 8-frame windows, so that
    every clip is scored from two windows."""
    base = tmp_path_factory.mktemp("aggregate")
    store = build_store(
        base / "store", crop_size=24, frames=16, counts={"train": 2, "val": 1, "test": 1}
    )
    fast = ["epochs=1", "windows_per_clip=1", "batch_size=4", "window=8", "precise_bn=0"]
    args = ["run", "--store", str(store), "--out", str(base / "run")]
    assert call_main(main, [*args, *(a for s in fast for a in ("--set", s))]) == 0
    return store, base / "run" / "checkpoints" / "best.pt"


def _eval(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    capsys.readouterr()
    code = call_main(main, ["eval", *args])
    captured = capsys.readouterr()
    return code, captured.out, captured.err.strip()


@pytest.mark.slow
def test_eval_records_its_aggregation_and_shows_all_side_by_side(
    trained: tuple[Path, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    store, best = trained
    where = [str(best), "--store", str(store), "--force", "--part", "train"]
    code, out, err = _eval(capsys, *where, "--json")
    assert code == 0, err
    default = json.loads(out)
    assert default["aggregate"] == "mean" and "by_aggregate" not in default
    code, out, err = _eval(capsys, *where, "--json", "--aggregate", "all")
    assert code == 0, err
    every = json.loads(out)
    assert every["aggregate"] == "mean" and list(every["by_aggregate"]) == list(AGGREGATES)
    for key in ("auc", "acc", "video_auc"):
        assert every["by_aggregate"]["mean"][key] == default[key]
    code, out, err = _eval(capsys, *where, "--json", "--aggregate", "max")
    assert code == 0, err
    top = json.loads(out)
    assert top["aggregate"] == "max"
    for key in ("auc", "acc", "ap", "audio_auc"):
        assert top[key] == every["by_aggregate"]["max"][key]
    code, out, err = _eval(capsys, *where, "--aggregate", "all")
    assert code == 0, err
    table = out[out.index("clip scores by window aggregation") :]
    header = next(line for line in table.splitlines() if "mean" in line)
    assert header.index("mean") < header.index("max") < header.index("logsumexp")
    assert "mean of windows" in out
    code, _, err = _eval(capsys, *where, "--aggregate", "median")
    assert code == 2 and err.startswith("error: --aggregate must be one of") and "\n" not in err
