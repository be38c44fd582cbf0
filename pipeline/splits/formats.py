"""Read the published split files of other FakeAVCeleb projects.

Four formats, each read into a list of :class:`Entry` (a clip path or an
identity, with the part it goes to):

``avh``
    AVH-Align's ``{train,val,test}_split.csv``: a header ``source,category,full_path``
    then one clip per row; ``category`` is the release's letter (A = RARV, B = FARV,
    C = RAFV, D = FAFV) and ``full_path`` starts with the release folder
    (``FakeAVCeleb/RealVideo-RealAudio/...``), dropped to get the path relative to
    the dataset root. One file per part: without ``PART=`` the part comes from the
    file name (``val_split.csv`` -> val), else the file is refused.
``speechforensics``
    SpeechForensics' ``test_list.txt``: ``relative/path label`` per line, label 1 real
    and 0 fake, split on the *last* space (folder names such as ``Asian (South)``
    hold spaces). A test list: without ``PART=`` its part is test.
``mrdf-fold``
    MRDF's fold files: a header line, then one identity per line (the leading
    ``idNNNNN`` of the line, else its first word). Each identity gives all of its ok
    clips to the part. Without ``PART=`` the file is MRDF's training fold: its
    identities are train and every other identity of the store is test, as MRDF does.
``ids``
    A plain list of identities, one per line (blank lines and ``#`` comments skipped);
    ``PART=`` is required.

The format is detected from the file's content when not given, and only on positive
evidence: ``avh`` by its header, ``speechforensics`` by every line being ``path
label``, ``mrdf-fold`` by a first line that is not an identity above lines that all
are VoxCeleb-style ``idNNNNN`` identities; any other list of single words is ``ids``
(no line is dropped as a header on a guess). What was detected is said
(:meth:`SplitFile.describe`). Every file is hashed (SHA-256) so that the split records
exactly what it was made from.

Bounds: a split file is at most :data:`MAX_FILE_BYTES` bytes and :data:`MAX_LINES`
lines of at most :data:`MAX_LINE_CHARS` characters (a path is at most 4,096 bytes);
it is opened without blocking (a FIFO or a directory is refused, never waited on).
Past a bound, or on a line that is not valid CSV, the file is refused in one line.
"""

from __future__ import annotations

import csv
import hashlib
import os
import re
from dataclasses import dataclass, field, replace
from pathlib import Path, PurePosixPath

from schemas import LETTER_TO_CATEGORY, SPLITS
from schemas.cli_errors import UserError
from schemas.safe_files import read_bytes_inside

FORMATS = ("avh", "speechforensics", "mrdf-fold", "ids")
#: A split file is refused past these bounds (AVH-Align's largest file is about 2 MB).
MAX_FILE_BYTES = 16 << 20
MAX_LINES = 500_000
MAX_LINE_CHARS = 4_096
AVH_COLUMNS = ("source", "category", "full_path")
_MRDF_IDENTITY = re.compile(r"^(id\d+)")
_SF_LINE = re.compile(r"^(.*\S)\s+([01])$")


class SplitFileError(UserError):
    """A split file cannot be read; the message names the file and says why."""


@dataclass(frozen=True, slots=True)
class Entry:
    """One line of a split file: a clip ``path`` or an ``identity`` and its part.

    ``expected`` is what the file says of the clip, checked against the store:
    a category name (avh) or the overall label, 1 = fake (speechforensics).
    """

    kind: str  # "path" | "identity"
    value: str
    part: str
    line: int
    expected: str | int | None = None


