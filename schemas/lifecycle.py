"""A store's life: create it, open it, check a ``--store`` target, empty it on overwrite.

Only a directory carrying this project's store marker (:func:`is_store`), and
holding nothing but what a store writes, is ever deleted. A new store is made in the
current format (sharded ``clips/``, manifest fragments); an existing one keeps the
format it was made in.
"""

from __future__ import annotations

import os
import shutil
import stat
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from schemas.durable import write_json_atomic
from schemas.layout import (
    CLIP_LAYOUT_KEY,
    CLIP_LAYOUTS,
    CLIPS_DIR,
    DEFAULT_SHARD_TARGET,
    FORMAT_NAME,
    FORMAT_VERSION,
    LAYOUT_FLAT,
    LAYOUT_PACKED,
    LAYOUT_SHARDED,
    LOCK_FILE,
    PACKED_VERSION,
    READABLE_VERSIONS,
    SHARD_TARGET_KEY,
    SHARDS_DIR,
    SPLITS_DIR,
    STAGING_DIR,
    StoreError,
    forget_layout,
    os_reason,
    read_json,
    refuse_url,
    remember_layout,
)
from schemas.recipe import Recipe, recipe_mismatch, software_version
from schemas.remote import remote_store
from schemas.safe_files import file_kind
from schemas.store_files import NAMED, ROOT_DIRS, ROOT_FILES, foreign_entries
from schemas.store_url import store_url


@dataclass(frozen=True)
class StoreInfo:
    """What a store's root ``zarr.json`` records (see :func:`open_store`)."""

    path: Path
    recipe: Recipe
    format_version: int
    software_version: str
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def clip_layout(self) -> str:
        """``"packed"`` (version 4), ``"sharded"`` (version 3) or ``"flat"`` (1 and 2)."""
        return str(self.extra.get(CLIP_LAYOUT_KEY, LAYOUT_FLAT))


def default_store_path() -> Path:
    """``$MSCCT_STORE`` if set, else ``./mscct-store``."""
    return Path(os.environ.get("MSCCT_STORE", "mscct-store"))


def create_store(
    path: str | Path,
    recipe: Recipe,
    *,
    overwrite: bool = False,
    packed: bool = False,
    shard_target_bytes: int | None = None,
) -> StoreInfo:
    """Create an empty store, or open an existing one made with the same recipe.

    A new store is of format 3 (a Zarr group per clip), or with ``packed`` of format 4
    (clips packed into shards of ``shard_target_bytes`` bytes, default
    :data:`schemas.packed_index.DEFAULT_SHARD_TARGET`; :mod:`schemas.packed_write`).
    ``packed`` for an existing store of another format is refused, naming ``convert``.

    With ``overwrite`` an existing store at ``path`` is emptied first: only a
    directory carrying this project's store marker, and holding nothing but what a
    store writes, is ever deleted (:func:`check_store_target`). A store made with
    another recipe is refused: its tensors would not be comparable. An existing store
    keeps its format version and clip layout (a version-2 store stays flat).
    """
    store = Path(path)
    check_store_target(store, overwrite=overwrite)
    forget_layout(store)  # what was cached for this path may be about to change
    try:
        if overwrite and is_store(store):
            _wipe(store)
        if is_store(store):
            info = open_store(store)
            if info.recipe != recipe:
                raise StoreError(recipe_mismatch(store, info.recipe, recipe))
            if packed and info.clip_layout != LAYOUT_PACKED:
                raise StoreError(
                    f"store {store} is of format {info.format_version}, not packed; an ingest "
                    f"keeps a store's format (`mscct-pipeline convert --store {store} --to "
                    "packed` packs it)"
                )
            check_folders(store)
            return info
        if packed:
            _new_packed(store, recipe, shard_target_bytes)
            return open_store(store)
        (store / CLIPS_DIR).mkdir(parents=True, exist_ok=True)
        (store / SPLITS_DIR).mkdir(exist_ok=True)
        (store / STAGING_DIR).mkdir(exist_ok=True)
        meta = {
            "format": FORMAT_NAME,
            "format_version": FORMAT_VERSION,
            "recipe": recipe.to_dict(),
            "software_version": software_version(),
            CLIP_LAYOUT_KEY: LAYOUT_SHARDED,
            "manifest": "fragments",  # read by schemas.manifest_mode
        }
        write_json_atomic(store / CLIPS_DIR / "zarr.json", _group_json({}))
        write_json_atomic(_root_meta_path(store), _group_json({"mscct": meta}))
    except OSError as exc:
        raise StoreError(f"cannot write store {store}: {os_reason(exc)}") from None
    finally:
        forget_layout(store)  # a wiped or new store: learn its layout afresh
    return open_store(store)


