"""A hostile or careless dataset tree: every odd entry is one refused row, the rest ingests.

FIFOs, sockets, symlink loops, undecodable names, a ``meta_data.csv`` linked out
of the root, and CSV rows with a NUL, a non-UTF-8 byte or a field over csv's
128 KiB limit. Nothing odd is ever opened (a FIFO would block ``open()``), so
the scans and ingests here run in subprocesses with a timeout: a regression
fails in seconds instead of hanging the suite.
"""

from __future__ import annotations

import csv
import json
import os
import shutil
import socket
import subprocess
import sys
from pathlib import Path

import pytest
from cli_helpers import run_cli

import schemas

HEADER = "source,target1,target2,method,category,type,race,gender,path,"
A_DIR = "RealVideo-RealAudio/African/men/id00076"
B_DIR = "FakeVideo-RealAudio/African/men/id00076"
D_DIR = "FakeVideo-FakeAudio/African/men/id00076"
SCAN_TIMEOUT_S = 60
INGEST_TIMEOUT_S = 300

_SCAN_SCRIPT = """
import dataclasses, json, sys
from pipeline.datasets.fakeavceleb import scan_dataset
result = scan_dataset(sys.argv[1])
data = dataclasses.asdict(result)
data["root"] = str(result.root)
print(json.dumps(data))
"""


def scan_in_subprocess(root: Path) -> dict:
    """``scan_dataset(root)`` as a dict, run where a blocking ``open()`` cannot hang the suite."""
    proc = subprocess.run(
        [sys.executable, "-c", _SCAN_SCRIPT, str(root)],
        capture_output=True,
        text=True,
        timeout=SCAN_TIMEOUT_S,
        cwd=Path(__file__).resolve().parents[1],
    )
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout)


def _touch(path: Path, data: bytes = b"not really a video") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return path


def _row(name: str, directory: str = A_DIR, letter: str = "A", method: str = "real") -> str:
    type_dir = directory.split("/")[0]
    return f"id00076,-,-,{method},{letter},{type_dir},African,men,{name},FakeAVCeleb/{directory}"


def _write_csv(root: Path, lines: list[str | bytes]) -> None:
    raw = [line.encode() if isinstance(line, str) else line for line in [HEADER, *lines]]
    root.mkdir(parents=True, exist_ok=True)
    (root / "meta_data.csv").write_bytes(b"\n".join(raw) + b"\n")


def _one(entries: list[str], needle: str) -> str:
    """The single entry containing ``needle`` (a second listing of one file is a bug)."""
    found = [e for e in entries if needle in e]
    assert len(found) == 1, (needle, entries)
    return found[0]


# --------------------------------------------------------------------------- non-regular files


