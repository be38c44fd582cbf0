"""Run the project's console scripts as a user would, in a subprocess."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

BIN = Path(sys.executable).parent


def run_cli(
    *args: str | os.PathLike, timeout: float = 600, check: bool = True
) -> subprocess.CompletedProcess:
    """Run ``mscct-pipeline`` / ``mscct-train`` as a user would, in a subprocess."""
    cmd = [str(BIN / str(args[0])), *map(str, args[1:])]
    env = {**os.environ, "COLUMNS": "120"}
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env=env)
    if check and proc.returncode != 0:
        raise AssertionError(
            f"{' '.join(cmd)} exited {proc.returncode}\nstdout:\n{proc.stdout}\nstderr:\n{proc.stderr}"
        )
    return proc


def ingest_json(
    *args: str | os.PathLike, check: bool = True
) -> tuple[subprocess.CompletedProcess, dict]:
    proc = run_cli("mscct-pipeline", "ingest", *args, "--json", check=check)
    start = proc.stdout.find("{")
    return proc, (json.loads(proc.stdout[start:]) if start >= 0 else {})


def start_ingest(
    root: Path, store: Path, *extra: str, stderr: int | None = subprocess.DEVNULL
) -> subprocess.Popen:
    """``mscct-pipeline ingest ROOT --store STORE ...`` in the background, for fault tests."""
    cmd = [str(BIN / "mscct-pipeline"), "ingest", str(root), "--store", str(store), *extra]
    return subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=stderr, text=True)


def call_main(main: Callable[[list[str]], object], args: list[str]) -> int:
    """Run a CLI's ``main(args)`` in this process; return its exit code."""
    try:
        main(args)
    except SystemExit as exc:
        return int(exc.code or 0)
    return 0
