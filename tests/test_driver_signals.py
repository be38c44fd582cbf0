"""Ctrl-C and SIGTERM stop a running ingest promptly and leave a store a rerun resumes.

A real ``mscct-pipeline ingest`` runs in its own session (as under a terminal) on the
12-clip synthetic dataset with one worker, so that it is still running after its
first commits. Ctrl-C is sent to its whole process group, as a terminal does (Ray's
and ffmpeg's processes get it too); SIGTERM to the driver alone, as ``kill`` does.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from cli_helpers import BIN, ingest_json
from store_checks import assert_every_clip_once

import schemas
from schemas.lock import store_lock

CLIPS = 12  # the session's synthetic dataset
STOP_WITHIN_S = 20.0  # the bound the issue sets, signal to exit


@pytest.fixture
def short_tmp() -> Iterator[Path]:
    """A short private $TMPDIR: Ray's socket paths, and what its session leaves there."""
    tmp = Path(tempfile.mkdtemp(prefix="ms", dir="/tmp"))
    yield tmp
    shutil.rmtree(tmp, ignore_errors=True)


def _start(root: Path, store: Path, tmp: Path) -> subprocess.Popen:
    cmd = [str(BIN / "mscct-pipeline"), "ingest", str(root), "--store", str(store),
           "--workers", "1"]  # fmt: skip
    env = {**os.environ, "TMPDIR": str(tmp), "COLUMNS": "120"}
    return subprocess.Popen(
        cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
        start_new_session=True,
    )  # fmt: skip


def _committed(store: Path) -> int:
    try:
        return len(list(schemas.committed_records(store)))
    except (OSError, schemas.StoreError):
        return 0  # the store is still being created


def _wait_for_commits(proc: subprocess.Popen, store: Path, n: int) -> None:
    deadline = time.monotonic() + 300  # generous: the machine is busy
    while time.monotonic() < deadline and proc.poll() is None and _committed(store) < n:
        time.sleep(0.2)
    assert proc.poll() is None, "the ingest ended before it could be stopped"
    assert _committed(store) >= n, "no clip was committed in time"


def _processes_under(path: Path) -> list[int]:
    """PIDs of processes whose command line names ``path`` (Ray's, from its session dir)."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                cmdline = (entry / "cmdline").read_bytes()
            except OSError:
                continue
            if str(path).encode() in cmdline:
                found.append(int(entry.name))
    return found


@pytest.mark.parametrize(
    ("signum", "code", "group"),
    [(signal.SIGINT, 130, True), (signal.SIGTERM, 143, False)],
    ids=["ctrl-c", "sigterm"],
)
def test_a_signal_stops_the_ingest_and_a_rerun_resumes(
    synth_root: Path, tmp_path: Path, short_tmp: Path, signum: int, code: int, group: bool
) -> None:
    store = tmp_path / "store"
    proc = _start(synth_root, store, short_tmp)
    try:
        _wait_for_commits(proc, store, 1)
        sent = time.monotonic()
        if group:
            os.killpg(proc.pid, signum)  # what Ctrl-C in a terminal does
        else:
            proc.send_signal(signum)
        _, stderr = proc.communicate(timeout=120)
        took = time.monotonic() - sent
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    assert proc.returncode == code, stderr
    assert took <= STOP_WITHIN_S, f"took {took:.1f} s to stop"
    last = stderr.strip().splitlines()[-1]
    assert "clips committed by this run" in last and "resume" in last, stderr
    assert "Traceback" not in stderr

    with store_lock(store):  # released: this would raise StoreError otherwise
        pass
    manifest = schemas.read_manifest(store).to_pylist()
    assert manifest and all(r["status"] == "ok" for r in manifest), manifest
    committed = {r["clip_id"] for r in schemas.committed_records(store)}
    assert {r["clip_id"] for r in manifest} <= committed
    assert len(committed) < CLIPS
    assert os.listdir(short_tmp) == [], "Ray's session directory was left behind"
    deadline = time.monotonic() + 10  # they die with their parent, within moments
    while _processes_under(short_tmp) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert _processes_under(short_tmp) == [], "Ray processes were left running"

    _, again = ingest_json(synth_root, "--store", store)
    assert again["failed"] == 0 and again["submitted"] + again["skipped"] == CLIPS
    assert again["skipped"] >= len(manifest)
    assert_every_clip_once(store, CLIPS)
