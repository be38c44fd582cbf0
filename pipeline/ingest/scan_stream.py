"""The dataset scan in a thread, its clips handed to the ingest's driver as they are found.

A million-record metadata file takes minutes to read and vet; the driver need not
wait for its end. :class:`ScanStream` runs :func:`pipeline.datasets.scan` in a
thread with itself as the :class:`~pipeline.datasets.collect.ClipSink`: every clip
goes into a queue the moment a record first names it, and :meth:`ScanStream.clips`
hands them out, so the first task starts after the first record. The scan's
report (missing, refused, unlisted and merged rows) and the final clip count are
known when the scan ends, which is long before the tasks end.

Three things can only be known later, and each has its rule:

- *The scan fails at once* (no dataset there, an unreadable metadata file):
  :meth:`ScanStream.wait_first` raises before the caller creates a store, as a
  scan that runs before the ingest would.
- *The scan fails part-way* (a metadata file broken after record N):
  :meth:`clips` stops handing out clips at once; the caller lets the tasks in flight
  finish, writes the manifest and raises the error (:meth:`result`). A rerun, once
  the file is fixed, resumes.
- *A later record merges into a clip handed out already* (same file, same labels,
  another method): the clip's merged ``method`` is in :attr:`late_methods`; the
  driver puts it into the clip's manifest row (:func:`pipeline.ingest.driver.run_ingest`).
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

from pipeline import datasets
from pipeline.datasets import ClipSource, ScanResult

#: Seconds :meth:`ScanStream.clips` waits for the next clip before yielding ``None``.
POLL_S = 0.25


class ScanStopped(Exception):
    """Raised inside the scan thread to end it early (the ingest is stopping)."""


class _End:
    """Queued once, after the last clip (or when the scan failed or stopped)."""


_END = _End()


class ScanStream:
    """:func:`pipeline.datasets.scan` of ``root`` in a thread; see the module docstring."""

    def __init__(
        self,
        root: Path,
        dataset: str,
        stopping: Callable[[], bool],
        wanted: Callable[[ClipSource], bool],
    ) -> None:
        self.root, self.dataset = root, dataset
        self._stopping = stopping
        self._wanted = wanted
        #: The folder the clips' paths are relative to (set before the first clip comes).
        self.dataset_root = root
        #: Wanted clips found so far (all of them once :attr:`done`).
        self.total = 0
        self._queue: queue.SimpleQueue[ClipSource | _End] = queue.SimpleQueue()
        self._first = threading.Event()  # a first clip is queued, or the scan ended
        self._found_any = False
        self._done = threading.Event()
        self._result: ScanResult | None = None
        self._error: BaseException | None = None
        #: clip id -> merged method, for clips a later record merged into.
        self.late_methods: dict[str, str] = {}
        self._thread = threading.Thread(target=self._run, name="mscct-scan", daemon=True)

    # ----------------------------------------------------------------- the sink

    def opened(self, root: Path) -> None:
        self.dataset_root = root

    def found(self, clip: ClipSource) -> None:
        if self._stopping():
            raise ScanStopped
        if self._wanted(clip):
            self.total += 1
            self._queue.put(clip)
            self._found_any = True
            self._first.set()

    def merged(self, clip: ClipSource) -> None:
        # One dict store: atomic under the GIL, read by the driver thread.
        self.late_methods[clip.clip_id] = clip.method

    # ----------------------------------------------------------------- the thread

    def start(self) -> ScanStream:
        self._thread.start()
        return self

    def _run(self) -> None:
        try:
            self._result = datasets.scan(self.root, self.dataset, sink=self)
        except BaseException as exc:  # handed to the driver thread, which raises it
            self._error = exc
        finally:
            self._done.set()
            self._first.set()
            self._queue.put(_END)

    # ----------------------------------------------------------------- the driver's side

    def wait_first(self) -> None:
        """Block until a first clip is found or the scan ended; raise if it failed before
        finding one (after one, its error is the part-way case: :meth:`result`)."""
        while not self._first.wait(POLL_S):
            if self._stopping():
                return
        if not self._found_any and self._error is not None:
            raise self._error

    def clips(self) -> Iterator[ClipSource | None]:
        """The wanted clips in the order the scan found them; ``None`` whenever none
        came for :data:`POLL_S` seconds (the driver tends its tasks meanwhile). Ends
        when the scan ends, fails or the ingest stops."""
        while not self._stopping():
            try:
                item = self._queue.get(timeout=POLL_S)
            except queue.Empty:
                yield None
                continue
            if isinstance(item, _End):
                return
            if self._error is not None:
                return  # failed part-way: what is queued is not handed out
            yield item

    @property
    def done(self) -> bool:
        """Whether the scan has ended (finished or failed)."""
        return self._done.is_set()

    def result(self) -> ScanResult:
        """The whole scan's result, once it has ended; raises its error if it failed
        (:class:`ScanStopped` when the ingest stopped it)."""
        while not self._done.wait(POLL_S):
            if self._stopping():
                raise ScanStopped
        if self._error is not None:
            raise self._error
        assert self._result is not None
        return self._result

    def failed(self) -> bool:
        """Whether the scan ended with an error (:meth:`result` raises it)."""
        return self._done.is_set() and self._error is not None


__all__ = ["POLL_S", "ScanStopped", "ScanStream"]
