"""Head pose from the 68 landmarks: the solver on the model seen at known angles, and
the pose and frontal measures of real synthetic clips (and their mirror images) through
dlib, the store and the manifest record.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest
from installed import needs_landmarks

import schemas
from pipeline.clip.head_pose import (
    MAX_FIT_RESIDUAL,
    frontal_frames,
    frontal_measures,
    head_pose,
    project_model,
)
from pipeline.datasets.source import ClipSource
from pipeline.ingest.driver import process_clip
from pipeline.synth.files import write_clip
from pipeline.synth.plan import plan

ANGLES = [(0, 0, 0), (40, 0, 0), (-45, 10, 0), (-25, 15, 5), (10, -20, -10), (60, 10, 3)]


def test_the_solver_recovers_known_angles_from_noisy_points() -> None:
    rng = np.random.default_rng(0)
    points = np.stack([project_model(*a, scale=1.2) + np.array([110.0, 95.0]) for a in ANGLES])
    noisy = points + rng.normal(0.0, 0.6, points.shape)  # about 0.6 % of the eye distance
    exact, found = head_pose(points), head_pose(noisy)
    assert exact.dtype == np.float32 and exact.shape == (len(ANGLES), 4)
    np.testing.assert_allclose(exact[:, :3], ANGLES, atol=1e-3)
    assert np.all(exact[:, 3] < 1e-4)
    np.testing.assert_allclose(found[:, :3], ANGLES, atol=3.0)
    assert np.all(found[:, 3] < 0.03)
    # A scale and a translation change nothing: crop and frame pixels give one pose.
    np.testing.assert_allclose(head_pose(points * 3.0 - 40.0), exact, atol=1e-3)


def test_frames_without_landmarks_have_no_pose_and_turned_frames_are_not_frontal() -> None:
    frontal, turned, down = (project_model(*a) for a in ((5, 3, 0), (45, 0, 0), (0, 35, 0)))
    scrambled = frontal.copy()
    scrambled[[36, 45, 48, 54]] = scrambled[[48, 54, 36, 45]]  # fits no rigid face
    faceless = np.full((68, 2), np.nan)
    pose = head_pose(np.stack([frontal, frontal, turned, down, scrambled, faceless]))
    assert np.isnan(pose[5]).all() and pose[4, 3] > MAX_FIT_RESIDUAL
    assert frontal_frames(pose).tolist() == [True, True, False, False, False, False]
    measures = frontal_measures(pose)  # the faceless frame does not count
    assert measures.frontal_rate == pytest.approx(2 / 5)
    assert measures.median_abs_yaw == pytest.approx(5.0, abs=0.1)
    assert measures.low_frontal_rate is True  # under the half
    assert frontal_measures(pose[5:]) == frontal_measures(None)
    assert frontal_measures(None).frontal_rate is None


@needs_landmarks
def test_synth_clips_are_frontal_and_their_mirror_turns_the_other_way(tmp_path: Path) -> None:
    spec = plan(1, 1, seed=3)[1][0][1]
    source = tmp_path / "src" / write_clip(spec, tmp_path / "src")
    mirrored = tmp_path / "mirrored.mp4"
    subprocess.run(["ffmpeg", "-v", "error", "-i", source, "-vf", "hflip", mirrored], check=True)
    recipe = schemas.Recipe(landmarks=True)
    store = tmp_path / "store"
    schemas.create_store(store, recipe)
    rows = {}
    for name, path in (("original", source), ("mirrored", mirrored)):
        clip = ClipSource(name, str(path), "RARV", "RealVideo-RealAudio", "id0", "real")
        rows[name] = process_clip(str(path), str(store), clip, recipe.to_dict())
    pa.Table.from_pylist(list(rows.values()), schema=schemas.MANIFEST_SCHEMA)  # the columns fit
    yaw = {}
    for name, row in rows.items():
        assert row["status"] == "ok", row["error"]
        pose = schemas.read_pose(store, name)
        assert pose.shape == (row["num_frames"], 4) and np.isfinite(pose).all()
        assert row["frontal_rate"] == 1.0 and row["low_frontal_rate"] is False
        assert np.abs(pose[:, :3]).max() < 15 and pose[:, 3].max() <= MAX_FIT_RESIDUAL
        assert row["median_abs_yaw"] == pytest.approx(np.median(np.abs(pose[:, 0])))
        yaw[name] = float(np.median(pose[:, 0]))
    # The synthetic face looks a little to one side; its mirror image as far to the other.
    assert abs(yaw["original"]) > 1.5 and np.sign(yaw["original"]) == -np.sign(yaw["mirrored"])
    assert yaw["original"] + yaw["mirrored"] == pytest.approx(0.0, abs=1.0)


def test_a_clip_stored_without_pose_reads_as_unknown(tmp_path: Path) -> None:
    recipe = schemas.Recipe()
    store = tmp_path / "store"
    schemas.create_store(store, recipe)
    video = np.zeros((5, recipe.crop_size, recipe.crop_size, 3), np.uint8)
    audio = np.zeros((5, schemas.AUDIO_CHANNELS), np.float32)
    schemas.write_clip(store, "old", video, audio, {"clip_id": "old"}, recipe)
    assert schemas.open_stream(store, "old", "pose") is None
    pose = schemas.read_pose(store, "old")
    assert pose.shape == (5, 4) and np.isnan(pose).all()
