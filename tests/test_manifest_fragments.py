"""The manifest as a base file plus append-only fragments (``schemas.manifest_store``).

Kill tests run a real writer in a subprocess and SIGKILL it at random moments; after
every kill the manifest must read, and hold every fragment whole or not at all.
"""

from __future__ import annotations

import random
import signal
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import pyarrow.parquet as pq
import pytest

import schemas
from schemas import manifest_store as ms

ROWS = 50  # rows per fragment in the kill tests


def _row(clip_id: str, status: str = "ok", note: str = "") -> dict:
    ok = status == "ok"
    return dict(
        clip_id=clip_id, path=f"{clip_id}.mp4", category="RARV", audio_label=0, video_label=0,
        label=0, identity="id00001", method="real", num_frames=2 if ok else 0,
        source_fingerprint="f" * 16, recipe_hash="r", status=status, error=note,
        source_size=100, source_mtime_ns=7,
    )  # fmt: skip


def _table(rows: list[dict]):
    return schemas.rows_to_table(rows, schemas.MANIFEST_SCHEMA)


def _store(tmp_path: Path) -> Path:
    store = tmp_path / "store"
    schemas.create_store(store, schemas.Recipe(crop_size=16))
    assert schemas.manifest_mode(store) == "fragments"
    return store


def test_later_rows_replace_earlier_ones_and_compaction_is_idempotent(tmp_path: Path) -> None:
    store = _store(tmp_path)
    ms.write_fragment(store, _table([_row(f"c{i}") for i in (3, 1, 2)]), 1)
    ms.write_fragment(store, _table([_row("c2", "failed", "bad"), _row("c0")]), 2)
    ms.write_fragment(store, _table([_row("c2", "ok", "again")]), 3)
    merged = schemas.read_manifest(store)
    assert merged.column("clip_id").to_pylist() == ["c0", "c1", "c2", "c3"]
    assert merged.to_pylist()[2]["error"] == "again"

    assert schemas.compact_manifest(store).equals(merged)
    assert ms.fragment_paths(store) == [] and schemas.read_manifest(store).equals(merged)
    base = store / "manifest.parquet"
    before = (base.read_bytes(), base.stat().st_mtime_ns)
    schemas.compact_manifest(store)  # nothing to fold: nothing written
    assert (base.read_bytes(), base.stat().st_mtime_ns) == before
    assert ms.next_seq(store) == 1  # a settled base records nothing to skip


def test_fragments_folded_by_a_killed_compaction_are_skipped(tmp_path: Path) -> None:
    store = _store(tmp_path)
    ms.write_fragment(store, _table([_row("a", "failed", "old")]), 1)
    ms.write_fragment(store, _table([_row("b")]), 2)
    whole = _table([_row("a"), _row("b")])
    # The state a compaction leaves when killed after writing its base, before deleting.
    ms._write_base(store, whole, 2, durable=False)
    assert schemas.read_manifest(store).equals(whole)
    assert ms.next_seq(store) == 3
    ms.write_fragment(store, _table([_row("c")]), 3)
    assert schemas.read_manifest(store).column("clip_id").to_pylist() == ["a", "b", "c"]
    assert ms.sweep_fragment_leftovers(store) == 2  # fragments 1 and 2 are stale
    schemas.compact_manifest(store)
    assert schemas.read_manifest(store).column("clip_id").to_pylist() == ["a", "b", "c"]


def test_an_unreadable_fragment_is_a_one_line_store_error(tmp_path: Path) -> None:
    store = _store(tmp_path)
    path = ms.write_fragment(store, _table([_row("a")]), 1)
    path.write_bytes(path.read_bytes()[:40])
    with pytest.raises(schemas.StoreError, match="cannot read"):
        schemas.read_manifest(store)


