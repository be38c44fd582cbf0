"""Cheap, stable fingerprints of source files.

Hashing every byte of 21,566 clips would cost as much I/O as decoding them,
so a fingerprint is the size plus a BLAKE2b of the first and last 64 KiB.
That detects a replaced, re-encoded, truncated or appended file; an in-place
edit of the middle of a file of identical size goes unnoticed, which we accept
(document it, and use ``--overwrite`` after editing media in place).
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

_EDGE = 64 * 1024


def source_fingerprint(path: Path) -> str:
    size = os.path.getsize(path)
    digest = hashlib.blake2b(digest_size=12)
    digest.update(str(size).encode())
    with open(path, "rb") as handle:
        digest.update(handle.read(_EDGE))
        if size > 2 * _EDGE:
            handle.seek(size - _EDGE)
        digest.update(handle.read(_EDGE))
    return f"{size}-{digest.hexdigest()}"
