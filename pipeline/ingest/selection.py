"""Which clips an ingest run decides, and when they reach the driver.

:func:`select_clips` filters a finished scan by category and takes ``--limit``
clips round-robin over the categories; :func:`start_scan` starts the dataset's
scan in its thread (:mod:`pipeline.ingest.scan_stream`) and hands the driver the clips
as they are found, telling ``on_start`` the count once the scan has ended. The
driver (:func:`pipeline.ingest.driver.run_ingest`) only skip-checks and submits them.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import schemas
from pipeline.datasets import ClipSource, ScanResult
from pipeline.ingest.scan_stream import ScanStream
from pipeline.ingest.stop_signals import StopSignals

if TYPE_CHECKING:
    from pipeline.ingest.driver import IngestOptions


def select_clips(
    scan: ScanResult, categories: Iterable[str], limit: int | None
) -> list[ClipSource]:
    """Filter by category, then take the first ``limit`` clips round-robin over categories,
    so that a small ``--limit`` still covers all four (and the unlabelled clips, category
    ``""``, as a fifth; a ``categories`` filter names labelled categories only)."""
    wanted = set(categories) or {*schemas.CATEGORIES, ""}
    order = (*schemas.CATEGORIES, "")
    by_category: dict[str, list[ClipSource]] = {c: [] for c in order}
    for clip in scan.clips:
        if clip.category in wanted and clip.category in by_category:
            by_category[clip.category].append(clip)
    queues = [by_category[c] for c in order]
    chosen: list[ClipSource] = []
    index = 0
    while any(index < len(q) for q in queues):
        chosen.extend(q[index] for q in queues if index < len(q))
        index += 1
    return chosen[:limit] if limit is not None else chosen


def start_scan(
    root: Path,
    dataset: str,
    options: IngestOptions,
    signals: StopSignals,
    on_start: Callable[[int], None] | None,
) -> tuple[ScanStream, Iterator[ClipSource | None]]:
    """The scan started in its thread, and the clips to decide, as they come.

    Returns once the scan has found a first clip or ended (a scan that fails at once
    fails here, before any store is made); with ``limit``, once it has ended.
    """
    if options.limit is not None:  # the round-robin over categories needs every clip
        stream = ScanStream(root, dataset, lambda: signals.stopping, lambda _: False).start()
        chosen = select_clips(stream.result(), options.categories, options.limit)
        if on_start:
            on_start(len(chosen))
        return stream, iter(chosen)
    wanted = set(options.categories) or {*schemas.CATEGORIES, ""}
    stream = ScanStream(
        root, dataset, lambda: signals.stopping, lambda clip: clip.category in wanted
    ).start()
    stream.wait_first()

    def announced() -> Iterator[ClipSource | None]:
        told = False
        for clip in stream.clips():
            if not told and stream.done and not stream.failed():
                told = True
                if on_start:
                    on_start(stream.total)
            yield clip
        if not told and stream.done and not stream.failed() and on_start:
            on_start(stream.total)

    return stream, announced()
