"""What a careless or hostile ``--store`` does: refused in one line, nothing written into it.

Every case runs the real CLI. The read-only and no-free-inode cases mount a small
tmpfs when run as root (as CI does, see ``.ci/run``); without root the read-only
case falls back to file permissions and the inode case is skipped, since only
root can mount a file system with a fixed number of inodes.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from cli_helpers import ingest_json, run_cli

import schemas
from schemas.layout import clip_dir

IS_ROOT = os.geteuid() == 0


def _one_line_error(proc: subprocess.CompletedProcess, *needles: str) -> None:
    assert proc.returncode == 2, proc.stderr
    assert "Traceback" not in proc.stderr
    # The progress bar may have drawn its line before; the error is one line, the last.
    errors = [line for line in proc.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and proc.stderr.strip().endswith(errors[0]), proc.stderr
    for needle in needles:
        assert needle in errors[0], errors[0]


@contextlib.contextmanager
def _tmpfs(path: Path, options: str) -> Iterator[Path]:
    path.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(path)], check=True)
    try:
        yield path
    finally:
        subprocess.run(["umount", "-l", str(path)], check=False)


@contextlib.contextmanager
def _read_only(path: Path) -> Iterator[None]:
    """Make the tmpfs (root) or directory (others) at ``path`` read-only for the block."""
    if IS_ROOT:
        subprocess.run(["mount", "-o", "remount,ro", str(path)], check=True)
    else:
        path.chmod(0o555)
    try:
        yield
    finally:
        if IS_ROOT:
            subprocess.run(["mount", "-o", "remount,rw", str(path)], check=True)
        else:
            path.chmod(0o755)


@contextlib.contextmanager
def _writable_dir(path: Path) -> Iterator[Path]:
    if IS_ROOT:
        with _tmpfs(path, "size=8m") as mounted:
            yield mounted
    else:
        path.mkdir()
        yield path


def test_overwrite_never_deletes_a_users_directory(synth_root: Path, tmp_path: Path) -> None:
    mine = tmp_path / "mine"
    (mine / "photos").mkdir(parents=True)
    (mine / "zarr.json").touch()
    (mine / "thesis.tex").write_text("x")
    proc = run_cli(
        "mscct-pipeline", "ingest", synth_root, "--store", mine, "--overwrite", check=False
    )
    _one_line_error(proc, "not a store")
    assert sorted(os.listdir(mine)) == ["photos", "thesis.tex", "zarr.json"]  # no .lock either


def test_refused_stores_get_no_lock_file(synth_root: Path, tmp_path: Path) -> None:
    data = tmp_path / "data"
    data.mkdir()
    (data / "meta_data.csv").write_text("x\n")
    regular = tmp_path / "file"
    regular.write_text("x")
    had_root_lock = Path("/.lock").exists()
    for store, needle in ((data, "not a store"), (Path("/"), "not a store"),
                          (regular, "not a directory")):  # fmt: skip
        before = sorted(os.listdir(store)) if store.is_dir() else None
        proc = run_cli("mscct-pipeline", "ingest", synth_root, "--store", store, check=False)
        _one_line_error(proc, needle)
        if store.is_dir():
            assert sorted(os.listdir(store)) == before
    assert Path("/.lock").exists() == had_root_lock
    proc = run_cli("mscct-pipeline", "ingest", data, "--store", data, check=False)  # its own root
    _one_line_error(proc)
    assert sorted(os.listdir(data)) == ["meta_data.csv"]


def test_read_only_stores_are_one_line(synth_root: Path, tmp_path: Path) -> None:
    with _writable_dir(tmp_path / "ro") as parent:
        existing = parent / "store"
        schemas.create_store(existing, schemas.Recipe())
        with _read_only(parent), _read_only(existing) if not IS_ROOT else contextlib.nullcontext():
            for store in (parent / "new", existing):
                proc = run_cli(
                    "mscct-pipeline", "ingest", synth_root, "--store", store, check=False
                )
                _one_line_error(proc, "cannot write store")


def test_store_recipe_of_the_wrong_type_is_one_line(synth_root: Path, tmp_path: Path) -> None:
    store = tmp_path / "store"
    schemas.create_store(store, schemas.Recipe())
    meta = json.loads((store / "zarr.json").read_text())
    meta["attributes"]["mscct"]["recipe"]["crop_size"] = "112"
    (store / "zarr.json").write_text(json.dumps(meta))
    for args in (["ingest", synth_root, "--store", store], ["inspect", "--store", store]):
        _one_line_error(run_cli("mscct-pipeline", *args, check=False), "'crop_size' must be int")


def test_negative_limit_is_refused(synth_root: Path, tmp_path: Path) -> None:
    proc = run_cli(
        "mscct-pipeline", "ingest", synth_root, "--store", tmp_path / "s", "--limit", "-1",
        check=False,
    )  # fmt: skip
    _one_line_error(proc, "--limit")
    assert not (tmp_path / "s").exists()


def _fill_inodes(directory: Path) -> int:
    directory.mkdir()
    count = 0
    while True:
        try:
            (directory / str(count)).touch()
        except OSError as exc:
            assert exc.errno == errno.ENOSPC
            return count
        count += 1


@pytest.mark.skipif(not IS_ROOT, reason="a tmpfs with few inodes can only be mounted by root")
def test_no_free_inodes_for_the_manifest_is_one_line(synth_root: Path, tmp_path: Path) -> None:
    with _tmpfs(tmp_path / "small", "size=64m,nr_inodes=400") as mount:
        store = mount / "store"
        ingest_json(synth_root, "--store", store, "--limit", "2", "--workers", "1")
        first = schemas.read_manifest(store).column("clip_id")[0].as_py()
        shutil.rmtree(clip_dir(store, first))  # its rerun must rewrite the manifest
        assert _fill_inodes(mount / "filler") > 0
        proc, _ = ingest_json(synth_root, "--store", store, "--limit", "2", check=False)
        _one_line_error(proc, "cannot write the manifest", "No space left on device", "repair")
        shutil.rmtree(mount / "filler")
        _, again = ingest_json(synth_root, "--store", store, "--limit", "2")
        assert again["ok"] == 1 and again["skipped"] == 1


def test_ingest_leaves_no_ray_session_behind(synth_root: Path, tmp_path: Path) -> None:
    tmp = Path(tempfile.mkdtemp(prefix="mt", dir="/tmp"))  # short: Ray's socket paths
    try:
        env = {**os.environ, "TMPDIR": str(tmp)}
        gone = subprocess.Popen(["true"])
        gone.wait()  # a driver killed with SIGKILL leaves its directory: the next run sweeps it
        (tmp / "mscct-ray-orphan" / f"session_2000-01-01_00-00-00_000000_{gone.pid}").mkdir(
            parents=True
        )
        store = tmp_path / "store"
        cmd = [str(Path(os.sys.executable).parent / "mscct-pipeline"), "ingest", str(synth_root),
               "--store", str(store), "--limit", "1"]  # fmt: skip
        proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        _, stderr = proc.communicate(timeout=300)
        assert proc.returncode == 0, stderr
        assert os.listdir(tmp) == []
        ours = [p for p in Path("/tmp/ray").glob(f"session_*_{proc.pid}")]
        assert ours == []
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
