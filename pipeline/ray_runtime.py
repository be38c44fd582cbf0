"""Starting Ray: an embedded local instance by default, or joining a cluster.

``--address auto`` (or ``RAY_ADDRESS``) joins an existing cluster; then the
cluster decides the resources and ``--workers`` only caps the tasks in flight.
The embedded instance is quiet (no dashboard, no worker logs on the console)
and sized to the machine or to ``--workers``.
"""

from __future__ import annotations

import contextlib
import logging
import os
from collections.abc import Iterator


def resolve_address(address: str | None) -> str | None:
    return address or os.environ.get("RAY_ADDRESS") or None


@contextlib.contextmanager
def ray_session(address: str | None, workers: int | None) -> Iterator[int]:
    """Yield the number of CPUs Ray offers to tasks; shut down what we started."""
    import ray

    address = resolve_address(address)
    already = ray.is_initialized()
    if not already:
        common = dict(
            include_dashboard=False,
            logging_level=logging.ERROR,
            log_to_driver=False,
            configure_logging=True,
        )
        if address:
            ray.init(address=address, **common)
        else:
            cpus = workers or os.cpu_count() or 1
            # Tasks return small records only; a small object store keeps the
            # footprint low and avoids /dev/shm trouble in containers.
            ray.init(num_cpus=cpus, object_store_memory=128 * 1024**2, **common)
    try:
        total = int(ray.cluster_resources().get("CPU", 1))
        yield min(total, workers) if workers else total
    finally:
        if not already:
            ray.shutdown()
