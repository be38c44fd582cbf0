"""The one way the project opens a file that came from outside: inside its root, regular,
bounded.

Every file read from a place the user named (a store's tables and locks, a dataset's
metadata, split files, checkpoints, configs) goes through :func:`open_inside`:

- the file is opened without following a final link (``O_NOFOLLOW``) and without
  blocking (``O_NONBLOCK``), so a FIFO or a device named like a table never hangs the
  reader: it is refused after ``fstat``;
- when a ``root`` is given, the path the kernel actually opened (``/proc/self/fd``,
  else ``realpath``) must lie inside the root's real path, so no link in between can
  lead out;
- a ``max_bytes`` bound refuses oversize input before a byte of it is read.

Refusals are :class:`RefusedFile`, a :class:`~schemas.cli_errors.UserError`: one line,
naming the path and why. Imports the standard library only.
"""

from __future__ import annotations

import errno
import fcntl
import os
import stat
from pathlib import Path
from typing import BinaryIO

from schemas.cli_errors import UserError

_READ_FLAGS = os.O_RDONLY | os.O_CLOEXEC | os.O_NOFOLLOW | os.O_NONBLOCK


class RefusedFile(UserError):
    """A file that is not opened: a link, not a regular file, outside its root, too big."""


def file_kind(mode: int) -> str:
    """What a ``st_mode`` is, in words: ``'a FIFO'``, ``'a directory'``, …"""
    kinds = (
        (stat.S_ISDIR, "a directory"),
        (stat.S_ISFIFO, "a FIFO"),
        (stat.S_ISSOCK, "a socket"),
        (stat.S_ISCHR, "a character device"),
        (stat.S_ISBLK, "a block device"),
        (stat.S_ISLNK, "a symbolic link"),
    )
    return next((word for test, word in kinds if test(mode)), "not a regular file")


def is_inside(path: str | os.PathLike[str], root: str | os.PathLike[str]) -> bool:
    """Whether ``path`` (already resolved) lies in ``root`` (resolved here) or is it."""
    real_root = os.path.realpath(root)
    resolved = os.fspath(path)
    return resolved == real_root or resolved.startswith(real_root.rstrip(os.sep) + os.sep)


def _opened_path(fd: int, path: str) -> str:
    try:
        return os.readlink(f"/proc/self/fd/{fd}")
    except OSError:  # no /proc: resolve the name instead
        return os.path.realpath(path)


def open_inside(
    path: str | os.PathLike[str],
    root: str | os.PathLike[str] | None = None,
    *,
    max_bytes: int | None = None,
    what: str = "file",
) -> BinaryIO:
    """Open ``path`` for binary reading, refusing anything but a bounded regular file.

    Args:
        path: the file.
        root: when given, the file's real path must lie inside ``root``'s real path.
        max_bytes: refuse a file larger than this many bytes.
        what: how messages name the file (``'split file'``, ``'checkpoint'``, …).

    Raises:
        FileNotFoundError: no such file (callers word that case themselves).
        RefusedFile: a final link, a FIFO, directory, socket or device, a path leading
            out of ``root``, or a file over ``max_bytes``.
    """
    name = os.fspath(path)
    fd, info = _open_regular(name, _READ_FLAGS, root, what)
    try:
        if max_bytes is not None and info.st_size > max_bytes:
            raise RefusedFile(
                f"{what} {name} is {info.st_size:,} bytes, over the limit of {max_bytes:,}"
            )
        return os.fdopen(fd, "rb")
    except BaseException:
        os.close(fd)
        raise


def _open_regular(
    name: str, flags: int, root: str | os.PathLike[str] | None, what: str
) -> tuple[int, os.stat_result]:
    """Open ``name`` with ``flags`` (which hold ``O_NOFOLLOW | O_NONBLOCK``); refuse a
    final link, anything but a regular file, and a real path outside ``root``. Returns
    the descriptor, back in blocking mode, and its ``fstat``."""
    try:
        fd = os.open(name, flags, 0o644)
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise RefusedFile(f"{what} {name} is a symbolic link; refused") from None
        if exc.errno in (errno.ENXIO, errno.EISDIR):  # a socket; a directory on some systems
            kind = file_kind(os.lstat(name).st_mode)
            raise RefusedFile(f"{what} {name} is {kind}, not a regular file; refused") from None
        raise
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            kind = file_kind(info.st_mode)
            raise RefusedFile(f"{what} {name} is {kind}, not a regular file; never read")
        if root is not None and not is_inside(_opened_path(fd, name), root):
            raise RefusedFile(f"{what} {name} leads outside {os.fspath(root)}; refused")
        fcntl.fcntl(fd, fcntl.F_SETFL, fcntl.fcntl(fd, fcntl.F_GETFL) & ~os.O_NONBLOCK)
        return fd, info
    except BaseException:
        os.close(fd)
        raise


def read_bytes_inside(
    path: str | os.PathLike[str],
    root: str | os.PathLike[str] | None = None,
    *,
    max_bytes: int,
    what: str = "file",
) -> bytes:
    """The whole of a bounded regular file inside ``root`` (see :func:`open_inside`).

    The bound is checked again on the bytes read, so a file that grows after ``fstat``
    cannot slip past it.
    """
    with open_inside(path, root, max_bytes=max_bytes, what=what) as handle:
        data = handle.read(max_bytes + 1)
    if len(data) > max_bytes:
        raise RefusedFile(f"{what} {os.fspath(path)} is over the limit of {max_bytes:,} bytes")
    return data


def read_text_inside(
    path: str | os.PathLike[str],
    root: str | os.PathLike[str] | None = None,
    *,
    max_bytes: int,
    what: str = "file",
) -> str:
    """A bounded UTF-8 text file inside ``root``; undecodable bytes are a one-line refusal."""
    data = read_bytes_inside(path, root, max_bytes=max_bytes, what=what)
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise RefusedFile(
            f"{what} {os.fspath(path)} is not UTF-8 text (byte {exc.start}); refused"
        ) from None


_UPDATE_FLAGS = os.O_RDWR | os.O_CREAT | os.O_CLOEXEC | os.O_NOFOLLOW | os.O_NONBLOCK


def open_update_inside(
    path: str | os.PathLike[str], root: str | os.PathLike[str], *, what: str = "file"
) -> int:
    """Open (creating it) a small file to update in place: a descriptor, read-write.

    The writer's side of :func:`open_inside`, for a file rewritten where it lies (a
    lock file): refused, before a byte is written, when it is a link (even one to a
    missing path: ``O_NOFOLLOW`` also holds with ``O_CREAT``), a FIFO, directory,
    socket or device, when its real path leads out of ``root``, or when it has other
    hard links (writing it would change a file elsewhere). The caller closes it.

    Raises:
        RefusedFile: as above.
        OSError: the file cannot be created or opened (read-only, no space, ...).
    """
    name = os.fspath(path)
    fd, info = _open_regular(name, _UPDATE_FLAGS, root, what)
    if info.st_nlink > 1:
        os.close(fd)
        raise RefusedFile(
            f"{what} {name} has {info.st_nlink - 1} other hard link(s); writing it would "
            "change a file elsewhere: refused"
        )
    return fd


def ensure_dir_inside(path: Path, root: Path) -> None:
    """Refuse a folder below ``root`` that is a link or leads outside it (for writers)."""
    if path.is_symlink() or not is_inside(os.path.realpath(path), root):
        raise RefusedFile(f"{path} leads outside {root}; refused")
