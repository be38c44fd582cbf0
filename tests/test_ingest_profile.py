"""The ingest benchmark's per-stage CPU profile measures what it says, on a real clip."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from media_fixtures import make_clip

import schemas
from benchmarks import ingest_profile

pytest.importorskip("av")


def test_box_jitter_is_centre_motion_over_box_side() -> None:
    still = np.tile(np.array([[10.0, 20.0, 110.0, 120.0]]), (5, 1))
    assert ingest_profile.box_jitter(still) == 0.0
    moving = still + np.arange(5)[:, None] * np.array([1.0, 0.0, 1.0, 0.0])
    assert ingest_profile.box_jitter(moving) == pytest.approx(0.01)


def test_every_stage_of_both_paths_is_measured(tmp_path: Path) -> None:
    clip = make_clip(tmp_path / "clip.mp4")
    store = tmp_path / "store"
    schemas.create_store(store, schemas.Recipe())
    startup = ingest_profile.startup_cpu_s(runs=3)
    assert startup > 0
    process = ingest_profile.clip_stages(clip, False, store, startup)
    inside = ingest_profile.clip_stages(clip, True, store, startup)
    for stages in (process, inside):
        assert set(ingest_profile.STAGES) <= set(stages)
        assert all(stages[name] >= 0 for name in ingest_profile.STAGES)
        assert stages["face_detection"] > 0 and stages["commit"] > 0
    assert process["processes"] == 1 and process["process_start"] == startup
    assert inside["processes"] == 0 and inside["process_start"] == 0
    assert inside["audio_decode"] > 0 and inside["video_decode"] > 0
