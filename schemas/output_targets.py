"""Where a command may write a picture or a report: one check, made before anything is drawn.

Two kinds of target:

- **A picture file** (``inspect --sheet``, ``show --out``, ``predict --plot``):
  :func:`check_file_target`. A new path or an existing regular file (replaced) is
  accepted; a directory, a FIFO, a socket or a device is refused, and so is a path whose
  folder is a file.
- **A report folder** (``inspect --html``): :func:`check_report_folder`. A new or empty
  folder is accepted, and so is a previous report of ours, recognised by the marker file
  :data:`REPORT_MARKER` that every report writes first; a folder holding anything else
  (a user's own ``index.html`` and pictures) is refused, never overwritten. Rewriting a
  previous report replaces the files it wrote and removes those of them it no longer
  writes; files a user added there are left alone.

Neither may lie inside a feature store (a store holds only what a store writes: foreign
files there make ``ingest --overwrite`` refuse it). Write errors (a full disk, a
read-only folder) become one line through :func:`writing`. Every refusal is an
:class:`OutputError`, a :class:`~schemas.cli_errors.UserError`.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import stat
from collections.abc import Iterable, Iterator
from pathlib import Path

from schemas.cli_errors import UserError
from schemas.durable import atomic_write
from schemas.layout import os_reason
from schemas.lifecycle import is_store
from schemas.safe_files import file_kind

#: Written first into a report folder, listing the files the report wrote: what tells a
#: previous report of ours from a user's folder.
REPORT_MARKER = ".mscct-report.json"
_MARKER_FORMAT = "mscct-report"
_MARKER_MAX_BYTES = 1 << 20
#: The names a report writes besides the marker (a marker naming anything else, such as
#: ``../x``, is not trusted with it).
_REPORT_NAME = re.compile(r"^(index\.html|[a-z_]+\.png)$")


class OutputError(UserError):
    """An output path a command will not write to, or could not write."""


def store_around(path: str | os.PathLike[str]) -> Path | None:
    """The feature store that ``path`` lies in (or is), else None; links followed."""
    given = Path(os.path.abspath(path))
    for chain in (given, given.resolve()):
        for candidate in (chain, *chain.parents):
            if is_store(candidate):
                return candidate
    return None


def _refuse_inside_store(path: Path, option: str) -> None:
    store = store_around(path)
    if store is not None:
        raise OutputError(
            f"{option} {path} lies inside the feature store {store}; write it outside "
            "(a store holds only the files a store writes)"
        )


def check_file_target(path: Path, option: str) -> Path:
    """Refuse a picture file target that is not a new path or a regular file; ``path``."""
    try:
        mode = os.stat(path).st_mode
    except FileNotFoundError:
        mode = None
    except OSError as exc:
        raise OutputError(f"cannot write {option} {path}: {os_reason(exc)}") from None
    if mode is not None and stat.S_ISDIR(mode):
        raise OutputError(
            f"{option} {path} is a directory; give a file name (such as {path / 'out.png'})"
        )
    if mode is not None and not stat.S_ISREG(mode):
        raise OutputError(f"{option} {path} is {file_kind(mode)}, not a regular file")
    _check_folder_chain(path.parent, option, path)
    _refuse_inside_store(path, option)
    return path


def _check_folder_chain(folder: Path, option: str, path: Path) -> None:
    """The nearest existing ancestor of a target must be a folder (it is created below)."""
    for candidate in (folder, *folder.parents):
        if candidate.exists():
            if not candidate.is_dir():
                raise OutputError(f"cannot write {option} {path}: {candidate} is not a folder")
            return


def check_report_folder(folder: Path, option: str) -> list[str]:
    """Refuse a report folder that is not new, empty or a previous report of ours.

    Returns the names of the files the previous report there wrote (empty otherwise).
    """
    if folder.is_symlink() and not folder.exists():
        raise OutputError(f"{option} {folder} is a dangling link; give a folder")
    if folder.exists() and not folder.is_dir():
        raise OutputError(f"{option} {folder} exists and is not a folder; give a folder")
    _check_folder_chain(folder.parent, option, folder)
    _refuse_inside_store(folder, option)
    if not folder.exists():
        return []
    try:
        names = sorted(entry.name for entry in os.scandir(folder))
    except OSError as exc:
        raise OutputError(f"cannot read {option} {folder}: {os_reason(exc)}") from None
    if REPORT_MARKER in names:
        return _previous_files(folder / REPORT_MARKER)
    if names:
        shown = ", ".join(names[:5]) + (", …" if len(names) > 5 else "")
        raise OutputError(
            f"{option} {folder} holds files that are not an mscct report ({shown}); give a "
            "new or empty folder, or the folder of a previous report to replace it"
        )
    return []


def _previous_files(marker: Path) -> list[str]:
    """The file names a marker lists (none when it is unreadable: nothing is removed)."""
    try:
        if not marker.is_file() or marker.stat().st_size > _MARKER_MAX_BYTES:
            return []
        data = json.loads(marker.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return []
    files = data.get("files") if isinstance(data, dict) else None
    if not isinstance(files, list):
        return []
    return [f for f in files if isinstance(f, str) and _REPORT_NAME.match(f)]


def mark_report(folder: Path, files: Iterable[str]) -> None:
    """Write the folder's :data:`REPORT_MARKER` listing ``files`` (names inside it)."""
    data = {"format": _MARKER_FORMAT, "files": sorted(set(files))}
    with (
        writing(folder / REPORT_MARKER),
        atomic_write(folder / REPORT_MARKER, durable=False) as tmp,
    ):
        tmp.write_text(json.dumps(data, indent=1) + "\n", encoding="utf-8")


@contextlib.contextmanager
def writing(path: Path) -> Iterator[None]:
    """Turn an ``OSError`` raised while writing ``path`` into a one-line :class:`OutputError`
    (a full disk, a read-only folder, a folder where a file was expected)."""
    try:
        yield
    except OSError as exc:
        raise OutputError(f"cannot write {path}: {os_reason(exc)}") from None
