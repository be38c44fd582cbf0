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
and a rerun with nothing to do never starts it. The driver waits for the start
:data:`START_TIMEOUT_S` at most: a start that never ends (see :class:`RayStartTimeout`)
is an error, and the processes it forked are killed.
"""

from __future__ import annotations

import contextlib
import logging
import math
import os
import secrets
import shutil
import signal
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

#: Unix socket paths are limited to 107 bytes and Ray nests its sockets about 70
#: bytes deep below its temp dir: a longer $TMPDIR falls back to /tmp.
_MAX_TEMP_BASE = 36

#: How long the driver waits for Ray to start. A local start takes seconds, and
#: ``ray.init`` gives up on its own waits (GCS, raylet) well before this; only a start
#: that can never end reaches it.
START_TIMEOUT_S = 300.0

#: How long a start whose processes were killed may take to notice and give up.
_GIVE_UP_S = 90.0


class RayStartTimeout(RuntimeError):
    """Ray did not start within the driver's wait.

    Ray starts its node processes with ``fork`` and a ``preexec_fn`` from the starting
    thread, so the child runs Python's after-fork code, which frees the other threads'
    state. If that state holds a lock or a thread pool (PyAV 18.1.1 keeps a multi-threaded
    ``SwsContext`` per thread that has called ``VideoFrame.reformat``), the child waits
    forever before it can ``exec``, and so does ``ray.init``.
    """


def resolve_address(address: str | None) -> str | None:
    return address or os.environ.get("RAY_ADDRESS") or None


@contextlib.contextmanager
def ray_session(address: str | None, workers: int | None) -> Iterator[int]:
    """Yield the number of CPUs Ray offers to tasks; shut down what we started."""
    with ray_background(address, workers) as starting:
        yield starting.cpus()


@contextlib.contextmanager
def ray_background(
    address: str | None, workers: int | None, start_timeout_s: float = START_TIMEOUT_S
) -> Iterator[RayStart]:
    """Yield the :class:`RayStart` that starts Ray in a background thread on first need.

    The caller does its own work (the scan) while Ray starts. On the way out,
    whatever happened, a Ray this started is shut down (with tasks still running:
    their workers die with the node), and its temporary directory deleted.
    """
    starting = RayStart(address, workers, start_timeout_s)
    try:
        yield starting
    finally:
        starting.close()


class RayStart:
    """``ray.init`` issued in a thread of its own, so the driver need not wait for it.

    :meth:`begin` starts it (once); :meth:`cpus` begins if need be, blocks until Ray is
    up (re-raising what ``ray.init`` raised) and returns the CPUs tasks may use;
    :meth:`close` shuts down what was started, and does nothing if nothing was. Neither
    waits for the start longer than ``start_timeout_s`` from :meth:`begin`.

    The thread lives until :meth:`close`: Ray's node processes are started from it
    with a parent-death signal, which Linux sends when the starting *thread* ends.
    """

    def __init__(
        self, address: str | None, workers: int | None, start_timeout_s: float = START_TIMEOUT_S
    ) -> None:
        import ray

        self.address = resolve_address(address)
        self.workers = workers
        self.start_timeout_s = start_timeout_s
        self.deadline = math.inf  # set by begin()
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
            self.deadline = time.monotonic() + self.start_timeout_s
            self.thread.start()

    def _wait_started(self) -> bool:
        """Wait for the start to end (well or not) until the deadline; whether it did."""
        return self.ready.wait(max(0.0, self.deadline - time.monotonic()))

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
        if not self._wait_started():
            raise RayStartTimeout(
                f"Ray did not start within {self.start_timeout_s:.0f} s: a process its start "
                "forked never got going (a library that keeps threads across a fork can cause "
                "this, such as PyAV 18.1.1 after VideoFrame.reformat in another thread)"
            )
        if self.error is not None:
            raise self.error
        total = int(ray.cluster_resources().get("CPU", 1))
        return min(total, self.workers) if self.workers else total

    def close(self) -> None:
        """Shut down the Ray this started, waiting for a start still under way until the
        deadline; a start that has not ended by then has its processes killed instead."""
        import ray

        if self.already or not self.started:  # a caller's Ray is theirs; none was started
            return
        ended = False
        try:
            ended = self._wait_started()  # ray.init cannot be interrupted, only waited for
            if not ended:
                killed = self._kill_children()
                # ray.init then finds its process gone and gives up after a wait of its
                # own (30 s for the GCS), cleaning up as it goes, though it never reaps
                # a process whose start it took for a success
                ended = self.ready.wait(_GIVE_UP_S)
                for pid in killed:
                    with contextlib.suppress(ChildProcessError):  # reaped already
                        os.waitpid(pid, 0)
            if ended:
                ray.shutdown()
        finally:
            self.release.set()
            if ended:
                self.thread.join()
                if self.temp_dir is not None:
                    shutil.rmtree(self.temp_dir, ignore_errors=True)
            # else the start keeps its (daemon) thread, which may still write to its
            # directory: the next embedded start sweeps it once this process has exited.

    def _kill_children(self) -> list[int]:
        """SIGKILL every process the starting thread forked (Linux lists them per thread),
        so an abandoned start leaves no process behind; their process ids."""
        try:
            children = Path(f"/proc/self/task/{self.thread.native_id}/children").read_text()
        except OSError:  # not Linux, or the thread has ended
            return []
        pids = [int(pid) for pid in children.split()]
        for pid in pids:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        return pids


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
