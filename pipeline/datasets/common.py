"""Helpers every dataset adapter shares: the scan's error, path vetting, the media walk, printing.

Every path a dataset names is vetted with ``lstat``/``stat`` alone (never opened, so a
FIFO cannot block) by :class:`~pipeline.datasets.path_check.PathChecker`: :func:`examine` says
whether it is a regular file inside the root, and why not (:data:`MISSING`,
:data:`LEAVES`, a FIFO, a loop, ...). :func:`walk_media` lists the media under a root
the same way (the video suffixes of :mod:`schemas.containers`), so that files no
record names are reported (``unlisted``), odd ones refused, and videos in a
container that is not decoded (``.flv``, ``.wmv``, ...) listed as ``unsupported``.
:func:`shown` makes any text from a dataset safe to print on one line.
"""

from __future__ import annotations

import os
from collections.abc import Container
from dataclasses import dataclass, field
from pathlib import Path

from pipeline.datasets.path_check import LEAVES, MISSING, PathChecker
from schemas.cli_errors import UserError
from schemas.containers import UNSUPPORTED_SUFFIXES, VIDEO_SUFFIXES, accepted_list


class ScanError(UserError):
    """The dataset root cannot be scanned at all (missing, wrong CSV header, ...)."""


@dataclass
class MediaWalk:
    """What a walk of the tree found: regular media files, and odd ones with the reason."""

    media: list[str] = field(default_factory=list)  # relative POSIX paths, sorted
    odd: list[tuple[str, str]] = field(default_factory=list)  # (relative path, reason)
    # "<path>: <why>; unsupported" for each video in a container that is not decoded
    unsupported: list[str] = field(default_factory=list)


def walk_media(
    dataset: Path, checker: PathChecker | None = None, known: Container[str] = ()
) -> MediaWalk:
    """Every video (:data:`VIDEO_SUFFIXES`) under ``dataset``, vetted with
    ``lstat``/``stat`` only (never opened), and every file with an
    :data:`UNSUPPORTED_SUFFIXES` suffix as an ``unsupported`` row.

    Paths in ``known`` were vetted already (by ``checker``, in this scan) and are taken
    as they are: a metadata-driven scan has examined every path its records name (a
    record naming an ``.flv`` is its clip's failed row, not an ``unsupported`` one).
    """
    checker = checker or PathChecker(dataset)
    walk = MediaWalk()
    top = os.fspath(dataset)
    for dirpath, _dirnames, filenames in os.walk(top):
        folder = os.path.relpath(dirpath, top).replace(os.sep, "/")
        prefix = "" if folder == "." else folder + "/"
        for name in filenames:
            suffix = os.path.splitext(name)[1].lower()
            if suffix in UNSUPPORTED_SUFFIXES and prefix + name not in known:
                walk.unsupported.append(_unsupported_row(prefix + name, suffix))
            if suffix not in VIDEO_SUFFIXES:
                continue
            rel = prefix + name
            if rel in known:
                walk.media.append(rel)
                continue
            if undecodable(rel):  # os.walk hands back undecodable bytes as surrogates
                walk.odd.append((rel, "the file name is not valid UTF-8"))
                continue
            reason = checker.examine(rel)
            if reason is None:
                walk.media.append(rel)
            elif reason != MISSING:  # MISSING: removed while we walked; nothing to report
                walk.odd.append((rel, reason))
    walk.media.sort()
    walk.odd.sort()
    walk.unsupported.sort()
    return walk


def _unsupported_row(rel: str, suffix: str) -> str:
    """The ``unsupported`` row of a video no demuxer is tied to (never opened)."""
    return (
        f"{shown(rel)}: {shown(suffix)} is not a supported video container "
        f"(accepted: {accepted_list()}); unsupported"
    )


def examine(dataset: Path, rel: str) -> str | None:
    """None when ``dataset / rel`` is a regular file inside ``dataset``, else why not
    (:meth:`pipeline.datasets.path_check.PathChecker.examine`, for one path)."""
    return PathChecker(dataset).examine(rel)


def undecodable(text: str) -> bool:
    """True when ``text`` carries bytes that were not UTF-8 (decoded as surrogates)."""
    return any("\udc80" <= ch <= "\udcff" for ch in text)


def shown(text: str, limit: int = 200) -> str:
    """``text`` safe to print on one line: bad bytes as ``\\xNN``, controls escaped, capped."""
    decoded = text.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")
    safe = "".join(ch if ch.isprintable() else repr(ch)[1:-1] for ch in decoded)
    return safe if len(safe) <= limit else safe[:limit] + "..."


__all__ = [
    "LEAVES",
    "MISSING",
    "VIDEO_SUFFIXES",
    "MediaWalk",
    "ScanError",
    "examine",
    "shown",
    "undecodable",
    "walk_media",
]
