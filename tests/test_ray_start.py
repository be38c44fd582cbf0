"""The embedded Ray starts on first need: a rerun with nothing to do never starts it."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]

# In a fresh interpreter: a Ray another test left running in this one would count as the
# caller's own (``RayStart.already``), and the check is of a process that has none.
_CHECK = """
import ray
from pipeline.ingest.ray_runtime import ray_background
with ray_background(None, 1) as start:
    assert not start.started  # nothing asked for a worker: no Ray, nothing to shut down
assert not ray.is_initialized()
with ray_background(None, 1) as start:
    assert start.cpus() == 1 and start.started and ray.is_initialized()
assert not ray.is_initialized()
print("ok")
"""


def test_ray_starts_only_when_asked_for_workers() -> None:
    proc = subprocess.run(
        [sys.executable, "-c", _CHECK], capture_output=True, text=True, timeout=300, check=False
    )
    assert proc.returncode == 0 and proc.stdout.strip() == "ok", proc.stderr[-2000:]


# A start that can never end, made for real: every process forked with a ``preexec_fn``
# (as Ray starts its node processes) runs Python's after-fork hooks, and this one never
# returns within the test, so the child never reaches ``exec``.
_STUCK = """
import os, time
from pathlib import Path
from pipeline.ingest.ray_runtime import RayStartTimeout, ray_background
os.register_at_fork(after_in_child=lambda: time.sleep(600))
began = time.monotonic()
try:
    with ray_background(None, 1, start_timeout_s=15) as start:
        start.cpus()
except RayStartTimeout as exc:
    print("timeout after", round(time.monotonic() - began), "s:", exc)
left = [p for t in Path("/proc/self/task").iterdir() for p in (t / "children").read_text().split()]
print("children left:", left)
print("temp dir left:", os.path.exists(start.temp_dir))
"""


def test_a_start_that_never_ends_is_an_error_and_leaves_no_process() -> None:
    # ray.init's own wait for its GCS (30 s, spent holding the GIL) follows the kill: 5 s here
    env = {**os.environ, "RAY_gcs_server_port_wait_time_s": "5"}
    proc = subprocess.run(
        [sys.executable, "-c", _STUCK], capture_output=True, text=True, timeout=240, check=False,
        env=env,
    )  # fmt: skip
    lines = proc.stdout.splitlines()
    assert proc.returncode == 0 and len(lines) == 3, proc.stderr[-2000:]
    seconds = int(lines[0].split()[2])
    assert lines[0].startswith("timeout after") and 15 <= seconds < 60, lines[0]
    assert "Ray did not start within 15 s" in lines[0]
    assert lines[1:] == ["children left: []", "temp dir left: False"]


# bench_loader's in-process reader converts frames in the main thread; the ingest's Ray
# then starts from a thread of its own (PyAV 18.1.1 deadlocked the fork on that).
_DECODE_THEN_RAY = """
import sys
from pathlib import Path
import numpy as np
from benchmarks import bench_loader
from pipeline.ingest.ray_runtime import ray_background
mp4 = Path(sys.argv[1])
video = np.random.default_rng(0).integers(0, 255, (12, 64, 64, 3), dtype=np.uint8)
bench_loader.encode_mp4(video, mp4)
assert bench_loader.on_the_fly([mp4], 8)((0, 0, 0, 2)).shape == (8, 64, 64, 3)
with ray_background(None, 1, start_timeout_s=90) as start:
    print("cpus", start.cpus())
"""


def test_ray_starts_after_frames_were_converted_in_the_main_thread(tmp_path: Path) -> None:
    proc = subprocess.run(
        [sys.executable, "-c", _DECODE_THEN_RAY, str(tmp_path / "clip.mp4")],
        capture_output=True, text=True, timeout=240, check=False, cwd=REPO,
    )  # fmt: skip
    assert proc.returncode == 0 and proc.stdout.split() == ["cpus", "1"], proc.stderr[-2000:]