def _new_packed(store: Path, recipe: Recipe, target: int | None) -> None:
    """Make the folders and root metadata of a new packed store (format 4)."""
    if target is not None and target < 1:
        raise StoreError(f"the shard size must be at least 1 byte, not {target}")
    (store / SHARDS_DIR).mkdir(parents=True, exist_ok=True)
    (store / SPLITS_DIR).mkdir(exist_ok=True)
    (store / STAGING_DIR).mkdir(exist_ok=True)
    write_json_atomic(_root_meta_path(store), _group_json({"mscct": packed_meta(recipe, target)}))


def packed_meta(recipe: Recipe, target: int | None) -> dict[str, Any]:
    """The ``mscct`` attributes of a packed store's root ``zarr.json``."""
    return {
        "format": FORMAT_NAME,
        "format_version": PACKED_VERSION,
        "recipe": recipe.to_dict(),
        "software_version": software_version(),
        CLIP_LAYOUT_KEY: LAYOUT_PACKED,
        "manifest": "fragments",
        SHARD_TARGET_KEY: int(target or DEFAULT_SHARD_TARGET),
    }


def check_folders(store: str | Path) -> None:
    """Refuse a store whose own folders (``clips/``, ``splits/``, ``manifest.d/``,
    ``.staging/``) are links or anything but folders: a writer would write, and a sweep
    delete, wherever they lead. Call before writing into an existing store. A store
    named by a URL is refused (stores are written locally)."""
    refuse_url(store)
    for name in sorted(ROOT_DIRS):
        folder = Path(store) / name
        try:
            mode = os.lstat(folder).st_mode
        except FileNotFoundError:
            continue
        if not stat.S_ISDIR(mode):
            raise StoreError(
                f"store {store}: {name} is {file_kind(mode)}, not a folder of the store's "
                "own; refused (nothing is written or deleted through it)"
            )


def _root_meta_path(store: Path) -> Path:
    return store / "zarr.json"


def is_store(path: str | Path) -> bool:
    """Whether ``path`` carries this project's store marker: a root ``zarr.json``
    whose ``attributes.mscct.format`` is ``"mscct-store"`` (any other Zarr group, or a
    stray ``zarr.json``, is not ours; nor is one that is a link, a FIFO or out of the
    store, which is never read)."""
    store = Path(path)
    try:
        meta = read_json(_root_meta_path(store), store)
    except (OSError, StoreError):
        return False
    return _marker(meta) is not None


def _marker(meta: dict[str, Any]) -> dict[str, Any] | None:
    """The ``attributes.mscct`` object of a root ``zarr.json`` when it is ours."""
    attributes = meta.get("attributes")
    mscct = attributes.get("mscct") if isinstance(attributes, dict) else None
    if isinstance(mscct, dict) and mscct.get("format") == FORMAT_NAME:
        return mscct
    return None


def check_store_target(path: str | Path, *, overwrite: bool = False) -> None:
    """Refuse a ``--store`` that is not ours to write, before anything is written there.

    Accepted: a path that does not exist yet, an empty directory (a plain lock file
    aside), or a directory carrying the store marker (:func:`is_store`); with
    ``overwrite`` the latter must hold nothing but what a store writes
    (:func:`schemas.store_files.foreign_entries`, which names what it found). Everything
    else (a regular file, a user's directory, ``/``, a dataset, a foreign Zarr group, a
    ``.lock`` that is a link or not a plain file) is refused.
    """
    store = Path(path)
    refuse_url(path)
    try:
        if not store.exists():
            if store.is_symlink():
                raise StoreError(f"--store {store} is a dangling link; not a store")
            return
        if not store.is_dir():
            raise StoreError(f"--store {store} exists and is not a directory; not a store")
        _check_lock_entry(store)
        if is_store(store):
            foreign = foreign_entries(store) if overwrite else []
            if foreign:
                more = ", …" if len(foreign) >= NAMED else ""
                raise StoreError(
                    f"store {store} also holds files a store does not write "
                    f"({', '.join(foreign)}{more}); not deleting it: move them out of the "
                    "store first, or ingest into another --store"
                )
            return
        if _entries(store):
            what = (
                "holds a zarr.json that is not an mscct store's"
                if os.path.lexists(_root_meta_path(store))
                else "is a non-empty directory"
            )
            raise StoreError(f"{store} {what}: it is not a store; not writing into it")
    except OSError as exc:
        raise StoreError(f"cannot use --store {store}: {os_reason(exc)}") from None


