"""Vet the paths a dataset names, fast enough for a million of them.

A path is taken only when it is a regular file inside the dataset root, decided
with ``lstat``/``stat`` alone (nothing is opened, so a FIFO cannot block). The
one costly part is resolving links to see where a path really leads:
``os.path.realpath`` stats every component, for every path. A
:class:`PathChecker` resolves each *folder* once per scan and reuses it for every
file in it, which is exact as long as the file itself is not a link (then its own
target is resolved in full). One checker lives for one scan, so a tree that
changes between scans is never judged by an old answer.
"""

from __future__ import annotations

import errno
import os
import stat
from functools import lru_cache

#: ``examine``'s answer when nothing exists at the path.
MISSING = "missing"
LEAVES = "leaves the dataset root"
#: Folders whose real path a checker remembers (a release's paths come grouped by folder).
FOLDER_CACHE = 1 << 16


class PathChecker:
    """:meth:`examine` for the paths under one dataset root, folders resolved once."""

    def __init__(self, root: str | os.PathLike[str]) -> None:
        self.root = os.fspath(root)
        self._inside = self.root.rstrip("/") + "/"
        self._real_folder = lru_cache(maxsize=FOLDER_CACHE)(os.path.realpath)
        #: Where the last path :meth:`examine` took really is (links resolved).
        self.last_real = ""

    def examine(self, rel: str) -> str | None:
        """None when ``root / rel`` is a regular file inside the root, else why not.

        The answer is :data:`MISSING` or a reason to refuse the path (it leaves the
        root, a symbolic link loop, a broken link, not a regular file).
        """
        parts = rel.split("/")
        if not rel or rel.startswith("/") or ".." in parts:
            return LEAVES
        if "\x00" in rel:
            return "the path holds a NUL byte"
        parts = [p for p in parts if p and p != "."]
        if not parts:
            return LEAVES
        folder = os.path.join(self.root, *parts[:-1])
        path = os.path.join(folder, parts[-1])
        try:
            info = os.lstat(path)
        except (FileNotFoundError, NotADirectoryError):
            return MISSING
        except OSError as exc:
            return os_reason(exc)
        # Links (of the file or of a folder above it) are followed only to see where they lead.
        if stat.S_ISLNK(info.st_mode):
            real = os.path.realpath(path)
        else:
            real = os.path.join(self._real_folder(folder), parts[-1])
        if not real.startswith(self._inside):
            return LEAVES
        if stat.S_ISLNK(info.st_mode):
            try:
                info = os.stat(path)
            except (FileNotFoundError, NotADirectoryError):
                return "a symbolic link to nothing"
            except OSError as exc:
                return os_reason(exc)
        if not stat.S_ISREG(info.st_mode):
            return f"not a regular file ({file_kind(info.st_mode)}), never opened"
        self.last_real = real
        return None


def os_reason(exc: OSError) -> str:
    """An ``OSError`` of ``lstat``/``stat`` said as a reason to refuse the path."""
    if exc.errno == errno.ELOOP:
        return "a symbolic link loop"
    return f"cannot be examined ({exc.strerror or exc})"


def file_kind(mode: int) -> str:
    """What a non-regular file is, in words."""
    for test, kind in (
        (stat.S_ISFIFO, "a FIFO"),
        (stat.S_ISSOCK, "a socket"),
        (stat.S_ISCHR, "a character device"),
        (stat.S_ISBLK, "a block device"),
        (stat.S_ISDIR, "a directory"),
    ):
        if test(mode):
            return kind
    return "not a file"


__all__ = ["LEAVES", "MISSING", "PathChecker", "file_kind", "os_reason"]
