"""Which video files a dataset may hold: each accepted suffix and the one demuxer that opens it.

A source is opened only by the demuxer its name promises (ffmpeg's and PyAV's
``format_whitelist``): ``.mp4``, ``.m4v`` and ``.mov`` by the mov/mp4 demuxer,
``.mkv`` and ``.webm`` by the Matroska/WebM demuxer, ``.avi`` by the AVI demuxer. A
playlist or script (HLS, ``concat``, ``ffconcat``) or another container given such a
name is then refused before any file it names is opened, and a Matroska file named
``.mp4`` is refused as well: the name and the content must agree.

Files with :data:`UNSUPPORTED_SUFFIXES` (other video containers) are listed by the
dataset scan as ``unsupported`` rows, never silently skipped. The table lives here,
beside the store's other contracts, so that the trainer can name the accepted
suffixes without importing the media stack.
"""

from __future__ import annotations

import os
from dataclasses import dataclass


@dataclass(frozen=True)
class Container:
    """One container family: how messages name it and the demuxers that may open it."""

    name: str  # "an mp4": read as "the container is not <name>"
    demuxers: str  # ffmpeg's format_whitelist; equal to the demuxer's own name


MP4 = Container("an mp4", "mov,mp4,m4a,3gp,3g2,mj2")
MATROSKA = Container("a Matroska/WebM file", "matroska,webm")
AVI = Container("an AVI", "avi")

#: Accepted suffix (lower case) -> the container family its files must be.
CONTAINERS: dict[str, Container] = {
    ".mp4": MP4,
    ".m4v": MP4,
    ".mov": MP4,
    ".mkv": MATROSKA,
    ".webm": MATROSKA,
    ".avi": AVI,
}
#: The suffixes of the video files a dataset scan lists (any case).
VIDEO_SUFFIXES = frozenset(CONTAINERS)
#: Every demuxer any accepted suffix admits.
DEMUXERS = tuple(dict.fromkeys(c.demuxers for c in CONTAINERS.values()))
#: Video containers that are not decoded: a scan lists each such file as ``unsupported``.
#: Audio-only files, pictures and metadata are not listed (datasets ship those beside
#: their clips on purpose).
UNSUPPORTED_SUFFIXES = frozenset(
    {".flv", ".f4v", ".wmv", ".asf", ".3gp", ".3g2", ".ts", ".mts", ".m2ts", ".mpg", ".mpeg",
     ".m2v", ".vob", ".ogv", ".mxf", ".rm", ".rmvb", ".divx", ".dv", ".qt"}
)  # fmt: skip


def suffix_of(name: str | os.PathLike[str]) -> str:
    """The lower-case suffix of a file name (``'.MKV'`` -> ``'.mkv'``), ``''`` if none."""
    return os.path.splitext(os.fspath(name))[1].lower()


def container_of(name: str | os.PathLike[str]) -> Container | None:
    """The container family a file of this name must be, or None for another suffix."""
    return CONTAINERS.get(suffix_of(name))


def accepted_list() -> str:
    """``'.avi .m4v .mkv .mov .mp4 .webm'``: the accepted suffixes, for messages and help."""
    return " ".join(sorted(CONTAINERS))


__all__ = [
    "AVI",
    "CONTAINERS",
    "DEMUXERS",
    "MATROSKA",
    "MP4",
    "UNSUPPORTED_SUFFIXES",
    "VIDEO_SUFFIXES",
    "Container",
    "accepted_list",
    "container_of",
    "suffix_of",
]