@dataclass(frozen=True)
class SplitFile:
    """A parsed split file. ``rest_part``: where the identities it does not list go."""

    path: Path
    format: str
    sha256: str
    part: str | None
    entries: list[Entry] = field(default_factory=list)
    rest_part: str | None = None
    detected: bool = False  # the format was read from the content, not given
    header: str | None = None  # the first line, skipped as a header (mrdf-fold)

    def record(self) -> dict[str, str | None]:
        """What the split's parameters record of the file."""
        return {
            "file": str(self.path),
            "format": self.format,
            "sha256": self.sha256,
            "part": self.part,
            "rest_part": self.rest_part,
        }

    def describe(self) -> str:
        """One line saying how the file was read: its format, the header skipped, the parts."""
        how = "detected" if self.detected else "given"
        kind = "identities" if self.entries and self.entries[0].kind == "identity" else "clips"
        text = f"{self.path}: {self.format} ({how}), {len(self.entries)} {kind} -> {self.part}"
        if self.format == "mrdf-fold":
            text += f", first line {self.header!r} skipped as a header"
        if self.rest_part:
            text += f"; every identity it does not list -> {self.rest_part}"
        return text


def parse_spec(spec: str) -> tuple[str | None, Path]:
    """``"train=FILE"`` -> ``("train", FILE)``; ``"FILE"`` -> ``(None, FILE)``.

    Only a known part before ``=`` counts, so a file name holding ``=`` still works.
    """
    head, sep, tail = spec.partition("=")
    if sep and head in SPLITS:
        return head, Path(tail)
    if sep and head and "/" not in head and not Path(spec).exists():
        raise SplitFileError(
            f"--from-file {spec}: unknown part {head!r}; expected {', '.join(SPLITS)}"
        )
    return None, Path(spec)


def read_split_file(spec: str, fmt: str | None = None) -> SplitFile:
    """Read and parse one ``--from-file`` argument (``[PART=]FILE``)."""
    part, path = parse_spec(spec)
    if fmt is not None and fmt not in FORMATS:
        raise SplitFileError(f"unknown --format {fmt!r}; expected one of {', '.join(FORMATS)}")
    data = _read(path)
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise SplitFileError(f"split file {path} is not UTF-8 text (byte {exc.start})") from None
    lines = _lines(path, text)
    detected = fmt is None
    fmt = fmt or detect_format(path, [line for _, line in lines])
    sha = hashlib.sha256(data).hexdigest()
    parser = {"avh": _avh, "speechforensics": _speechforensics, "mrdf-fold": _mrdf, "ids": _ids}
    parsed: SplitFile = parser[fmt](path, part, lines, sha)
    return replace(parsed, detected=detected)


def _read(path: Path) -> bytes:
    """The bytes of a split file the user named (links in its path followed), bounded."""
    try:
        # The user's own path is taken as given, links included; what it names must be
        # a regular file (a FIFO would block the read forever).
        real = os.path.realpath(path)
        return read_bytes_inside(real, max_bytes=MAX_FILE_BYTES, what="split file")
    except OSError as exc:
        raise SplitFileError(f"cannot read split file {path}: {exc.strerror or exc}") from None


def _lines(path: Path, text: str) -> list[tuple[int, str]]:
    """``(line number, stripped line)`` of the non-blank lines, within the bounds."""
    lines: list[tuple[int, str]] = []
    for number, line in enumerate(text.splitlines(), 1):
        if len(line) > MAX_LINE_CHARS:
            raise SplitFileError(
                f"{path} line {number} is {len(line):,} characters long, over the limit of "
                f"{MAX_LINE_CHARS:,}"
            )
        if line.strip():
            lines.append((number, line.strip()))
        if len(lines) > MAX_LINES:
            raise SplitFileError(
                f"{path} has more than {MAX_LINES:,} lines; give the part in several files"
            )
    return lines


def _csv_row(path: Path, number: int, line: str) -> list[str]:
    """The cells of one CSV line; ``SplitFileError`` naming the line when it is not CSV."""
    try:
        return [c.strip() for c in next(csv.reader([line], strict=True))]
    except csv.Error as exc:
        raise SplitFileError(f"{path} line {number}: not a valid CSV line ({exc})") from None


