"""Hostile ``split --from-file`` files: FIFOs, misleading first lines, stray quotes, oversize.

Each is refused in one line (or read as what it is, and said so), never waited on, and
the file and its folder are left as they were.
"""

from __future__ import annotations

import os
import shutil
import threading
from pathlib import Path

import pytest
from cli_helpers import run_cli
from test_split_strict import full_identity, table

import schemas
from pipeline.splits.formats import (
    MAX_FILE_BYTES,
    MAX_LINE_CHARS,
    MAX_LINES,
    SplitFileError,
    read_split_file,
)
from pipeline.splits.imports import import_split
from pipeline.splits.params import SplitError


@pytest.fixture()
def store(ingested_store: Path, tmp_path: Path) -> Path:
    copy = tmp_path / "store"
    shutil.copytree(ingested_store, copy)
    return copy


def folder_state(folder: Path) -> dict[str, bytes | None]:
    """Every entry of ``folder`` with its bytes (None for a FIFO or a folder)."""
    return {
        p.name: p.read_bytes() if p.is_file() and not p.is_symlink() else None
        for p in sorted(folder.iterdir())
    }


def test_a_fifo_split_file_is_refused_at_once_and_the_detected_format_is_said(
    store: Path, tmp_path: Path
) -> None:
    inputs = tmp_path / "inputs"
    inputs.mkdir()
    os.mkfifo(inputs / "train.txt")
    before = folder_state(inputs)
    # A FIFO nobody writes to blocked the command forever.
    proc = run_cli(
        "mscct-pipeline", "split", "--store", store, "--from-file",
        f"train={inputs / 'train.txt'}", timeout=60, check=False,
    )  # fmt: skip
    assert proc.returncode == 2, proc.stderr
    assert proc.stderr.strip().splitlines() == [
        f"error: split file {inputs / 'train.txt'} is a FIFO, not a regular file; never read"
    ]
    identities = sorted(set(schemas.read_manifest(store).column("identity").to_pylist()))
    ids = inputs / "ids.txt"
    ids.write_text("\n".join(identities[:2]) + "\n")
    before = folder_state(inputs)
    proc = run_cli(
        "mscct-pipeline", "split", "--store", store, "--name", "given", "--from-file",
        f"train={ids}",
    )  # fmt: skip
    assert f"{ids}: ids (detected), 2 identities -> train" in proc.stdout
    assert folder_state(inputs) == before


def _rows(*identities: str) -> list[dict]:
    return [r for identity in identities for r in full_identity(identity)]


def test_a_plain_identity_list_is_never_read_as_an_mrdf_fold(tmp_path: Path) -> None:
    # "alice" has another shape than "bob": the file was taken for an MRDF fold, alice
    # dropped as its header, and everyone but bob put in test, without a word.
    path = tmp_path / "people.txt"
    path.write_text("alice\nbob\n")
    with pytest.raises(SplitFileError, match="a list of identities needs its part"):
        read_split_file(str(path))
    parsed = read_split_file(f"train={path}")
    assert parsed.format == "ids" and parsed.detected and parsed.rest_part is None
    assert parsed.describe() == f"{path}: ids (detected), 2 identities -> train"
    split = import_split(table(_rows("alice", "bob", "carol")), [parsed])
    assert set(split.column("identity").to_pylist()) == {"alice", "bob"}
    assert set(split.column("split").to_pylist()) == {"train"}


def test_an_mrdf_fold_whose_header_is_an_identity_of_the_store_is_refused(
    tmp_path: Path,
) -> None:
    path = tmp_path / "fold.txt"
    path.write_text("alice\nid00001\nid00002\n")
    parsed = read_split_file(str(path))
    assert parsed.format == "mrdf-fold" and parsed.header == "alice"
    assert "first line 'alice' skipped as a header" in parsed.describe()
    with pytest.raises(SplitError, match="its first line 'alice' is an identity of the store"):
        import_split(table(_rows("alice", "id00001", "id00002")), [parsed])
    # Given explicitly, the format is the user's word.
    given = read_split_file(str(path), "mrdf-fold")
    split = import_split(table(_rows("alice", "id00001", "id00002")), [given])
    assert {r["identity"]: r["split"] for r in split.to_pylist()}["alice"] == "test"


def test_an_unbalanced_quote_names_its_line(tmp_path: Path) -> None:
    path = tmp_path / "train_split.csv"
    path.write_text(
        "source,category,full_path\n"
        "id00001,A,FakeAVCeleb/RealVideo-RealAudio/African/men/id00001/00001.mp4\n"
        'id00002,A,"FakeAVCeleb/RealVideo-RealAudio/African/men/id00002/00001.mp4\n'
        "id00003,A,FakeAVCeleb/RealVideo-RealAudio/African/men/id00003/00001.mp4\n"
    )
    with pytest.raises(SplitFileError, match=r"train_split.csv line 3: not a valid CSV line"):
        read_split_file(str(path))


def test_split_files_past_the_bounds_are_refused_in_one_line(tmp_path: Path) -> None:
    wide = tmp_path / "wide.csv"  # a field over csv's 128 KiB once raised _csv.Error
    wide.write_text("source,category,full_path\nid00001,A," + "x" * (200 << 10) + "\n")
    big = tmp_path / "big.txt"
    with big.open("wb") as handle:  # sparse: refused before a byte is read
        handle.truncate(MAX_FILE_BYTES + 1)
    many = tmp_path / "many.txt"
    many.write_text("a\n" * (MAX_LINES + 1))
    cases = {
        wide: f"wide.csv line 2 is 204,810 characters long, over the limit of {MAX_LINE_CHARS:,}",
        big: f"is {MAX_FILE_BYTES + 1:,} bytes, over the limit of {MAX_FILE_BYTES:,}",
        many: f"many.txt has more than {MAX_LINES:,} lines",
    }
    for path, message in cases.items():
        with pytest.raises(schemas.UserError) as caught:
            read_split_file(f"train={path}")
        assert message in str(caught.value) and "\n" not in str(caught.value)


def test_a_fifo_or_a_folder_is_refused_without_blocking(tmp_path: Path) -> None:
    os.mkfifo(tmp_path / "fifo.txt")
    (tmp_path / "folder").mkdir()
    errors: list[BaseException] = []

    def read() -> None:
        for name in ("fifo.txt", "folder"):
            try:
                read_split_file(f"train={tmp_path / name}")
            except BaseException as exc:  # handed to the test's thread
                errors.append(exc)

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    reader.join(timeout=30)
    assert not reader.is_alive(), "reading a FIFO split file blocked"
    assert [type(e).__name__ for e in errors] == ["RefusedFile", "RefusedFile"]
    assert "is a FIFO" in str(errors[0]) and "a directory" in str(errors[1])
