"""The streaming driver: clips are skip-checked and submitted lazily, a bounded few in flight.

A real in-process ingest (local Ray, one worker) of the 12-clip synthetic dataset,
resumed after a first run committed 4 of them. The store's skip check
(``ManifestBook.is_current``) is wrapped to record when each clip is decided; the
callbacks record when each one is reported.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

import schemas
from pipeline.ingest import in_flight
from pipeline.ingest.driver import IngestOptions, run_ingest
from pipeline.ingest.manifest_book import ManifestBook

CLIPS = 12
FIRST = 4


def test_clips_are_decided_lazily_with_a_bounded_number_in_flight(
    synth_root: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = tmp_path / "store"
    first = run_ingest(synth_root, IngestOptions(store=store, workers=1, limit=FIRST))
    assert (first.submitted, first.ok, first.skipped) == (FIRST, FIRST, 0)
    done_before = {r["clip_id"] for r in schemas.read_manifest(store).to_pylist()}

    events: list[tuple[str, Any]] = []
    checked = ManifestBook.is_current

    def recording_check(self: ManifestBook, clip: Any, source: Path, **kw: Any) -> bool:
        current = checked(self, clip, source, **kw)
        events.append(("check", (clip.clip_id, current)))
        return current

    monkeypatch.setattr(ManifestBook, "is_current", recording_check)
    monkeypatch.setattr(in_flight, "SKIP_BATCH", 1)  # report every skip as it is decided
    result = run_ingest(
        synth_root,
        IngestOptions(store=store, workers=1),
        on_start=lambda n: events.append(("start", n)),
        on_skip=lambda n: events.append(("skip", n)),
        on_progress=lambda r: events.append(("done", r["clip_id"])),
    )

    # Resume: exactly the clips of the first run are skipped, the others processed once.
    assert (result.skipped, result.submitted, result.ok, result.failed) == (FIRST, 8, 8, 0)
    # The total is announced once the scan has ended, before any clip's task ends.
    assert events.count(("start", CLIPS)) == 1
    first_done = next(i for i, e in enumerate(events) if e[0] == "done")
    assert events.index(("start", CLIPS)) < first_done
    skipped = [e for e in events if e[0] == "skip"]
    assert sum(n for _, n in skipped) == FIRST
    checks = [payload for kind, payload in events if kind == "check"]
    assert {c for c, current in checks if current} == done_before
    assert len(checks) == CLIPS and len({c for c, _ in checks}) == CLIPS  # one check each
    done = [payload for kind, payload in events if kind == "done"]
    assert sorted(done) == sorted(c for c, current in checks if not current)

    # Lazy: a task had finished before the last clip was even checked.
    kinds = [kind for kind, _ in events]
    last_check = len(kinds) - 1 - kinds[::-1].index("check")
    assert kinds.index("done") < last_check

    # Bounded: clips decided to do, minus clips finished, never exceeds the limit in flight
    # (2 x CPUs, at least 2: one worker gives 2).
    pending = peak = 0
    for kind, payload in events:
        if kind == "check" and not payload[1]:
            pending += 1
        elif kind == "done":
            pending -= 1
        peak = max(peak, pending)
    assert 1 <= peak <= 2


def test_clips_to_do_stops_on_request_and_reports_skips_in_batches() -> None:
    clips = [object() for _ in range(10)]  # clips_to_do only hands them on
    tally = in_flight.Tally()
    reports: list[int] = []
    stop_after = {"n": 0}

    def stopping() -> bool:
        return stop_after["n"] >= 3

    def is_current(clip: Any) -> bool:
        return clips.index(clip) % 2 == 0  # even ones current

    todo = in_flight.clips_to_do(clips, is_current, tally, reports.append, stopping)  # type: ignore[arg-type]
    handed = []
    for clip in todo:
        handed.append(clips.index(clip))
        stop_after["n"] += 1
    assert handed == [1, 3, 5]  # stopped after three; clip 6 onwards never checked
    assert tally.skipped == 3 and sum(reports) == 3
