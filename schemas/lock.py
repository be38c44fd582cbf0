"""One writer per store: an advisory ``flock`` on ``<store>/.lock``.

Two ``ingest`` processes on the same store would race on the manifest; the
second one is refused at once with a message that names the holder. The lock
is released by the kernel when its holder dies, so a killed run never leaves
a stale lock behind. (``flock`` on NFS is only as good as the server's lock
manager; on shared storage run one ingest per store.)

The lock file is opened through :func:`schemas.safe_files.open_update_inside`: a
``.lock`` that is a link (to a file elsewhere, or to a missing path), a FIFO, a
directory, a file with other hard links or one whose real path leads out of the
store is refused in one line before a byte is written, so taking the lock can never
empty or create a file outside the store.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
from collections.abc import Iterator
from pathlib import Path

from schemas.layout import LOCK_FILE, StoreError, os_reason, refuse_url
from schemas.safe_files import RefusedFile, open_update_inside

#: The holder line is short ("pid N on host"); a longer file is not read further.
_HOLDER_BYTES = 200


@contextlib.contextmanager
def store_lock(store: Path) -> Iterator[None]:
    """Hold ``<store>/.lock`` for the block; creates ``store`` if needed.

    Call it only for a store already accepted (``schemas.check_store_target``): the
    lock file is the first thing written into the directory. A store that cannot be
    written (read-only, no permission, no space) is a one-line :class:`StoreError`, and
    so is a ``.lock`` that is not a plain file of the store's own.
    """
    refuse_url(store)  # a URL would otherwise become local folders named after it
    path = store / LOCK_FILE
    try:
        store.mkdir(parents=True, exist_ok=True)
        fd = open_update_inside(path, store, what="lock file")
    except RefusedFile as exc:
        raise StoreError(
            f"{exc} (a store's .lock is a plain file it writes itself: remove {path})"
        ) from None
    except OSError as exc:
        raise StoreError(
            f"cannot write store {store}: {os_reason(exc)} (it needs a writable directory)"
        ) from None
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = _holder(fd) or "another process"
            raise StoreError(
                f"store {store} is being written by {holder}; wait for it to finish "
                "or use another --store"
            ) from None
        try:
            os.ftruncate(fd, 0)
            os.write(fd, f"pid {os.getpid()} on {os.uname().nodename}".encode())
        except OSError as exc:
            raise StoreError(f"cannot write store {store}: {os_reason(exc)}") from None
        yield
    finally:
        os.close(fd)


def _holder(fd: int) -> str:
    """What the lock's holder wrote into it, read from the descriptor already open (the
    path is not opened again: it may have been replaced meanwhile)."""
    try:
        text = os.pread(fd, _HOLDER_BYTES, 0).decode("utf-8", "replace")
    except OSError:
        return ""
    return " ".join(text.split())