def _check_lock_entry(store: Path) -> None:
    """Refuse a ``.lock`` that is not a plain file of its own (a link, above all, or a
    hard link: taking the lock would write where it leads); :mod:`schemas.lock` checks
    again on the descriptor it opens."""
    try:
        info = os.lstat(store / LOCK_FILE)
    except FileNotFoundError:
        return
    kind = file_kind(info.st_mode) if not stat.S_ISREG(info.st_mode) else None
    if kind is None and info.st_nlink > 1:
        kind = "a file with other hard links"
    if kind is not None:
        raise StoreError(
            f"{store / LOCK_FILE} is {kind}, not a store's lock file; refused "
            f"(remove it if {store} is a store)"
        )


def _entries(store: Path) -> list[Path]:
    """What a directory holds besides the writer's lock file."""
    return [p for p in store.iterdir() if p.name != LOCK_FILE]


def _wipe(store: Path) -> None:
    """Delete what a store wrote (keeping the lock file); the marker goes last, so an
    interrupted wipe is still a store and can be wiped again. Call only once
    :func:`check_store_target` found nothing foreign in it."""
    owned = ROOT_DIRS | ROOT_FILES
    entries = [p for p in _entries(store) if p.name in owned or p.name.endswith(".tmp")]
    for entry in sorted(entries, key=lambda p: p.name == "zarr.json"):
        shutil.rmtree(entry) if entry.is_dir() and not entry.is_symlink() else entry.unlink()


def _group_json(attributes: dict[str, Any]) -> dict[str, Any]:
    return {"zarr_format": 3, "node_type": "group", "attributes": attributes}


def open_store(path: str | Path, *, recipe: Recipe | None = None) -> StoreInfo:
    """Open a store and check its format version (and recipe, when given)."""
    url = store_url(path)  # a remote store is read by URL, once per process (cached)
    store: Path | str = url or Path(path)
    try:  # the store's marker, read inside it: a link or FIFO there is refused unread
        if url is not None:
            meta = _marker(remote_store(url).read_json("zarr.json"))
        else:
            meta = _marker(read_json(_root_meta_path(Path(path)), path))
    except FileNotFoundError:
        raise StoreError(
            f"no store at {store} (run `mscct-pipeline ingest` first, or pass --store)"
        ) from None
    if meta is None:
        raise StoreError(f"{store} is a Zarr group but not an mscct store")
    version = meta.get("format_version")
    if version not in READABLE_VERSIONS:
        readable = ", ".join(str(v) for v in READABLE_VERSIONS)
        raise StoreError(
            f"store {store} has format version {version}; this software reads versions {readable}"
        )
    if meta.get(CLIP_LAYOUT_KEY, LAYOUT_FLAT) not in CLIP_LAYOUTS:
        raise StoreError(
            f"store {store} has clip layout {meta[CLIP_LAYOUT_KEY]!r}; this software reads "
            f"{', '.join(CLIP_LAYOUTS)}"
        )
    if "recipe" not in meta:
        raise StoreError(
            f"store {store} records no recipe in its zarr.json; refusing to guess how its "
            "clips were made (ingest again into a new --store)"
        )
    if url is not None:
        remember_layout(url, str(meta.get(CLIP_LAYOUT_KEY, LAYOUT_FLAT)))
    found = Recipe.from_dict(meta["recipe"])
    if recipe is not None and found != recipe:
        raise StoreError(f"store {store} has another recipe: {'; '.join(found.diff(recipe))}")
    return StoreInfo(
        path=Path(path),
        recipe=found,
        format_version=version,
        software_version=str(meta.get("software_version", "")),
        extra={k: v for k, v in meta.items() if k not in ("format", "format_version", "recipe")},
    )
