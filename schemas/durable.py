"""Durable file writes: fsync of files and directories, all-or-nothing file replacement.

What a killed process or a host crash may leave behind is either the old file or
the new one, never half of one; :func:`atomic_write` is the project's one way of
replacing a file.
"""

from __future__ import annotations

import contextlib
import json
import os
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any


def fsync_path(path: str | Path, *, directory: bool = False) -> None:
    """Flush one file's (or directory's entries') data to stable storage."""
    flags = os.O_RDONLY | os.O_CLOEXEC | (os.O_DIRECTORY if directory else 0)
    fd = os.open(path, flags)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def fsync_tree(root: str | Path) -> None:
    """fsync every file and directory below ``root`` and ``root`` itself, deepest first."""
    for dirpath, _, filenames in os.walk(root, topdown=False):
        for name in filenames:
            fsync_path(os.path.join(dirpath, name))
        fsync_path(dirpath, directory=True)


@contextlib.contextmanager
def atomic_write(path: str | Path, *, durable: bool = True) -> Iterator[Path]:
    """Write a file all or nothing: yield a temporary path beside ``path`` to write to.

    When the block ends without an exception the temporary file is fsync'ed, renamed
    over ``path`` and the directory fsync'ed (``durable``), so that neither a killed
    process nor a host crash leaves a half file under ``path``; on an exception it is
    deleted and ``path`` is untouched. Usage::

        with atomic_write(path) as tmp:
            torch.save(payload, tmp)
    """
    path = Path(path)
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex}.tmp")
    try:
        yield tmp
        if durable:
            fsync_path(tmp)
        os.replace(tmp, path)
        if durable:
            fsync_path(path.parent, directory=True)
    finally:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()


def write_json_atomic(path: Path, data: dict[str, Any], *, durable: bool = True) -> None:
    """Replace ``path`` with ``data`` as indented JSON, through :func:`atomic_write`."""
    with atomic_write(path, durable=durable) as tmp:
        tmp.write_text(json.dumps(data, indent=2, sort_keys=True))
