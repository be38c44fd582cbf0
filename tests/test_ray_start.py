"""The embedded Ray starts on first need: a rerun with nothing to do never starts it."""

from __future__ import annotations

import ray

from pipeline.ingest.ray_runtime import ray_background


def test_ray_starts_only_when_asked_for_workers() -> None:
    with ray_background(None, 1) as start:
        assert not start.started  # nothing asked for a worker: no Ray, nothing to shut down
    assert not ray.is_initialized()
    with ray_background(None, 1) as start:
        assert start.cpus() == 1 and start.started and ray.is_initialized()
    assert not ray.is_initialized()
