"""Cheap, stable fingerprints of source files, taken without ever opening a non-regular file.

Hashing every byte of 21,566 clips would cost as much I/O as decoding them,
so a fingerprint is the size plus a BLAKE2b of the first and last 64 KiB.
That detects a replaced, re-encoded, truncated or appended file; an in-place
edit of the middle of a file of identical size goes unnoticed, which we accept
(document it, and use ``--overwrite`` after editing media in place).

The ingest task fingerprints the file it decodes from one descriptor, before and
after the decode (:func:`open_source`, :func:`fingerprint_fd`, :func:`changed`), so a
file replaced or rewritten meanwhile is caught. The driver only compares size and
modification time with the committed record (:func:`source_stat`), which reads no
byte of the source; ``--verify`` fingerprints again.

A FIFO, socket or device is never opened: ``open()`` of a FIFO blocks until a writer
appears. Paths are checked with ``stat`` first and opened with ``O_NONBLOCK`` (so a
file swapped for a FIFO in between cannot block either), then checked with ``fstat``.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import stat
from collections.abc import Iterator
from pathlib import Path

_EDGE = 64 * 1024


class NotRegularFile(OSError):
    """The path names a FIFO, socket, device or directory: never read as media."""


def source_stat(path: str | Path) -> os.stat_result:
    """``os.stat`` of a source (reads no byte); raises :class:`NotRegularFile` for the rest."""
    info = os.stat(path)
    if not stat.S_ISREG(info.st_mode):
        raise NotRegularFile(f"not a regular file: {path}")
    return info


@contextlib.contextmanager
def open_source(path: str | Path) -> Iterator[tuple[int, os.stat_result]]:
    """Open a regular file read-only without blocking: yield ``(fd, fstat)``."""
    source_stat(path)
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):  # swapped for a FIFO between stat and open
            raise NotRegularFile(f"not a regular file: {path}")
        yield fd, info
    finally:
        os.close(fd)


def fingerprint_fd(fd: int) -> str:
    """``'<size>-<hex>'``: the size and a hash of the first and last 64 KiB of ``fd``."""
    size = os.fstat(fd).st_size
    digest = hashlib.blake2b(digest_size=12)
    digest.update(str(size).encode())
    digest.update(os.pread(fd, _EDGE, 0))
    digest.update(os.pread(fd, _EDGE, size - _EDGE if size > 2 * _EDGE else _EDGE))
    return f"{size}-{digest.hexdigest()}"


def source_fingerprint(path: str | Path) -> str:
    """Fingerprint of the regular file at ``path`` (see :func:`fingerprint_fd`)."""
    with open_source(path) as (fd, _):
        return fingerprint_fd(fd)


def changed(before: os.stat_result, fd: int, path: str | Path) -> str | None:
    """Why the source differs from ``before`` (its ``fstat`` when opened), or None.

    Compares the open file (a rewrite in place changes its size or mtime) and the
    path (a rename over it puts another inode there).
    """
    now = os.fstat(fd)
    if now.st_size != before.st_size:
        return f"size {before.st_size} -> {now.st_size} bytes"
    if now.st_mtime_ns != before.st_mtime_ns:
        return "it was written to"
    try:
        there = os.stat(path)
    except OSError as exc:
        return f"the path is gone ({exc.strerror or exc})"
    if (there.st_dev, there.st_ino) != (before.st_dev, before.st_ino):
        return "another file was put in its place"
    return None
