"""The ingest benchmark's per-stage CPU profile measures what it says, on a real clip."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import typer
from installed import needs_landmarks
from media_fixtures import make_clip

import schemas
from benchmarks import bench_ingest, ingest_profile
from pipeline.clip.landmarks import landmarks_available


def test_box_jitter_is_centre_motion_over_box_side() -> None:
    still = np.tile(np.array([[10.0, 20.0, 110.0, 120.0]]), (5, 1))
    assert ingest_profile.box_jitter(still) == 0.0
    moving = still + np.arange(5)[:, None] * np.array([1.0, 0.0, 1.0, 0.0])
    assert ingest_profile.box_jitter(moving) == pytest.approx(0.01)


@needs_landmarks
def test_every_stage_of_both_paths_is_measured(tmp_path: Path) -> None:
    clip = make_clip(tmp_path / "clip.mp4")
    store = tmp_path / "store"
    recipe = bench_ingest.bench_recipe("mouth")  # the CLI's default, with mouth crops
    schemas.create_store(store, recipe)
    startup = ingest_profile.startup_cpu_s(runs=3)
    assert startup > 0
    process = ingest_profile.clip_stages(clip, False, store, startup, recipe)
    inside = ingest_profile.clip_stages(clip, True, store, startup, recipe)
    new_stages = {"landmarks", "mouth", "shots", "speaker", "head_pose", "speech"}
    assert new_stages <= set(ingest_profile.STAGES)
    for stages in (process, inside):
        assert set(ingest_profile.STAGES) <= set(stages)
        assert all(stages[name] >= 0 for name in ingest_profile.STAGES)
        assert stages["face_detection"] > 0 and stages["commit"] > 0
        assert stages["landmarks"] > 0 and stages["mouth"] > 0 and stages["head_pose"] > 0
        assert sum(stages[name] for name in ingest_profile.STAGES) > 0.5 * stages["total"]
    assert process["processes"] == 1 and process["process_start"] == startup
    assert inside["processes"] == 0 and inside["process_start"] == 0
    assert inside["audio_decode"] > 0 and inside["video_decode"] > 0


def test_the_benchmark_times_the_recipe_ingest_uses_by_default(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``mscct-pipeline ingest ROOT`` with no option builds the benchmark's default recipe."""
    from typer.testing import CliRunner

    import pipeline.cli.ingest as cli_ingest
    from pipeline.cli import app

    seen: list[schemas.Recipe] = []

    def capture(root: Path, options: object) -> None:
        seen.append(options.recipe)  # type: ignore[attr-defined]
        raise typer.Exit(0)

    monkeypatch.setattr(cli_ingest, "_ingest_with_progress", capture)
    result = CliRunner().invoke(app, ["ingest", str(tmp_path), "--store", str(tmp_path / "s")])
    assert result.exit_code == 0, result.output
    assert seen == [bench_ingest.bench_recipe("default")]
    assert seen[0].landmarks == landmarks_available()  # on wherever the predictor is
    assert bench_ingest.bench_recipe("bare") == schemas.Recipe()
    assert bench_ingest.bench_recipe("mouth").streams == ("face", "mouth")