def detect_format(path: Path, lines: list[str]) -> str:
    """The format of a file from its non-blank lines; ``SplitFileError`` when unclear.

    Each format needs positive evidence (see the module docstring); a file that shows
    none is refused, naming the formats to choose from.
    """
    if not lines:
        raise SplitFileError(f"split file {path} is empty")
    try:
        header = [c.strip() for c in next(csv.reader([lines[0]], strict=True))]
    except csv.Error:  # not CSV: then not avh either
        header = []
    if all(column in header for column in AVH_COLUMNS):
        return "avh"
    if all(_SF_LINE.match(line) and "/" in line for line in lines):
        return "speechforensics"
    if all(len(line.split()) == 1 and "," not in line for line in lines):
        below_a_header = len(lines) > 1 and not _MRDF_IDENTITY.match(lines[0])
        if below_a_header and all(_MRDF_IDENTITY.match(line) for line in lines[1:]):
            return "mrdf-fold"
        return "ids"
    raise SplitFileError(
        f"cannot tell the format of split file {path}; give --format {'|'.join(FORMATS)}"
    )


def _avh(path: Path, part: str | None, lines: list[tuple[int, str]], sha: str) -> SplitFile:
    if part is None:
        stem = path.name.removesuffix(".csv").removesuffix("_split")
        if stem not in SPLITS:
            raise SplitFileError(
                f"AVH-Align file {path} holds one part: name it, e.g. --from-file train={path}"
            )
        part = stem
    header = _csv_row(path, lines[0][0], lines[0][1]) if lines else []
    missing = [c for c in AVH_COLUMNS if c not in header]
    if missing:
        raise SplitFileError(f"AVH-Align file {path} lacks column(s) {', '.join(missing)}")
    at = {name: header.index(name) for name in AVH_COLUMNS}
    entries = []
    for number, line in lines[1:]:
        cells = _csv_row(path, number, line)  # line by line: a stray quote names its line
        if len(cells) < len(header):
            raise SplitFileError(f"{path} line {number}: expected {len(header)} fields")
        letter = cells[at["category"]].strip()
        if letter not in LETTER_TO_CATEGORY:
            raise SplitFileError(f"{path} line {number}: unknown category {letter!r} (A-D)")
        # The path starts with the release's folder name ("FakeAVCeleb/"): drop it.
        parts = PurePosixPath(cells[at["full_path"]].strip().replace("\\", "/")).parts
        rel = PurePosixPath(*parts[1:]).as_posix() if len(parts) > 1 else ""
        entries.append(Entry("path", rel, part, number, LETTER_TO_CATEGORY[letter]))
    return SplitFile(path, "avh", sha, part, entries)


def _speechforensics(
    path: Path, part: str | None, lines: list[tuple[int, str]], sha: str
) -> SplitFile:
    part = part or "test"
    entries = []
    for number, line in lines:
        match = _SF_LINE.match(line)
        if match is None:
            raise SplitFileError(f"{path} line {number}: expected 'relative/path label' (0 or 1)")
        rel, label = match.groups()
        # SpeechForensics' label is 1 for real; the store's is 1 for fake.
        entries.append(Entry("path", rel.replace("\\", "/"), part, number, 1 - int(label)))
    return SplitFile(path, "speechforensics", sha, part, entries)


def _mrdf(path: Path, part: str | None, lines: list[tuple[int, str]], sha: str) -> SplitFile:
    given = part
    part = part or "train"
    entries = []
    for number, line in lines[1:]:  # the first line is the header
        match = _MRDF_IDENTITY.match(line)
        identity = match.group(1) if match else line.replace(",", " ").split()[0]
        entries.append(Entry("identity", identity, part, number))
    rest = None if given else "test"
    header = lines[0][1] if lines else None
    return SplitFile(path, "mrdf-fold", sha, given, entries, rest_part=rest, header=header)


def _ids(path: Path, part: str | None, lines: list[tuple[int, str]], sha: str) -> SplitFile:
    if part is None:
        raise SplitFileError(f"a list of identities needs its part: --from-file train={path}")
    entries = [
        Entry("identity", line.split()[0], part, number)
        for number, line in lines
        if not line.startswith("#")
    ]
    return SplitFile(path, "ids", sha, part, entries)
