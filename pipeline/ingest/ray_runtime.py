"""Starting Ray: an embedded local instance by default, or joining a cluster.

``--address auto`` (or ``RAY_ADDRESS``) joins an existing cluster; then the
cluster decides the resources and ``--workers`` only caps the tasks in flight.
The embedded instance is quiet (no dashboard, no worker logs on the console)
and sized to the machine or to ``--workers``. Its session files (sockets, logs,
spilled objects) go to a temporary directory of its own that is deleted when it
shuts down, so an ingest leaves nothing behind in ``/tmp/ray``. Ray (2.5x and later)
turns token authentication on for a new local instance and, when it finds no token,
writes one to ``~/.ray/auth_token``, outside every root the user gave: the embedded
instance gets a token through its environment instead (:func:`_token_in_environment`),
so authentication stays on and nothing is written to ``$HOME``.

:func:`ray_background` starts it in a thread when the first clip needs a worker, so that
the driver goes on scanning meanwhile (starting Ray takes seconds, most of a small ingest),
and a rerun with nothing to do never starts it.
"""

from __future__ import annotations

import contextlib
import logging
import os
import secrets
import shutil
import tempfile
import threading
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
    with ray_background(address, workers) as starting:
        yield starting.cpus()


@contextlib.contextmanager
def ray_background(address: str | None, workers: int | None) -> Iterator[RayStart]:
    """Yield the :class:`RayStart` that starts Ray in a background thread on first need.

    The caller does its own work (the scan) while Ray starts. On the way out,
    whatever happened, a Ray this started is shut down (with tasks still running:
    their workers die with the node), and its temporary directory deleted.
    """
    starting = RayStart(address, workers)
    try:
        yield starting
    finally:
        starting.close()


class RayStart:
    """``ray.init`` issued in a thread of its own, so the driver need not wait for it.

    :meth:`begin` starts it (once); :meth:`cpus` begins if need be, blocks until Ray is
    up (re-raising what ``ray.init`` raised) and returns the CPUs tasks may use;
    :meth:`close` shuts down what was started, and does nothing if nothing was.

    The thread lives until :meth:`close`: Ray's node processes are started from it
    with a parent-death signal, which Linux sends when the starting *thread* ends.
    """

    def __init__(self, address: str | None, workers: int | None) -> None:
        import ray

        self.address = resolve_address(address)
        self.workers = workers
        self.already = ray.is_initialized()  # a caller's own Ray is left running
        self.temp_dir: str | None = None
        self.error: BaseException | None = None
        self.ready = threading.Event()
        self.release = threading.Event()
        self.thread = threading.Thread(target=self._run, name="ray-init", daemon=True)
        if self.already:
            self.ready.set()

    @property
    def started(self) -> bool:
        """Whether this started a Ray (or found the caller's): False until :meth:`begin`."""
        return self.already or self.thread.ident is not None

    def begin(self) -> None:
        """Start ``ray.init`` in the background unless it is started or running already."""
        if not self.started:
            self.thread.start()

    def _run(self) -> None:
        try:
            self._init()
        except BaseException as exc:  # handed to the thread that waits on it
            self.error = exc
        self.ready.set()
        self.release.wait()  # keep the node processes' parent thread alive

    def _init(self) -> None:
        import ray

        common: dict[str, Any] = dict(
            include_dashboard=False,
            logging_level=logging.ERROR,
            log_to_driver=False,
            configure_logging=True,
        )
        # ray.init warns that it cannot set its SIGTERM handler off the main
        # thread: the driver handles SIGTERM itself.
        with _quiet(logging.getLogger("ray._private.worker")):
            if self.address:
                ray.init(address=self.address, **common)
            else:
                self.temp_dir = _private_temp_dir()
                _token_in_environment()
                # Tasks return small records only; a small object store keeps
                # the footprint low and avoids /dev/shm trouble in containers.
                ray.init(
                    num_cpus=self.workers or os.cpu_count() or 1,
                    object_store_memory=128 * 1024**2,
                    _temp_dir=self.temp_dir,
                    **common,
                )

    def cpus(self) -> int:
        """Wait until Ray is up; the number of CPUs its tasks may use (``workers`` caps it)."""
        import ray

        self.begin()
        self.ready.wait()
        if self.error is not None:
            raise self.error
        total = int(ray.cluster_resources().get("CPU", 1))
        return min(total, self.workers) if self.workers else total

    def close(self) -> None:
        """Shut down the Ray this started (waiting for a start still under way first)."""
        import ray

        if self.already or not self.started:  # a caller's Ray is theirs; none was started
            return
        try:
            self.ready.wait()  # ray.init cannot be interrupted; it is seconds at most
            ray.shutdown()
        finally:
            self.release.set()
            self.thread.join()
            if self.temp_dir is not None:
                shutil.rmtree(self.temp_dir, ignore_errors=True)


#: Where Ray looks for its authentication token, before ``~/.ray/auth_token``.
_TOKEN_SETTINGS = ("RAY_AUTH_TOKEN", "RAY_AUTH_TOKEN_PATH")


def _token_in_environment() -> None:
    """Give the embedded Ray a random token in ``RAY_AUTH_TOKEN`` unless the user gave
    Ray a token already (theirs is kept; ``RAY_AUTH_MODE`` is theirs to set).

    Ray's node processes inherit the variable, so the driver, the raylet and the
    workers share the token; it lives as long as this process and is never written
    to disk (``ray.init`` would otherwise save a new one as ``~/.ray/auth_token``).
    """
    if not any(name in os.environ for name in _TOKEN_SETTINGS):
        os.environ["RAY_AUTH_TOKEN"] = secrets.token_hex(32)  # 256 bits, as Ray's own


@contextlib.contextmanager
def _quiet(logger: logging.Logger) -> Iterator[None]:
    """Drop ``logger``'s warnings for the block (errors still show)."""
    level = logger.level
    logger.setLevel(logging.ERROR)
    try:
        yield
    finally:
        logger.setLevel(level)


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
