"""One error model for both CLIs: a ``schemas.UserError`` is one line and exit 2; anything
else (a bug: a ValueError from numpy or pyarrow included) keeps its traceback and exits 1."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from cli_helpers import call_main

import schemas

REPO = Path(__file__).resolve().parents[1]


def _one_line(err: str) -> str:
    lines = [line for line in err.strip().splitlines() if line.strip()]
    assert len(lines) == 1, err
    assert lines[0].startswith("error: "), err
    assert "Traceback" not in err
    return lines[0]


def _run_patched(
    module: str, target: str, exc: str, args: list[str]
) -> subprocess.CompletedProcess:
    """Run ``module.main(args)`` in a fresh interpreter with ``target`` raising ``exc``:
    an error from deep inside a command, as a bug in a library would raise it."""
    owner, name = target.rsplit(".", 1)
    code = textwrap.dedent(
        f"""
        import importlib, sys
        import schemas

        def boom(*args, **kwargs):
            raise {exc}

        setattr(importlib.import_module({owner!r}), {name!r}, boom)
        from {module} import main
        main({args!r})
        """
    )
    return subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=300, cwd=REPO
    )


# --------------------------------------------------------------------------- the classes


def test_every_user_facing_error_class_is_a_user_error() -> None:
    from pipeline.datasets.common import ScanError
    from pipeline.datasets.records import BadRecord
    from pipeline.datasets.segments import BadSegments
    from pipeline.splits.formats import SplitFileError
    from pipeline.splits.params import SplitError
    from schemas.safe_files import RefusedFile
    from trainer import cli as train_cli
    from trainer.config.settings import TrainerError

    kinds = (
        schemas.StoreError, schemas.SchemaError, ScanError, SplitError, SplitFileError,
        BadRecord, BadSegments, RefusedFile, TrainerError, train_cli.UserError,
    )  # fmt: skip
    for kind in kinds:
        assert issubclass(kind, schemas.UserError), kind
    assert train_cli.UserError is schemas.UserError
    # Callers that caught them by their old bases keep working.
    assert issubclass(schemas.StoreError, RuntimeError) and issubclass(TrainerError, RuntimeError)
    assert issubclass(schemas.UserError, ValueError)


def test_recipe_and_synth_argument_checks_are_user_errors(tmp_path: Path) -> None:
    from pipeline.synth.segmented_writer import check_segmented_args

    with pytest.raises(schemas.UserError, match="crop_size"):
        schemas.Recipe(crop_size=8)
    with pytest.raises(schemas.UserError, match="workers"):
        check_segmented_args(tmp_path / "x", "lavdf", 1, 3, 0)


# --------------------------------------------------------------------------- mscct-pipeline


def test_pipeline_user_errors_are_one_line_exit_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from pipeline.cli import main

    capsys.readouterr()
    code = call_main(main, ["split", "--store", str(tmp_path / "nothing")])  # a StoreError
    assert code == 2
    assert _one_line(capsys.readouterr().err).startswith("error: no store at ")
    code = call_main(main, ["synth", str(tmp_path / "d"), "--format", "dfdc"])  # a UserError
    assert code == 2
    assert "--format must be one of" in _one_line(capsys.readouterr().err)


def test_pipeline_internal_value_error_keeps_its_traceback(tmp_path: Path) -> None:
    # A ValueError is not a user error: before, every ValueError printed one line, exit 2.
    proc = _run_patched(
        "pipeline.cli",
        "pipeline.ingest.manifest_book.repair_manifest",
        "ValueError('operands could not be broadcast together')",
        ["repair", "--store", str(tmp_path / "s")],
    )
    assert proc.returncode == 1, proc.stderr
    assert "Traceback" in proc.stderr
    assert "ValueError: operands could not be broadcast together" in proc.stderr
    assert "error: operands" not in proc.stderr


def test_pipeline_user_error_from_inside_a_command_is_one_line(tmp_path: Path) -> None:
    proc = _run_patched(
        "pipeline.cli",
        "pipeline.ingest.manifest_book.repair_manifest",
        "schemas.UserError('the store is on fire')",
        ["repair", "--store", str(tmp_path / "s")],
    )
    assert proc.returncode == 2, proc.stderr
    assert _one_line(proc.stderr) == "error: the store is on fire"


# --------------------------------------------------------------------------- mscct-train


def test_trainer_user_errors_are_one_line_exit_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from trainer.cli import main

    capsys.readouterr()
    code = call_main(main, ["eval", str(tmp_path / "c.pt"), "--all", "--part", "val"])
    assert code == 2
    assert "--all scores the whole store" in _one_line(capsys.readouterr().err)
    code = call_main(main, ["run", "--config", "no-such-preset", "--out", str(tmp_path / "r")])
    assert code == 2  # a TrainerError
    assert "no-such-preset" in _one_line(capsys.readouterr().err)


def test_trainer_internal_value_error_keeps_its_traceback(tmp_path: Path) -> None:
    proc = _run_patched(
        "trainer.cli",
        "trainer.config.settings.load_config",
        "ValueError('operands could not be broadcast together')",
        ["run", "--store", str(tmp_path / "s"), "--out", str(tmp_path / "r")],
    )
    assert proc.returncode == 1, proc.stderr
    assert "Traceback" in proc.stderr and "operands could not be broadcast" in proc.stderr
    assert "error: operands" not in proc.stderr


def test_trainer_reports_any_user_error_in_one_line(tmp_path: Path) -> None:
    # Before, the trainer listed its own kinds: a schemas.UserError from a shared module
    # (a recipe check, a refused file) came out as a traceback.
    proc = _run_patched(
        "trainer.cli",
        "trainer.config.settings.load_config",
        "schemas.UserError('crop_size must be >= 16')",
        ["run", "--store", str(tmp_path / "s"), "--out", str(tmp_path / "r")],
    )
    assert proc.returncode == 2, proc.stderr
    assert _one_line(proc.stderr) == "error: crop_size must be >= 16"
