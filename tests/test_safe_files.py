"""The one opener for files from outside: links, FIFOs, paths out of the root, oversize."""

from __future__ import annotations

import os
import threading

import pytest

from schemas import UserError
from schemas.safe_files import RefusedFile, open_inside, read_bytes_inside, read_text_inside


def test_a_regular_file_inside_its_root_is_read(tmp_path):
    (tmp_path / "a.txt").write_text("hello")
    assert read_text_inside(tmp_path / "a.txt", tmp_path, max_bytes=10) == "hello"


def test_a_final_link_is_refused_even_inside_the_root(tmp_path):
    (tmp_path / "a.txt").write_text("hello")
    (tmp_path / "link.txt").symlink_to(tmp_path / "a.txt")
    with pytest.raises(RefusedFile, match="symbolic link"):
        open_inside(tmp_path / "link.txt", tmp_path)


def test_a_folder_link_leading_out_is_refused(tmp_path):
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "t.txt").write_text("secret")
    root = tmp_path / "root"
    root.mkdir()
    (root / "sub").symlink_to(outside)
    with pytest.raises(RefusedFile, match="leads outside"):
        open_inside(root / "sub" / "t.txt", root)


def test_a_fifo_is_refused_without_blocking(tmp_path):
    fifo = tmp_path / "table.parquet"
    os.mkfifo(fifo)
    errors: list[BaseException] = []

    def read() -> None:
        try:
            open_inside(fifo, tmp_path)
        except BaseException as exc:
            errors.append(exc)

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    reader.join(timeout=5)
    assert not reader.is_alive(), "opening a FIFO blocked"
    assert isinstance(errors[0], RefusedFile) and "a FIFO" in str(errors[0])


def test_a_directory_is_refused(tmp_path):
    (tmp_path / "d").mkdir()
    with pytest.raises(RefusedFile, match="a directory"):
        open_inside(tmp_path / "d", tmp_path)


def test_an_oversize_file_is_refused_before_reading(tmp_path):
    (tmp_path / "big").write_bytes(b"x" * 101)
    with pytest.raises(RefusedFile, match="over the limit of 100"):
        read_bytes_inside(tmp_path / "big", tmp_path, max_bytes=100)


def test_refusals_are_user_errors_and_missing_files_are_not(tmp_path):
    assert issubclass(RefusedFile, UserError)
    with pytest.raises(FileNotFoundError):
        open_inside(tmp_path / "missing", tmp_path)
