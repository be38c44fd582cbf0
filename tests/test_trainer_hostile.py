"""Hostile inputs to ``mscct-train``: run folders, config files, ``--set`` values, checkpoints.

Each case builds the hostile input, runs the real CLI and checks the one-line outcome,
and that nothing outside the paths given was written (a folder beside them is
snapshotted byte for byte before and after).
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import zipfile
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch
from cli_helpers import call_main
from trainer_fixtures import build_store

from trainer.cli import main

COUNTS = {"train": 2, "val": 1, "test": 1}
FAST = ["--set", "epochs=1", "--set", "windows_per_clip=1", "--set", "batch_size=4"]
FAST += ["--set", "num_workers=0", "--set", "device=cpu", "--set", "precise_bn=1"]


def _snapshot(root: Path) -> dict[str, bytes | None]:
    """Every entry below ``root``: a file's bytes, None for a folder."""
    return {
        str(p.relative_to(root)): (p.read_bytes() if p.is_file() else None)
        for p in sorted(root.rglob("*"))
    }


def _cli(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    capsys.readouterr()
    code = call_main(main, [str(a) for a in args])
    captured = capsys.readouterr()
    return code, captured.out, captured.err.strip()


def _one_line(capsys: pytest.CaptureFixture[str], *args: str) -> str:
    code, _, err = _cli(capsys, *args)
    assert code == 2, err
    assert "\n" not in err and "Traceback" not in err, err
    assert err.startswith("error: "), err
    return err


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A small store and the best checkpoint of a one-epoch run on it."""
    base = tmp_path_factory.mktemp("hostile")
    store = build_store(base / "store", crop_size=24, frames=16, counts=COUNTS)
    out = base / "run"
    assert call_main(main, ["run", "--store", str(store), "--out", str(out), *FAST]) == 0
    return store, out / "checkpoints" / "best.pt"


@pytest.fixture
def outside(tmp_path: Path) -> Iterator[Path]:
    """A folder beside the given paths, holding a file: it must stay as it was."""
    folder = tmp_path / "outside"
    folder.mkdir()
    (folder / "keep.txt").write_text("outside the roots\n")
    before = _snapshot(folder)
    yield folder
    assert _snapshot(folder) == before


# ----------------------------------------------------------------------------- --out


def test_a_non_empty_out_without_resume_is_refused_and_left_alone(
    trained: tuple[Path, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    store, _ = trained
    mine = tmp_path / "mine"
    for name in ("config.yaml", "report.json", "plots/roc.png", "checkpoints/best.pt"):
        (mine / name).parent.mkdir(parents=True, exist_ok=True)
        (mine / name).write_text(f"the user's {name}\n")
    before = _snapshot(mine)
    err = _one_line(capsys, "run", "--store", store, "--out", mine, *FAST)
    assert "is not empty" in err and "--resume" in err and "empty folder" in err, err
    assert _snapshot(mine) == before  # not even a lock file


HOLD_LOCK = """
import fcntl, os, sys, time
fd = os.open(sys.argv[1], os.O_RDWR | os.O_CREAT)
fcntl.lockf(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
print("held", flush=True)
time.sleep(120)
"""


def test_a_second_run_on_a_locked_out_is_refused(
    trained: tuple[Path, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    store, _ = trained
    out = tmp_path / "busy"
    out.mkdir()
    # Another process holds the folder's lock, as a run does while it writes.
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLD_LOCK, str(out / ".run.lock")],
        stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "held"
        err = _one_line(capsys, "run", "--store", store, "--out", out, *FAST)
    finally:
        holder.kill()
        holder.wait()
    assert "another run is writing into" in err, err
    assert sorted(p.name for p in out.iterdir()) == [".run.lock"]


def test_out_inside_a_store_is_refused(
    trained: tuple[Path, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    store, _ = trained
    import shutil

    other = shutil.copytree(store, tmp_path / "other-store")
    for where, target in ((store, store / "runs" / "r1"), (other, other / "clips" / "r2")):
        before = _snapshot(where)
        err = _one_line(capsys, "run", "--store", store, "--out", target, *FAST)
        assert "store" in err and "pass an --out outside it" in err, err
        assert _snapshot(where) == before


def _tmpfs(path: Path, size: str) -> contextlib.AbstractContextManager[Path]:
    @contextlib.contextmanager
    def mounted() -> Iterator[Path]:
        path.mkdir()
        subprocess.run(
            ["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(path)], check=True
        )
        try:
            yield path
        finally:
            subprocess.run(["umount", "-l", str(path)], check=False)

    return mounted()


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to mount a small tmpfs")
def test_a_full_disk_at_the_start_of_a_run_is_one_line(
    trained: tuple[Path, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    store, _ = trained
    with _tmpfs(tmp_path / "small", "256k") as disk:
        with contextlib.suppress(OSError), open(disk / "filler", "wb") as filler:
            while True:
                filler.write(b"\0" * 4096)
                filler.flush()
        err = _one_line(capsys, "run", "--store", store, "--out", disk / "run", *FAST)
        assert "cannot write the run directory" in err and "No space left" in err, err


# ----------------------------------------------------------------------------- configs

ALIAS_BOMB = "\n".join(
    [
        'a: &a ["x","x","x","x","x","x","x","x","x"]',
        *(
            f"{n}: &{n} [{','.join([f'*{p}'] * 9)}]"
            for p, n in zip("abcdef", "bcdefg", strict=True)
        ),
        "model: {dim: [*g,*g,*g,*g,*g,*g,*g,*g,*g]}",
    ]
)


@pytest.mark.timeout(240)
def test_an_alias_bomb_config_is_refused_at_once(
    trained: tuple[Path, Path], tmp_path: Path
) -> None:
    """A separate process, so that today's hang is a failure, not a stuck suite."""
    store, _ = trained
    bomb = tmp_path / "bomb.yaml"
    bomb.write_text(ALIAS_BOMB)
    assert len(ALIAS_BOMB) < 400
    args = ["run", "--store", store, "--out", tmp_path / "r", "--config", bomb, *FAST]
    try:
        proc = subprocess.run(
            [sys.executable, "-m", "trainer.cli", *map(str, args)],
            capture_output=True, text=True, timeout=90,
        )  # fmt: skip
    except subprocess.TimeoutExpired:
        pytest.fail("an alias bomb of 300 bytes kept the trainer busy for 90 s")
    assert proc.returncode == 2, proc.stderr
    assert "aliases (*name) are not allowed" in proc.stderr.strip(), proc.stderr
    assert not (tmp_path / "r").exists()


def test_ctrl_c_inside_omegaconf_stays_ctrl_c(monkeypatch: pytest.MonkeyPatch) -> None:
    """Ctrl-C while OmegaConf merges can surface as an OmegaConf error whose context is the
    KeyboardInterrupt (an alias bomb's merge once printed "unknown config key 'e'"); it
    must stay a KeyboardInterrupt (the CLI's "interrupted", exit 130), not a config error."""
    from omegaconf.errors import ConfigKeyError

    import trainer.config.settings as config

    def interrupted_merge(*_: object, **__: object) -> None:
        try:
            raise KeyboardInterrupt
        except KeyboardInterrupt:
            raise ConfigKeyError("'NoneType' object has no attribute '_invalidate_flags_cache'")  # noqa: B904 (the context is the point)

    monkeypatch.setattr(config.OmegaConf, "merge", interrupted_merge)
    with pytest.raises(KeyboardInterrupt):
        config.load_config("tiny")


def test_bounded_config_files_are_one_line(
    trained: tuple[Path, Path], tmp_path: Path, outside: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    store, _ = trained
    deep = tmp_path / "deep.yaml"
    deep.write_text("model: " + "[" * 100_000 + "]" * 100_000 + "\n")
    big = tmp_path / "big.yaml"
    big.write_text("epochs: 1\n" + "# padding\n" * 200_000)
    fifo = tmp_path / "fifo.yaml"
    os.mkfifo(fifo)
    folder = tmp_path / "folder.yaml"
    folder.mkdir()
    cases = {
        deep: "nested deeper than 32 levels",
        big: "over the limit of 1,048,576",
        fifo: "is a FIFO, not a regular file",
        folder: "is a directory, not a regular file",
    }
    for path, expected in cases.items():
        args = ["run", "--store", store, "--out", outside / "r", "--config", path, *FAST]
        err = _one_line(capsys, *args)
        assert expected in err and str(path) in err, err


@pytest.mark.parametrize(
    ("setting", "expected"),
    [
        ("seed=1000000000000000000000000000000", "seed must be in [0, 4294967295]"),
        ("seed=10**30", "could not be converted to Integer"),
        ("model.dim=-64", "model.dim must be in [8, 4096], not -64"),
        ("model.dim=65536", "model.dim must be in [8, 4096], not 65536"),
        ("batch_size=100000000", "batch_size must be in [1, 65536]"),
    ],
)
def test_settings_out_of_their_range_are_one_line(
    trained: tuple[Path, Path],
    outside: Path,
    capsys: pytest.CaptureFixture[str],
    setting: str,
    expected: str,
) -> None:
    store, _ = trained
    err = _one_line(capsys, "run", "--store", store, "--out", outside / "r", "--set", setting)
    assert expected in err, err


def test_interpolations_are_never_resolved(
    trained: tuple[Path, Path],
    tmp_path: Path,
    outside: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    store, best = trained
    monkeypatch.setenv("MSCCT_TEST_SECRET", "hunter2-secret")
    monkeypatch.setenv("MSCCT_TEST_NUMBER", "3")
    config = tmp_path / "env.yaml"
    config.write_text("epochs: ${oc.env:MSCCT_TEST_NUMBER}\n")
    runs = (
        ["--config", config],
        ["--set", "optimizer=${oc.env:MSCCT_TEST_SECRET}"],
        ["--set", "epochs=${oc.env:MSCCT_TEST_NUMBER}"],
    )
    for extra in runs:
        err = _one_line(capsys, "run", "--store", store, "--out", outside / "r", *extra)
        assert "never interpolated" in err and "hunter2" not in err, err
    # A checkpoint whose config holds one: refused as well.
    ckpt = torch.load(best, weights_only=True)
    ckpt["config"]["optimizer"] = "${oc.env:MSCCT_TEST_SECRET}"
    forged = tmp_path / "forged.pt"
    torch.save(ckpt, forged)
    err = _one_line(capsys, "eval", forged, "--store", store)
    assert "never interpolated" in err and "hunter2" not in err, err


# ----------------------------------------------------------------------------- checkpoints


def test_checkpoints_that_are_not_files_say_what_they_are(
    trained: tuple[Path, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    store, _ = trained
    fifo = tmp_path / "fifo.pt"
    os.mkfifo(fifo)
    folder = tmp_path / "folder.pt"
    folder.mkdir()
    zeros = tmp_path / "zeros.pt"
    with open(zeros, "wb") as sparse:  # 20 GB of zeros, sparse: no disk spent
        sparse.truncate(20 * 10**9)
    cases = {
        fifo: "is a FIFO, not a regular file",
        folder: "is a directory, not a regular file",
        zeros: "not a checkpoint: torch.save writes a zip archive",
    }
    for path, expected in cases.items():
        for command in (["eval", path, "--store", store], ["predict", path, tmp_path / "a.mp4"]):
            err = _one_line(capsys, *command)
            assert expected in err and "does not exist" not in err, err
            assert "could run code" not in err, err


def _forged(
    best: Path, where: Path, *, recipe: dict | None = None, model: dict | None = None
) -> Path:
    ckpt = torch.load(best, weights_only=True)
    ckpt["recipe"].update(recipe or {})
    ckpt["config"]["model"].update(model or {})
    torch.save(ckpt, where)
    return where


@pytest.mark.parametrize(
    ("recipe", "model", "expected"),
    [
        ({"crop_size": 40000}, None, "crop_size must be in [16, 1024], not 40000"),
        ({"fps": 20000}, None, "fps must be in [1, 240], not 20000"),
        (None, {"dim": 65536}, "model.dim must be in [8, 4096], not 65536"),
    ],
)
def test_checkpoint_values_out_of_range_are_refused_before_use(
    trained: tuple[Path, Path],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    recipe: dict | None,
    model: dict | None,
    expected: str,
) -> None:
    store, best = trained
    forged = _forged(best, tmp_path / "forged.pt", recipe=recipe, model=model)
    for command in (["eval", forged, "--store", store], ["predict", forged, tmp_path / "a.mp4"]):
        err = _one_line(capsys, *command)
        assert expected in err and str(forged) in err, err


def test_eval_never_reads_the_store_a_checkpoint_names(
    trained: tuple[Path, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The checkpoint records a training store elsewhere; ``--store`` lacks the split: the
    recorded store is not opened (a foreign checkpoint cannot steer reads)."""
    from store_copies import copy_store

    store, best = trained
    elsewhere = copy_store(store, tmp_path / "elsewhere")  # has the split
    target = copy_store(store, tmp_path / "target", with_splits=False)
    ckpt = torch.load(best, weights_only=True)
    ckpt["store"] = str(elsewhere)
    steered = tmp_path / "steered.pt"
    torch.save(ckpt, steered)
    err = _one_line(capsys, "eval", steered, "--store", target)
    assert "has no split 'default'" in err and "--split-store" in err, err
    # Named by the user, the same store is read.
    code, out, err = _cli(
        capsys, "eval", steered, "--store", target, "--split-store", elsewhere, "--json"
    )
    assert code == 0, err
    assert '"split_store"' in out and str(elsewhere) in out


def test_eval_out_on_a_folder_is_one_line_before_scoring(
    trained: tuple[Path, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    store, best = trained
    folder = tmp_path / "reports"
    folder.mkdir()
    err = _one_line(capsys, "eval", best, "--store", store, "--out", folder)
    assert "is a folder" in err, err
    err = _one_line(capsys, "eval", best, "--store", store, "--out", tmp_path / "no" / "r.json")
    assert "does not exist" in err, err
    assert list(folder.iterdir()) == []


def test_a_zip_that_is_a_checkpoint_still_loads(trained: tuple[Path, Path]) -> None:
    """The opener reads the archive through one descriptor, zip checks included."""
    from trainer.train.checkpoint import load_checkpoint

    _, best = trained
    assert zipfile.is_zipfile(best)
    assert load_checkpoint(best)["format"] == "mscct-checkpoint-1"
