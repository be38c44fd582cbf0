"""What every metadata-driven adapter does with the clips it reads: one shared :class:`Collector`.

An adapter reads its records and, for each, asks the collector to vet the path
(confined to the root, a regular file, never opened) and then adds the clip. The
collector keeps the rules that are the same for every dataset:

- a record naming a file that does not exist is one ``missing`` row;
- a path that leaves the root (``..``, absolute, a symlink out), a FIFO, a loop:
  one ``refused`` row, the file never opened;
- a second record for the same file with the same labels is merged into the first
  (``merged`` row; differing ``method`` values are joined with ``+``); with other
  labels it is refused. The same file means the same real path: a link inside the
  root (of the file or of a folder above it) is an alias of its target, so one video
  is never stored twice, let alone with opposite labels;
- media files under the root that no record names are ``unlisted``; odd files there
  (FIFOs, links out) that no record named are refused, once each; videos in a
  container that is not decoded (``.flv``, ...) are ``unsupported`` rows.

It keeps a large scan small: repeated short strings (identities, splits, methods)
are interned, and each clip remembers where it was named as two integers, not a string.
Paths are vetted by one :class:`~pipeline.datasets.path_check.PathChecker` for the whole scan,
and the closing walk takes the paths the records named as vetted already.

With a :class:`ClipSink`, every clip is handed over the moment it is first named
(the ingest starts on it while the scan goes on), and a later merge that changes
it is handed over again.
"""

from __future__ import annotations

import os
import sys
from array import array
from dataclasses import replace
from pathlib import Path
from typing import Protocol

from pipeline.datasets.common import LEAVES, MISSING, shown, walk_media
from pipeline.datasets.path_check import PathChecker
from pipeline.datasets.source import ClipSource, ScanResult


class ClipSink(Protocol):
    """Where a streaming scan hands its clips as it finds them."""

    def opened(self, root: Path) -> None:
        """The scan reads the dataset at ``root`` (the clips' paths are relative to it)."""

    def found(self, clip: ClipSource) -> None:
        """``clip`` was named for the first time."""

    def merged(self, clip: ClipSource) -> None:
        """A later record merged into a clip already found; ``clip`` is the merged one."""


