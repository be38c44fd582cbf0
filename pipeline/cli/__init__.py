"""``mscct-pipeline``: make a synthetic dataset, ingest a FakeAVCeleb tree, split it.

Exit status: 0 when the command did its job (an ingest that completed with
some failed clips included: they are in the manifest); 1 when an ingest could
process nothing (no clips found, or every clip failed); 2 for a user error
(bad arguments, missing or incompatible store: a :class:`schemas.UserError`),
reported in one line; any other error is a bug and keeps its traceback (exit 1).

One module per command or pair: ``synth``, ``ingest``, ``inspect`` (with ``show``),
``store_tools`` (``repair``, ``compact``) and ``split``; ``common`` holds the app, the
``--store`` option and what several commands print.
"""

from __future__ import annotations

from schemas.cli_errors import run_app

# Each command module registers its commands on ``app`` when imported: this order is
# the order of ``mscct-pipeline --help``.
from pipeline.cli import synth as _synth_commands  # isort: skip
from pipeline.cli import ingest as _ingest_commands  # isort: skip
from pipeline.cli import inspect as _inspect_commands  # isort: skip
from pipeline.cli import store_tools as _store_commands  # isort: skip
from pipeline.cli import split as _split_commands  # isort: skip
from pipeline.cli.common import (
    StoreOption,
    _print_error,
    _progress,
    _store_path,
    _summary_table,
    app,
    err,
    out,
)
from pipeline.cli.ingest import (
    _ingest_with_progress,
    _parse_categories,
    _print_scan_notes,
)
from pipeline.cli.inspect import _write_pictures
from pipeline.cli.split import _given_split
from pipeline.cli.synth import _synth_with_progress
from pipeline.ingest.recipe import resolve_decoder as _resolve_decoder
from pipeline.ingest.recipe import resolve_landmarks as _resolve_landmarks

__all__ = [
    "StoreOption",
    "_given_split",
    "_ingest_with_progress",
    "_parse_categories",
    "_print_error",
    "_print_scan_notes",
    "_progress",
    "_resolve_decoder",
    "_resolve_landmarks",
    "_store_path",
    "_summary_table",
    "_synth_with_progress",
    "_write_pictures",
    "app",
    "err",
    "main",
    "out",
]

del _synth_commands, _ingest_commands, _inspect_commands, _store_commands, _split_commands


def main(argv: list[str] | None = None) -> None:
    """Console entry point: a :class:`schemas.UserError` becomes one line on stderr and
    exit 2; any other exception keeps its traceback (exit 1)."""
    run_app(app, argv, _print_error)
