"""Ctrl-C and SIGTERM during an ingest: stop cleanly on the first, harder on the second.

While an ingest runs, :class:`StopSignals` holds the process's SIGINT and SIGTERM
handlers. Outside the task loop (the scan, opening the store) a signal raises
:class:`IngestInterrupted` at once: nothing is written there that a rerun would
miss. Inside it (:meth:`StopSignals.deferred`) the first signal only asks the
driver to stop: it stops submitting, cancels its running tasks, writes the
manifest, releases the lock and shuts Ray down, then raises
:class:`IngestInterrupted`. A second signal while it stops raises at once (the
lock still goes with its file descriptor, Ray's processes with their parent).
"""

from __future__ import annotations

import contextlib
import signal
import threading
from collections.abc import Iterator
from types import FrameType
from typing import Any

#: The signals an ingest stops on.
STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)


class IngestInterrupted(KeyboardInterrupt):
    """An ingest stopped by SIGINT or SIGTERM, after its cleanup.

    ``committed`` clips were committed by this run before it stopped (the others
    stay to do: a rerun resumes). ``exit_code`` is the shell's 128 + signal number
    (130 for SIGINT, 143 for SIGTERM). A subclass of ``KeyboardInterrupt`` so that
    code catching that (as a Ctrl-C) still does.
    """

    def __init__(self, signum: int, committed: int = 0) -> None:
        super().__init__(signum, committed)
        self.signum = signum
        self.committed = committed

    @property
    def exit_code(self) -> int:
        return 128 + self.signum

    def __str__(self) -> str:
        name = signal.Signals(self.signum).name
        return (
            f"stopped by {name}: {self.committed} clips committed by this run; "
            "rerun the same command to resume"
        )


class StopSignals:
    """SIGINT/SIGTERM handlers for one ingest (a no-op off the main thread)."""

    def __init__(self) -> None:
        self.signum: int | None = None  # the first signal received, if any
        self._defer = False
        self._previous: dict[int, Any] = {}

    @property
    def stopping(self) -> bool:
        return self.signum is not None

    def __enter__(self) -> StopSignals:
        if threading.current_thread() is threading.main_thread():
            for sig in STOP_SIGNALS:
                self._previous[sig] = signal.signal(sig, self._handle)
        return self

    def reinstall(self) -> None:
        """Take the signals back from whoever set handlers since (Ray's core worker
        installs a crash handler for SIGTERM that would abort the process)."""
        for sig in self._previous:
            signal.signal(sig, self._handle)

    def __exit__(self, *exc: object) -> None:
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)
        self._previous.clear()

    @contextlib.contextmanager
    def deferred(self) -> Iterator[None]:
        """In the block, the first signal only sets :attr:`signum` (the caller polls it)."""
        self._defer = True
        try:
            yield
        finally:
            self._defer = False

    def check(self, committed: int = 0) -> None:
        """Raise :class:`IngestInterrupted` if a signal came."""
        if self.signum is not None:
            raise IngestInterrupted(self.signum, committed)

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        first = self.signum is None
        if first:
            self.signum = signum
        if first and self._defer:
            return  # the driver's loop sees it within a fraction of a second
        raise IngestInterrupted(self.signum or signum)
