"""Whether a store is named by a URL (``s3://bucket/store``) rather than a local path.

A store root that starts with a scheme of two or more letters and a colon-slash is read
through fsspec (:mod:`schemas.remote`); anything else is a local path, read with the
link-safe openers as before. ``pathlib.Path`` folds ``s3://bucket`` to ``s3:/bucket``;
both spellings name the same store, so a URL survives being passed around as a
``Path``. A local path never matches (``C:/`` has a one-letter scheme; a relative path
whose first folder is named ``s3:`` is not supported). The check is one regular
expression: the backend is chosen once per store root, and nothing here imports
fsspec. Imports the standard library only.
"""

from __future__ import annotations

import os
import re

_URL = re.compile(r"^([A-Za-z][A-Za-z0-9+.-]+):/+(.*)$")
#: Schemes that name the local file system: such a store is read as a local path.
_LOCAL_SCHEMES = ("file", "local")


def store_url(store: str | os.PathLike[str]) -> str | None:
    """The canonical URL (``scheme://bucket/prefix``, no trailing slash) of a remote
    store, or None for a local path."""
    match = _URL.match(os.fspath(store))
    if match is None or match.group(1).lower() in _LOCAL_SCHEMES:
        return None
    return f"{match.group(1).lower()}://{match.group(2).rstrip('/')}"


def is_remote(store: str | os.PathLike[str]) -> bool:
    """Whether ``store`` names a store in object storage (see :func:`store_url`)."""
    return store_url(store) is not None
