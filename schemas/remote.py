"""Reading a store from object storage (``s3://bucket/store``) by byte-range requests.

The remote twin of :mod:`schemas.safe_files` for stores named by a URL
(:mod:`schemas.store_url`). A lab writes its store locally and syncs the finished store
to a bucket; readers then open it by URL. Writing stays local: nothing here writes.

- **One filesystem per store root and process.** :func:`remote_store` returns a
  :class:`RemoteStore` for a URL, made once per URL and storage options; its fsspec
  filesystem is made lazily in each process (a DataLoader worker started by ``fork``
  makes its own: fsspec's async filesystems must not cross a fork).
- **Keys stay inside the store.** Every key is a ``/``-separated path relative to the
  store's root; an empty, ``.`` or ``..`` component, a leading ``/`` or a backslash is
  refused before any request, so no key can name an object outside the store's prefix.
- **Sizes are bounded before reading.** :meth:`RemoteStore.read` is one ranged ``GET``
  of at most the bound plus one byte, so an object over its bound is refused having sent
  no more than that; :meth:`RemoteStore.read_range` is one ranged ``GET`` and must
  return every byte asked for.
- **Small metadata is cached.** JSON files (the root and each array's ``zarr.json``)
  are kept, up to :data:`JSON_CACHE` of them per process, so that reading a clip again
  costs no metadata request.

Storage options (``endpoint_url``, ``anon``, ``key``, ...) come from the environment
variable :data:`OPTIONS_ENV` (a JSON object), which the command-line programs' repeated
``--storage-option key=value`` fill (:func:`use_storage_options`) and which child
processes inherit; s3fs also honours the usual ``AWS_*`` variables (credentials,
``AWS_ENDPOINT_URL``, ``AWS_DEFAULT_REGION``).
"""

from __future__ import annotations

import contextlib
import json
import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

from schemas.cli_errors import UserError
from schemas.layout import STORE_JSON_MAX_BYTES, StoreError
from schemas.store_url import store_url

#: The environment variable holding the storage options, a JSON object.
OPTIONS_ENV = "MSCCT_STORAGE_OPTIONS"
#: JSON files kept per process (each a few KB: a clip's ``zarr.json`` carries its record).
JSON_CACHE = 4096
#: The largest table (manifest, fragment, split) read from a bucket; bigger is refused.
TABLE_MAX_BYTES = 1 << 30


class BadStorageOption(UserError):
    """A ``--storage-option`` that is not ``key=value``, or an unusable options variable."""


def parse_storage_options(pairs: Sequence[str]) -> dict[str, Any]:
    """``["anon=true", "endpoint_url=http://..."]`` -> options; a value that reads as
    JSON (``true``, ``3``, ``{"region_name": "x"}``) is taken as such, else as text."""
    options: dict[str, Any] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key.strip():
            raise BadStorageOption(f"--storage-option {pair!r} is not key=value")
        try:
            options[key.strip()] = json.loads(value)
        except ValueError:
            options[key.strip()] = value
    return options


def use_storage_options(options: dict[str, Any]) -> None:
    """Add ``options`` to this process's storage options (and its children's)."""
    if options:
        os.environ[OPTIONS_ENV] = json.dumps(storage_options() | options, sort_keys=True)


#: The help of the command-line programs' repeatable ``--storage-option``.
STORAGE_OPTION_HELP = (
    "For a --store in object storage (s3://bucket/store): an fsspec storage option key=value, "
    "repeatable (endpoint_url=http://host:9000, anon=true); AWS_* variables are honoured too."
)


def use_storage_pairs(pairs: Sequence[str] | None) -> None:
    """Put ``--storage-option`` pairs (``key=value``) in force, as :func:`use_storage_options`."""
    use_storage_options(parse_storage_options(pairs or []))


def storage_options() -> dict[str, Any]:
    """The storage options in force: :data:`OPTIONS_ENV`'s JSON object, or none."""
    text = os.environ.get(OPTIONS_ENV, "")
    if not text:
        return {}
    try:
        options = json.loads(text)
    except ValueError:
        options = None
    if not isinstance(options, dict):
        raise BadStorageOption(f"${OPTIONS_ENV} is not a JSON object of storage options")
    return options


def check_key(key: str) -> str:
    """``key`` if it stays inside the store's prefix; else a one-line :class:`StoreError`."""
    parts = key.split("/")
    if key.startswith("/") or "\\" in key or any(p in ("", ".", "..") for p in parts):
        raise StoreError(f"object key {key!r} leaves the store's prefix; refused")
    return key


