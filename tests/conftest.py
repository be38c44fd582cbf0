"""Shared fixtures: one small synthetic dataset and one store ingested from it per session.

Both are real: media made by ffmpeg (``pipeline.synth``), ingested by the real CLI with
ffmpeg, dlib and a local Ray. Tests that modify data copy it first.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

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


@pytest.fixture(scope="session")
def synth_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """``FakeAVCeleb_v1.2`` folder with 3 clips per category (3 identities), seed 0."""
    from pipeline.synth import make_dataset

    out = tmp_path_factory.mktemp("synth")
    return make_dataset(out / "data", per_category=3, seed=0).root


@pytest.fixture(scope="session")
def ingested_store(synth_root: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The synthetic dataset ingested with the default recipe (read-only for tests)."""
    store = tmp_path_factory.mktemp("store") / "store"
    ingest_json(synth_root, "--store", store)
    return store
