"""One writer per store: an advisory ``flock`` on ``<store>/.lock``.

Two ``ingest`` processes on the same store would race on the manifest; the
second one is refused at once with a message that names the holder. The lock
is released by the kernel when its holder dies, so a killed run never leaves
a stale lock behind. (``flock`` on NFS is only as good as the server's lock
manager; on shared storage run one ingest per store.)
"""

from __future__ import annotations

import contextlib
import fcntl
import os
from collections.abc import Iterator
from pathlib import Path

from schemas.layout import LOCK_FILE, StoreError


@contextlib.contextmanager
def store_lock(store: Path) -> Iterator[None]:
    """Hold ``<store>/.lock`` for the block; creates ``store`` if needed.

    Call it only for a store already accepted (``schemas.check_store_target``): the
    lock file is the first thing written into the directory. A store that cannot be
    written (read-only, no permission, no space) is a one-line :class:`StoreError`.
    """
    path = store / LOCK_FILE
    try:
        store.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
    except OSError as exc:
        raise StoreError(
            f"cannot write store {store}: {exc.strerror or exc} (it needs a writable directory)"
        ) from None
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = path.read_text().strip() or "another process"
            raise StoreError(
                f"store {store} is being written by {holder}; wait for it to finish "
                "or use another --store"
            ) from None
        try:
            os.ftruncate(fd, 0)
            os.write(fd, f"pid {os.getpid()} on {os.uname().nodename}".encode())
        except OSError as exc:
            raise StoreError(f"cannot write store {store}: {exc.strerror or exc}") from None
        yield
    finally:
        os.close(fd)