WRITER = textwrap.dedent(
    """
    import os
    import sys
    import schemas
    from schemas import manifest_store as ms
    sys.path.insert(0, sys.argv[3])
    from test_manifest_fragments import ROWS, _row, _table

    store, compact_every = sys.argv[1], int(sys.argv[2])
    k = 0
    while True:
        seq = ms.next_seq(store)
        rows = [_row(f"f{os.getpid()}x{k:06d}-{i:03d}") for i in range(ROWS)]
        ms.write_fragment(store, _table(rows), seq, durable=False)
        k += 1
        if compact_every and k % compact_every == 0:
            schemas.compact_manifest(store, durable=False)
    """
)


def _start_writer(store: Path, compact_every: int) -> subprocess.Popen:
    here = str(Path(__file__).parent)
    return subprocess.Popen([sys.executable, "-c", WRITER, str(store), str(compact_every), here])


def _assert_whole_fragments(store: Path) -> int:
    """The manifest reads, and each fragment's rows are all there or none is."""
    ids = schemas.read_manifest(store).column("clip_id").to_pylist()
    counts: dict[str, int] = {}
    for clip_id in ids:
        counts[clip_id.split("-")[0]] = counts.get(clip_id.split("-")[0], 0) + 1
    assert all(n == ROWS for n in counts.values()), counts
    return len(counts)


@pytest.mark.parametrize("compact_every", [0, 3])
def test_sigkill_while_writing_leaves_only_whole_fragments(
    tmp_path: Path, compact_every: int
) -> None:
    store = _store(tmp_path)
    rng = random.Random(compact_every)
    seen = 0
    for _ in range(5):
        proc = _start_writer(store, compact_every)
        deadline = time.monotonic() + 60
        while not ms.fragment_paths(store) and time.monotonic() < deadline:
            time.sleep(0.02)  # the interpreter and pyarrow take a while to start
        time.sleep(rng.uniform(0.05, 0.6))
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        found = _assert_whole_fragments(store)
        assert found >= seen  # what was visible stays visible
        seen = found
    assert seen > 5
    schemas.compact_manifest(store)  # what the killed writers left is swept and folded
    assert not any(p.name.startswith(".") for p in (store / "manifest.d").iterdir())
    assert _assert_whole_fragments(store) == seen


def test_a_reader_during_writes_and_compactions_always_gets_a_whole_table(
    tmp_path: Path,
) -> None:
    store = _store(tmp_path)
    proc = _start_writer(store, compact_every=2)
    reads: list[int] = []
    errors: list[BaseException] = []

    def read_loop() -> None:
        deadline = time.monotonic() + 6
        while time.monotonic() < deadline:
            try:
                reads.append(_assert_whole_fragments(store))
            except schemas.StoreError as exc:
                if "no manifest yet" not in str(exc):
                    errors.append(exc)
            except BaseException as exc:
                errors.append(exc)

    reader = threading.Thread(target=read_loop)
    try:
        reader.start()
        reader.join()
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    assert not errors, errors[:3]
    assert len(reads) > 10 and reads[-1] > reads[0]


def test_write_manifest_folds_every_fragment(tmp_path: Path) -> None:
    store = _store(tmp_path)
    ms.write_fragment(store, _table([_row("a")]), 1)
    schemas.write_manifest(store, _table([_row("z")]))
    assert schemas.read_manifest(store).column("clip_id").to_pylist() == ["z"]
    assert ms.fragment_paths(store) == []
    assert not (pq.read_schema(store / "manifest.parquet").metadata or {})


def test_the_compact_command_folds_fragments_under_the_lock(tmp_path: Path) -> None:
    from cli_helpers import run_cli

    from schemas.lock import store_lock

    store = _store(tmp_path)
    ms.write_fragment(store, _table([_row("a")]), 1)
    with store_lock(store):  # an ingest is writing: refused, nothing folded
        busy = run_cli("mscct-pipeline", "compact", "--store", store, check=False)
    assert busy.returncode == 2 and "being written" in busy.stderr
    assert len(ms.fragment_paths(store)) == 1
    done = run_cli("mscct-pipeline", "compact", "--store", store)
    assert "1 fragments folded" in done.stdout and ms.fragment_paths(store) == []
    assert "nothing to fold" in run_cli("mscct-pipeline", "compact", "--store", store).stdout
    assert schemas.read_manifest(store).column("clip_id").to_pylist() == ["a"]
