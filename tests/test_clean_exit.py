"""Processes end cleanly: no abort at exit after a user error, nothing left in ``$HOME``.

The abort (Medium 10 of the third reliability round): ``mscct-pipeline inspect --sheet X
--sort best`` printed its one-line error, then died about 1 run in 30 with SIGABRT
("terminate called without an active exception", exit -6 instead of 2). A core dump
showed an Arrow I/O thread releasing the read-ahead buffers of ``pq.read_table`` after
the read had returned; the buffers wrapped the Python file object, so releasing them
took the GIL while the interpreter was shutting down, CPython ended the thread with
``pthread_exit`` and the unwinding through a ``noexcept`` destructor called
``std::terminate``. Store tables are now read synchronously (``schemas.parquet_read``).
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from cli_helpers import run_cli

# Loads what ``inspect --sheet`` loads, then runs the failing command in forked children,
# each from the same loaded state: every child reads the manifest, reports the user error
# and exits through the interpreter's shutdown, the path that aborted. A fork costs
# milliseconds where a fresh interpreter costs most of a second.
_REPEAT = """
import collections, os, sys
import pipeline.cli
import pipeline.report.html_report, pipeline.report.sheet
store, sheet, runs = sys.argv[1], sys.argv[2], int(sys.argv[3])
codes = collections.Counter()
for _ in range(runs):
    pid = os.fork()
    if pid == 0:
        os.dup2(os.open(os.devnull, os.O_WRONLY), 2)
        pipeline.cli.main(["inspect", "--store", store, "--sheet", sheet, "--sort", "best"])
        os._exit(99)  # not reached: main ends the process
    codes[os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1])] += 1
print(dict(codes))
"""


def test_user_error_exits_never_abort(ingested_store: Path, tmp_path: Path) -> None:
    """50 runs of the error path that aborted: every one exits 2 (before the fix about
    one child in six died of SIGABRT, exit -6: 50 clean runs by chance is 1 in 9,000)."""
    proc = subprocess.run(
        [sys.executable, "-c", _REPEAT, str(ingested_store), str(tmp_path / "x.png"), "50"],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert proc.stdout.strip() == "{2: 50}", proc.stdout
    assert not (tmp_path / "x.png").exists()


def test_ingest_writes_nothing_in_home(synth_root: Path, tmp_path: Path) -> None:
    """Low 5: each ingest left ``~/.ray/auth_token``: Ray 2.5x turns token authentication
    on for a new local instance and saves a new token in ``$HOME``. The embedded Ray now
    gets its token through the environment."""
    home = tmp_path / "home"
    home.mkdir()
    env = {**os.environ, "HOME": str(home), "COLUMNS": "120"}
    for name in ("RAY_AUTH_TOKEN", "RAY_AUTH_TOKEN_PATH", "RAY_AUTH_MODE"):
        env.pop(name, None)
    proc = subprocess.run(
        [str(Path(sys.executable).parent / "mscct-pipeline"), "ingest", str(synth_root),
         "--store", str(tmp_path / "store"), "--limit", "1", "--no-landmarks"],
        capture_output=True, text=True, timeout=600, env=env,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert sorted(p.relative_to(home) for p in home.rglob("*")) == []
    assert run_cli("mscct-pipeline", "inspect", "--store", tmp_path / "store").returncode == 0