def test_fifo_and_socket_named_mp4_without_csv_are_refused_rows(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    root = tmp_path / "FakeAVCeleb_v1.2"
    _touch(root / A_DIR / "00001.mp4")
    os.mkfifo(root / A_DIR / "fifo.mp4")
    monkeypatch.chdir(root / A_DIR)  # a socket path must be short: bind it relative
    with socket.socket(socket.AF_UNIX) as sock:
        sock.bind("sock.mp4")
        result = scan_in_subprocess(root)
    assert [c["path"] for c in result["clips"]] == [f"{A_DIR}/00001.mp4"]
    assert "a FIFO" in _one(result["refused"], "fifo.mp4")
    assert "a socket" in _one(result["refused"], "sock.mp4")
    assert len(result["refused"]) == 2
    assert result["missing"] == [] and result["unlisted"] == []


def test_fifo_named_by_the_csv_is_one_refused_row(tmp_path: Path) -> None:
    root = tmp_path / "FakeAVCeleb_v1.2"
    _touch(root / A_DIR / "00001.mp4")
    os.mkfifo(root / A_DIR / "fifo.mp4")
    os.mkfifo(root / A_DIR / "unnamed.mp4")
    _write_csv(root, [_row("00001.mp4"), _row("fifo.mp4")])
    result = scan_in_subprocess(root)
    assert [c["path"] for c in result["clips"]] == [f"{A_DIR}/00001.mp4"]
    named = _one(result["refused"], "fifo.mp4")
    assert named.startswith("meta_data.csv:3: ") and "not a regular file (a FIFO)" in named
    assert "a FIFO" in _one(result["refused"], "unnamed.mp4")  # in the tree, named by no row
    assert result["missing"] == [] and result["unlisted"] == []


# --------------------------------------------------------------------------- links


def test_symlink_loop_is_a_refused_row(tmp_path: Path) -> None:
    root = tmp_path / "FakeAVCeleb_v1.2"
    _touch(root / A_DIR / "00001.mp4")
    os.symlink("b.mp4", root / A_DIR / "a.mp4")
    os.symlink("a.mp4", root / A_DIR / "b.mp4")
    tree = scan_in_subprocess(root)
    assert [c["path"] for c in tree["clips"]] == [f"{A_DIR}/00001.mp4"]
    assert "symbolic link loop" in _one(tree["refused"], "/a.mp4")
    assert "symbolic link loop" in _one(tree["refused"], "/b.mp4")

    _write_csv(root, [_row("a.mp4"), _row("00001.mp4")])
    listed = scan_in_subprocess(root)
    assert [c["path"] for c in listed["clips"]] == [f"{A_DIR}/00001.mp4"]
    assert _one(listed["refused"], "/a.mp4").startswith("meta_data.csv:2: ")
    assert "symbolic link loop" in _one(listed["refused"], "/b.mp4")  # named by no row
    assert listed["missing"] == [] and listed["unlisted"] == []


def test_csv_linked_out_of_the_root_is_not_read(tmp_path: Path) -> None:
    secret = tmp_path / "passwd"
    secret.write_text("root:x:0:0:SECRET-LINE\n")
    root = tmp_path / "FakeAVCeleb_v1.2"
    _touch(root / A_DIR / "00001.mp4")
    os.symlink(secret, root / "meta_data.csv")
    proc = run_cli("mscct-pipeline", "ingest", root, "--store", tmp_path / "s", check=False)
    assert proc.returncode == 2, proc.stderr
    errors = [line for line in proc.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "outside the dataset root" in errors[0]
    assert "Traceback" not in proc.stderr
    assert "SECRET" not in proc.stderr + proc.stdout


# --------------------------------------------------------------------------- bad bytes


def test_one_bad_csv_row_is_refused_with_its_line(tmp_path: Path) -> None:
    root = tmp_path / "FakeAVCeleb_v1.2"
    for name in ("00001.mp4", "00002.mp4", "x.mp4", "caf\xe9.mp4"):
        _touch(root / A_DIR / name)
    _write_csv(
        root,
        [
            _row("00001.mp4"),  # line 2
            _row("x\x00.mp4"),  # line 3: "embedded null byte" once
            _row("caf\xe9.mp4").encode("latin-1"),  # line 4: byte 0xe9, not UTF-8
            _row("x.mp4", method="m" * (200 * 1024)),  # line 5: over csv's field limit
            _row("00002.mp4"),  # line 6: still read
        ],
    )
    result = scan_in_subprocess(root)
    assert [c["path"] for c in result["clips"]] == [f"{A_DIR}/00001.mp4", f"{A_DIR}/00002.mp4"]
    refused = sorted(result["refused"])
    assert len(refused) == 3, refused
    assert refused[0].startswith("meta_data.csv:3: ") and "NUL" in refused[0]
    assert refused[1].startswith("meta_data.csv:4: ") and "0xe9" in refused[1]
    assert refused[2].startswith("meta_data.csv:5: ") and "field limit" in refused[2]
    assert all(len(r) < 300 for r in refused)  # the 200 KiB field is not echoed
    # The files those rows meant are in the tree, named by no valid row.
    assert result["unlisted"] == [f"{A_DIR}/caf\xe9.mp4", f"{A_DIR}/x.mp4"]


def test_undecodable_file_names_in_the_tree_are_refused_rows(tmp_path: Path) -> None:
    root = tmp_path / "FakeAVCeleb_v1.2"
    _touch(root / A_DIR / "00001.mp4")
    folder = os.fsencode(root / A_DIR)
    with open(os.path.join(folder, b"caf\xe9.mp4"), "wb") as handle:  # Latin-1, not UTF-8
        handle.write(b"x")
    tree = scan_in_subprocess(root)
    assert [c["path"] for c in tree["clips"]] == [f"{A_DIR}/00001.mp4"]
    entry = _one(tree["refused"], "caf\\xe9.mp4")
    assert "not valid UTF-8" in entry and entry.isprintable()

    _write_csv(root, [_row("00001.mp4")])
    listed = scan_in_subprocess(root)
    assert "not valid UTF-8" in _one(listed["refused"], "caf\\xe9.mp4")
    assert listed["unlisted"] == []


# --------------------------------------------------------------------------- real ingests


def _small_tree(synth_root: Path, dst: Path) -> tuple[Path, list[list[str]]]:
    """One real clip per category copied from the synthetic dataset, and their CSV rows."""
    with (synth_root / "meta_data.csv").open(newline="") as handle:
        rows = list(csv.reader(handle))[1:]
    chosen: dict[str, list[str]] = {}
    for row in rows:
        chosen.setdefault(row[4], row)
    root = dst / "FakeAVCeleb_v1.2"
    for row in chosen.values():
        rel = Path(*Path(row[9]).parts[1:], row[8])
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(synth_root / rel, root / rel)
    return root, [chosen[letter] for letter in "ABCD"]


def _dir_of(row: list[str]) -> Path:
    return Path(*Path(row[9]).parts[1:])


def test_ingest_of_a_hostile_tree_without_csv(synth_root: Path, tmp_path: Path) -> None:
    """Without meta_data.csv a FIFO once hung the ingest for ever; now each odd file is a row."""
    root, rows = _small_tree(synth_root, tmp_path)
    a_dir, b_dir, c_dir, d_dir = (root / _dir_of(row) for row in rows)
    os.mkfifo(a_dir / "fifo.mp4")
    os.symlink("loop2.mp4", b_dir / "loop1.mp4")
    os.symlink("loop1.mp4", b_dir / "loop2.mp4")
    real_clip = next(c_dir.glob("*.mp4"))
    shutil.copyfile(real_clip, os.path.join(os.fsencode(c_dir), b"\xff\xfe.mp4"))
    outside = shutil.copyfile(real_clip, tmp_path / "outside.mp4")
    os.symlink(outside, d_dir / "outside.mp4")

    proc = run_cli(
        "mscct-pipeline",
        "ingest",
        root,
        "--store",
        tmp_path / "store",
        "--workers",
        "1",
        "--json",
        timeout=INGEST_TIMEOUT_S,
    )
    summary = json.loads(proc.stdout[proc.stdout.find("{") :])
    assert (summary["ok"], summary["failed"]) == (4, 0)
    refused = summary["refused"]
    assert "a FIFO" in _one(refused, "fifo.mp4")
    assert "symbolic link loop" in _one(refused, "loop1.mp4")
    assert "symbolic link loop" in _one(refused, "loop2.mp4")
    assert "not valid UTF-8" in _one(refused, "\\xff\\xfe.mp4")
    assert "leaves the dataset root" in _one(refused, "outside.mp4")
    assert len(refused) == 5 and summary["missing"] == [] and summary["unlisted"] == []
    manifest = schemas.read_manifest(tmp_path / "store").to_pylist()
    assert sorted(r["category"] for r in manifest) == sorted(schemas.CATEGORIES)
    assert all(r["status"] == schemas.STATUS_OK for r in manifest)


def test_ingest_of_a_hostile_csv(synth_root: Path, tmp_path: Path) -> None:
    """Bad rows are refused by line, a release-style duplicate merged; the good clips ingest."""
    root, rows = _small_tree(synth_root, tmp_path)
    a_row, b_row, c_row, d_row = rows
    os.mkfifo(root / _dir_of(a_row) / "fifo.mp4")
    os.symlink("loop.mp4", root / _dir_of(b_row) / "loop.mp4")
    twin_method = "wav2lip" if d_row[3] != "wav2lip" else "fsgan-wav2lip"

    def line(row: list[str], **changes: str) -> str:
        fields = list(row)
        for index, value in changes.items():
            fields[int(index[1:])] = value
        return ",".join(fields)

    lines: list[str | bytes] = [
        line(a_row),  # 2
        line(b_row),  # 3
        line(a_row, f8="fifo.mp4"),  # 4
        line(b_row, f8="loop.mp4"),  # 5
        line(a_row, f8="bad\x00.mp4"),  # 6
        line(a_row, f8="caf\xe9.mp4").encode("latin-1"),  # 7
        line(a_row, f0="i" * (140 * 1024)),  # 8
        line(c_row),  # 9
        line(d_row),  # 10
        line(d_row, f3=twin_method),  # 11: merged into line 10's clip
        line(c_row, f6="Asian_East"),  # 12: same file, other labels
    ]
    _write_csv(root, lines)
    store = tmp_path / "store"
    proc = run_cli(
        "mscct-pipeline", "ingest", root, "--store", store, "--workers", "1",
        timeout=INGEST_TIMEOUT_S,
    )  # fmt: skip
    notes = proc.stderr
    assert "1 duplicate rows merged" in notes and "meta_data.csv:11:" in notes
    assert "6 rows refused" in notes
    for line_no in (4, 5, 6, 7, 8, 12):
        assert f"meta_data.csv:{line_no}: " in notes
    assert "missing" not in notes and "no row names" not in notes
    assert "Traceback" not in notes and "i" * 1000 not in notes

    manifest = {r["category"]: r for r in schemas.read_manifest(store).to_pylist()}
    assert sorted(manifest) == sorted(schemas.CATEGORIES)
    assert all(r["status"] == schemas.STATUS_OK for r in manifest.values())
    assert manifest["FAFV"]["method"] == f"{d_row[3]}+{twin_method}"
    assert manifest["RAFV"]["race"] == c_row[6]  # the first row's labels, not the refused one's
