"""Starting Ray: an embedded local instance by default, or joining a cluster.

``--address auto`` (or ``RAY_ADDRESS``) joins an existing cluster; then the
cluster decides the resources and ``--workers`` only caps the tasks in flight.
The embedded instance is quiet (no dashboard, no worker logs on the console)
and sized to the machine or to ``--workers``. Its session files (sockets, logs,
spilled objects) go to a temporary directory of its own that is deleted when it
shuts down, so an ingest leaves nothing behind in ``/tmp/ray``.
"""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
import tempfile
from collections.abc import Iterator
from typing import Any

#: Unix socket paths are limited to 107 bytes and Ray nests its sockets about 70
#: bytes deep below its temp dir: a longer $TMPDIR falls back to /tmp.
_MAX_TEMP_BASE = 36


def resolve_address(address: str | None) -> str | None:
    return address or os.environ.get("RAY_ADDRESS") or None


@contextlib.contextmanager
def ray_session(address: str | None, workers: int | None) -> Iterator[int]:
    """Yield the number of CPUs Ray offers to tasks; shut down what we started."""
    import ray

    address = resolve_address(address)
    already = ray.is_initialized()
    temp_dir = None
    if not already:
        common: dict[str, Any] = dict(
            include_dashboard=False,
            logging_level=logging.ERROR,
            log_to_driver=False,
            configure_logging=True,
        )
        if address:
            ray.init(address=address, **common)
        else:
            cpus = workers or os.cpu_count() or 1
            temp_dir = _private_temp_dir()
            # Tasks return small records only; a small object store keeps the
            # footprint low and avoids /dev/shm trouble in containers.
            try:
                ray.init(
                    num_cpus=cpus,
                    object_store_memory=128 * 1024**2,
                    _temp_dir=temp_dir,
                    **common,
                )
            except BaseException:
                shutil.rmtree(temp_dir, ignore_errors=True)
                raise
    try:
        total = int(ray.cluster_resources().get("CPU", 1))
        yield min(total, workers) if workers else total
    finally:
        if not already:
            ray.shutdown()
        if temp_dir is not None:
            shutil.rmtree(temp_dir, ignore_errors=True)


def _private_temp_dir() -> str:
    """A new, short temporary directory for one embedded Ray instance.

    A driver killed outright (SIGKILL) cannot delete its directory; the next one
    deletes those whose driver is gone, so leftovers do not pile up.
    """
    base = tempfile.gettempdir()
    if len(base) > _MAX_TEMP_BASE:
        base = "/tmp"
    _sweep_orphans(base)
    return tempfile.mkdtemp(prefix=_PREFIX, dir=base)


_PREFIX = "mscct-ray-"


def _sweep_orphans(base: str) -> None:
    """Delete ``mscct-ray-*`` directories under ``base`` whose Ray driver has exited.

    Ray names each session directory ``session_<date>_<time>_<driver pid>``; a
    directory is an orphan when it holds sessions and none of their drivers lives.
    One that holds no session yet may be starting up, and is left alone.
    """
    for entry in os.scandir(base):
        if not entry.name.startswith(_PREFIX) or not entry.is_dir(follow_symlinks=False):
            continue
        try:
            pids = [int(s.name.rsplit("_", 1)[1]) for s in os.scandir(entry.path)
                    if s.name.startswith("session_2") and s.name.rsplit("_", 1)[1].isdigit()]  # fmt: skip
        except OSError:
            continue
        if pids and not any(_alive(pid) for pid in pids):
            shutil.rmtree(entry.path, ignore_errors=True)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process
        return True
    return True
