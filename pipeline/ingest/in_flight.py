"""The driver's tasks in flight, bounded: decide, submit and collect clips a few at a time.

The scan's clips are decided lazily: a clip is skip-checked (is it current in the
store?) only when there is room in flight for it, submitted at once if it is not,
and its record collected when its task ends. So the driver holds at most
``size`` pending tasks and their clips, whatever the dataset's size, and the
first task starts after one skip check, not after all of them. The clips may
still be coming from a scan that runs meanwhile (:mod:`pipeline.ingest.scan_stream`):
``None`` in the stream means "none yet", and the driver tends its tasks until
the next one arrives.

On a stop request (a signal, :mod:`pipeline.ingest.stop_signals`) it submits nothing
more, keeps the ok records of tasks already finished, and force-cancels the
rest: a cancelled clip gets no record (it stays to do, not failed).
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Any

from pipeline.datasets import ClipSource
from schemas import STATUS_OK

#: Seconds between looks at the stop flag while tasks run.
POLL_S = 0.25
#: What ``next(todo, ...)`` returns once the clips are all handed out.
_EXHAUSTED = object()
#: Skipped clips are reported (``on_skip(n)``) at least every this many.
SKIP_BATCH = 1000


@dataclass
class Tally:
    """What a run did so far: clips submitted, skipped as current, recorded ok / failed."""

    submitted: int = 0
    skipped: int = 0
    ok: int = 0
    failed: int = 0

    def count(self, record: dict[str, Any]) -> None:
        if record["status"] == STATUS_OK:
            self.ok += 1
        else:
            self.failed += 1


def clips_to_do(
    clips: Iterable[ClipSource | None],
    is_current: Callable[[ClipSource], bool],
    tally: Tally,
    on_skip: Callable[[int], None] | None,
    stopping: Callable[[], bool],
) -> Iterator[ClipSource | None]:
    """The clips not current in the store, skip-checked one by one as they are asked for
    (a ``None``, "no clip yet", is passed on as it is).

    Skipped clips are counted in ``tally`` and reported to ``on_skip(n)`` in batches
    (before the next clip to do is handed out, and at the end). Ends early on ``stopping()``.
    """
    unreported = 0

    def report() -> None:
        nonlocal unreported
        if unreported and on_skip is not None:
            on_skip(unreported)
        unreported = 0

    for clip in clips:
        if stopping():
            break
        if clip is None:
            report()
            yield None
            continue
        if is_current(clip):
            tally.skipped += 1
            unreported += 1
            if unreported >= SKIP_BATCH:
                report()
            continue
        report()
        yield clip
    report()


def drive(
    todo: Iterator[ClipSource | None],
    submit: Callable[[ClipSource], Any],
    result_of: Callable[[Any, ClipSource], dict[str, Any]],
    add: Callable[[dict[str, Any]], None],
    size: int,
    stopping: Callable[[], bool],
    flush: Callable[[], None],
    flush_every_s: float = 2.0,
) -> bool:
    """Run ``todo`` through Ray with at most ``size`` tasks in flight; True if stopped.

    A ``None`` from ``todo`` (no clip yet) ends this round of submitting: the driver
    waits on its tasks, then asks again.

    ``submit(clip)`` starts a task and returns its ref, ``result_of(ref, clip)`` is its
    record, ``add(record)`` books it; ``flush()`` runs every ``flush_every_s`` seconds.
    """
    import ray

    pending: dict[Any, ClipSource] = {}
    last_flush = time.monotonic()
    exhausted = False
    while not stopping():
        while not exhausted and len(pending) < size and not stopping():
            clip = next(todo, _EXHAUSTED)
            if clip is _EXHAUSTED:
                exhausted = True
            elif clip is None:
                break  # none yet: tend the tasks, then ask again
            else:
                assert isinstance(clip, ClipSource)
                pending[submit(clip)] = clip
        if not pending and exhausted:
            break
        if pending:  # (with none pending, the stream's None already waited)
            done, _ = ray.wait(list(pending), num_returns=1, timeout=POLL_S)
            if stopping():  # a record that ended with the signal may be its victim
                break
            for ref in done:
                add(result_of(ref, pending.pop(ref)))
        if time.monotonic() - last_flush > flush_every_s:
            flush()
            last_flush = time.monotonic()
    if not stopping():
        return False
    _cancel(pending, result_of, add)
    return True


def _cancel(
    pending: dict[Any, ClipSource],
    result_of: Callable[[Any, ClipSource], dict[str, Any]],
    add: Callable[[dict[str, Any]], None],
) -> None:
    """Book the ok records of finished tasks; force-cancel the others (no record)."""
    import ray

    if not pending:
        return
    ready, running = ray.wait(list(pending), num_returns=len(pending), timeout=0)
    for ref in running:
        # It may have finished meanwhile, or Ray be going down: nothing left to stop.
        with contextlib.suppress(Exception):
            ray.cancel(ref, force=True)
    for ref in ready:
        record = result_of(ref, pending[ref])
        if record["status"] == STATUS_OK:  # committed: the manifest must name it
            add(record)