@dataclass(frozen=True)
class RemoteStore:
    """A store in object storage: its URL, protocol, root (``bucket/prefix``) and options."""

    url: str
    protocol: str
    root: str
    options: str  # JSON, sorted: hashable, and the same in every process
    _fs: dict[int, Any] = field(default_factory=dict, compare=False, hash=False, repr=False)

    @property
    def fs(self) -> Any:
        """This process's fsspec filesystem for the store (made at its first use)."""
        pid = os.getpid()
        made = self._fs.get(pid)
        if made is None:
            self._fs.clear()  # one inherited across fork is never used
            made = self._fs[pid] = _filesystem(self.url, self.protocol, json.loads(self.options))
        return made

    def path(self, key: str) -> str:
        """The filesystem path of ``key`` (checked: it stays inside the store)."""
        return f"{self.root}/{check_key(key)}"

    def where(self, key: str) -> str:
        """``key``'s URL, for messages."""
        return f"{self.url}/{key}"

    def size(self, key: str) -> int:
        """The object's size in bytes (one ``HEAD``); ``FileNotFoundError`` if absent."""
        path = self.path(key)
        with self._errors(key):
            return int(self.fs.size(path))

    def exists(self, key: str) -> bool:
        path = self.path(key)
        with self._errors(key):
            return bool(self.fs.exists(path))

    def read(self, key: str, *, max_bytes: int, what: str = "file") -> bytes:
        """The whole object in one ``GET`` of at most ``max_bytes + 1`` bytes (a range
        request): a larger object is refused with no more than that read of it."""
        with self._errors(key):
            data = bytes(self.fs.cat_file(self.path(key), start=0, end=max_bytes + 1))
        if len(data) > max_bytes:
            raise StoreError(f"{what} {self.where(key)} is over the limit of {max_bytes:,} bytes")
        return data

    def read_range(self, key: str, start: int, stop: int) -> bytes:
        """Bytes ``[start, stop)`` of the object: one ranged ``GET``, every byte or an error."""
        if stop <= start:
            return b""
        with self._errors(key):
            data = self.fs.cat_file(self.path(key), start=start, end=stop)
        if len(data) != stop - start:
            raise StoreError(
                f"{self.where(key)} ended early: bytes [{start}, {stop}) asked, {len(data)} read"
            )
        return bytes(data)

    def read_json(self, key: str) -> dict[str, Any]:
        """A JSON object file of the store (bounded, cached; see the module docstring).

        Raises ``FileNotFoundError`` when absent, :class:`StoreError` when unreadable,
        malformed or not an object.
        """
        text = _json_bytes(self, key)
        try:
            data = json.loads(text)
        except (ValueError, RecursionError) as exc:
            raise StoreError(f"cannot read {self.where(key)}: {exc}") from None
        if not isinstance(data, dict):
            raise StoreError(
                f"cannot read {self.where(key)}: it holds a JSON {type(data).__name__}"
            )
        return data

    def keys_under(self, prefix: str) -> list[str]:
        """Every object key below folder ``prefix`` (relative to the store root), sorted:
        one paginated listing, however deep the folders."""
        base = self.path(prefix)
        with self._errors(prefix):
            try:
                found = self.fs.find(base)
            except FileNotFoundError:
                return []
            finally:  # a listing of every clip's files is not kept (s3fs would cache it)
                self.fs.invalidate_cache()
        start = base.rstrip("/") + "/"
        return sorted(p[len(start) :] for p in found if p.startswith(start))

    def _errors(self, key: str) -> contextlib.AbstractContextManager[None]:
        return _reasons(self.where(key))


@contextlib.contextmanager
def _reasons(where: str) -> Iterator[None]:
    """Turn a failed request into one line naming the object (absent stays absent)."""
    try:
        yield
    except (FileNotFoundError, UserError):
        raise
    except Exception as exc:  # botocore, aiohttp, permission: many types
        reason = " ".join(str(exc).split()) or type(exc).__name__
        raise StoreError(f"cannot read {where}: {reason}") from None


def _filesystem(url: str, protocol: str, options: dict[str, Any]) -> Any:
    """fsspec's filesystem for ``protocol``; a missing package or an unknown protocol is
    one line naming the fix."""
    try:
        import fsspec  # only a remote store ever imports it

        return fsspec.filesystem(protocol, **options)
    except ImportError as exc:
        raise StoreError(
            f"reading {url} needs fsspec and its {protocol} filesystem: pip install "
            f"'mscct[s3]' ({exc})"
        ) from None
    except (ValueError, TypeError) as exc:  # an unknown protocol, an unknown option
        raise StoreError(f"cannot open {url}: {exc}") from None


@lru_cache(maxsize=JSON_CACHE)
def _json_bytes(store: RemoteStore, key: str) -> bytes:
    return store.read(key, max_bytes=STORE_JSON_MAX_BYTES, what="store file")


def remote_store(store: str | os.PathLike[str]) -> RemoteStore:
    """The :class:`RemoteStore` of a store URL (either spelling, see
    :mod:`schemas.store_url`), made once per URL and storage options."""
    url = store_url(store)
    if url is None:
        raise ValueError(f"{os.fspath(store)} is not a store URL")
    return _remote_store(url, json.dumps(storage_options(), sort_keys=True))


@lru_cache(maxsize=64)
def _remote_store(url: str, options: str) -> RemoteStore:
    protocol, _, root = url.partition("://")
    if not root.strip("/"):
        raise StoreError(f"store URL {url} names no bucket")
    for part in root.split("/"):
        if part in ("", ".", ".."):
            raise StoreError(f"store URL {url} has an empty, '.' or '..' component; refused")
    return RemoteStore(url=url, protocol=protocol, root=root, options=options)
