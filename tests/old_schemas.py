"""The ``schemas`` package of an earlier store format, from this repository's history.

Tests of backward compatibility write a store with the code that wrote that format, in a
subprocess, and read it with today's code. The commit is found by its ``FORMAT_VERSION``
(the newest commit of ``schemas/layout.py`` that has it), so the tests keep testing the
same format as later commits land. Only a checkout without that history (a
shallow clone) skips them, and says so; with the whole history, a format no commit writes
fails them.
"""

from __future__ import annotations

import subprocess
import tarfile
from io import BytesIO
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


def _git(*args: str, text: bool = True) -> subprocess.CompletedProcess:
    return subprocess.run(["git", "-C", str(REPO), *args], capture_output=True, text=text)


def schemas_of_format(version: int, dest: Path) -> Path:
    """Extract under ``dest`` the ``schemas`` package of the newest commit writing
    ``version``; return ``dest`` (put it first on ``PYTHONPATH``)."""
    log = _git("log", "--format=%H", "HEAD", "--", "schemas/layout.py", "schemas/store.py")
    for commit in log.stdout.split():
        for path in ("schemas/layout.py", "schemas/store.py"):
            source = _git("show", f"{commit}:{path}").stdout
            if f"\nFORMAT_VERSION = {version}\n" in source:
                archive = _git("archive", "--format=tar", commit, "schemas", text=False)
                with tarfile.open(fileobj=BytesIO(archive.stdout)) as tar:
                    tar.extractall(dest, filter="data")
                return dest
    shallow = _git("rev-parse", "--is-shallow-repository").stdout.strip() == "true"
    if not shallow:  # the whole history is here, so the format's commit must be found
        pytest.fail(f"no commit of this repository writes store format {version}")
    pytest.skip(f"this shallow checkout holds no commit that writes store format {version}")