class Collector:
    """Gathers one dataset's clips and its report; see the module docstring for the rules."""

    def __init__(self, root: Path, dataset: str, sink: ClipSink | None = None) -> None:
        self.root = root
        self.sink = sink
        self._checker = PathChecker(root)
        if sink is not None:
            sink.opened(root)
        self.result = ScanResult(root=root, clips=[], used_csv=True, dataset=dataset)
        self._examined: set[str] = set()  # odd paths records named (refused there already)
        self._aliases: dict[str, str] = {}  # a path through a link -> its target's path
        self._index: dict[str, int] = {}  # clip path -> index in result.clips
        self._sources: list[str] = []  # metadata file names; a clip's origin indexes this
        self._source_ids: dict[str, int] = {}
        self._origin = array("Q")  # per clip: source number << 40 | (record number + 1)

    # ----------------------------------------------------------------- paths

    def examine(self, rel: str) -> str | None:
        """None when ``root / rel`` is a regular file inside the root, else ``MISSING`` or why not."""
        reason = self._checker.examine(rel)
        # Only odd paths need remembering (the walk reports those no record named): a
        # regular or missing file is never among them, and a million paths would be kept.
        if reason is not None and reason != MISSING:
            self._examined.add(rel)
        elif reason is None:
            real = os.path.relpath(self._checker.last_real, self.root).replace(os.sep, "/")
            if real != rel:  # rare: only links are kept, not a million plain paths
                self._aliases[rel] = real
        return reason

    def reject_path(self, where: str, rel: str, reason: str) -> None:
        """Record why the path ``rel`` a record names cannot be taken (``reason`` from ``examine``)."""
        if reason == MISSING:
            self.result.missing.append(f"{where}: {shown(rel)}")
        elif reason == LEAVES:
            self.result.refused.append(
                f"{where}: path {shown(rel)} leaves the dataset root; refused"
            )
        else:
            self.result.refused.append(f"{where}: {shown(rel)} is {reason}; refused")

    def refuse(self, where: str, reason: str) -> None:
        """One refused record, ``reason`` said in a phrase."""
        self.result.refused.append(f"{where}: {reason}; refused")

    # ----------------------------------------------------------------- clips

    def add(self, source: str, record: int, clip: ClipSource, repairs: list[str]) -> None:
        """Take ``clip`` named by record ``record`` of ``source`` (merging or refusing a duplicate)."""
        where = self.where(source, record)
        real = self._aliases.get(clip.path)
        index = self._index.get(clip.path)
        if index is None and real is not None:
            index = self._index.get(real)
        if index is None:
            self._index[clip.path] = len(self.result.clips)
            if real is not None:  # its target, named later, is this clip
                self._index.setdefault(real, len(self.result.clips))
            self.result.clips.append(clip)
            self._origin.append(self._source_number(source) << 40 | (record + 1))
            self.result.repaired.extend(f"{where}: {repair}" for repair in repairs)
            if self.sink is not None:
                self.sink.found(clip)
            return
        earlier = self.result.clips[index]
        first = self._first_where(index)
        if earlier.path != clip.path:
            first += f" ({shown(earlier.path)}, the same file through a link)"
        if _labels(earlier) != _labels(clip):
            self.refuse(
                where,
                f"duplicate record for {shown(clip.path)} with other labels than {first}",
            )
            return
        merged = replace(earlier, method=_join(earlier.method, clip.method))
        self.result.clips[index] = merged
        if self.sink is not None and merged != earlier:
            self.sink.merged(merged)
        self.result.merged.append(
            f"{where}: {shown(clip.path)} merged with {first} (method {shown(merged.method)})"
        )

    def finish(self) -> ScanResult:
        """The result, with ``unlisted`` media and odd files from one walk of the root."""
        walk = walk_media(self.root, self._checker, known=self._index)
        self.result.refused.extend(
            f"{shown(rel)}: {reason}; refused"
            for rel, reason in walk.odd
            if rel not in self._examined
        )
        self.result.unlisted = [p for p in walk.media if p not in self._index]
        self.result.unsupported = walk.unsupported
        self.result.clips.sort(key=lambda c: c.path)
        self._index.clear()
        self._examined.clear()
        return self.result

    @staticmethod
    def where(source: str, record: int) -> str:
        """How a row names its place: ``metadata.json[12]`` (record 12 of a JSON array),
        ``file.txt:3`` (a line), or just ``source`` (``record`` -1: a one-record file)."""
        if record < 0:
            return source
        return f"{source}:{record}" if source.endswith((".txt", ".csv")) else f"{source}[{record}]"

    @staticmethod
    def intern(text: str) -> str:
        """One shared copy of a short string repeated across records (identity, split, method)."""
        return sys.intern(text)

    def _source_number(self, source: str) -> int:
        number = self._source_ids.get(source)
        if number is None:
            number = self._source_ids[source] = len(self._sources)
            self._sources.append(source)
        return number

    def _first_where(self, index: int) -> str:
        origin = self._origin[index]
        return self.where(self._sources[origin >> 40], (origin & ((1 << 40) - 1)) - 1)


def _labels(clip: ClipSource) -> tuple[object, ...]:
    """What must agree for two records to be one clip: every label and split input."""
    return (
        clip.category,
        clip.labelled,
        clip.identity,
        clip.official_split,
        clip.fake_segments,
        clip.audio_fake_segments,
        clip.video_fake_segments,
    )


def _join(first: str, other: str) -> str:
    values = [v for v in first.split("+") if v]
    values += [v for v in other.split("+") if v and v not in values]
    return "+".join(values) or first


__all__ = ["ClipSink", "Collector"]
