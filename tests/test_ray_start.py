"""The embedded Ray starts on first need: a rerun with nothing to do never starts it."""

from __future__ import annotations

import subprocess
import sys

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
