"""What every ``mscct-pipeline`` command shares: the typer app, the consoles, the
``--store`` option, one-line error printing, the progress bar and the summary table."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.table import Table
from rich.text import Text

import schemas

app = typer.Typer(
    name="mscct-pipeline",
    help=(
        "Turn a FakeAVCeleb tree into a feature store (Zarr tensors + Arrow manifest) and make "
        "balanced, identity-disjoint splits. Try it without the real data: "
        "`mscct-pipeline synth demo/` then `mscct-pipeline ingest demo/`."
    ),
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
out = Console()
err = Console(stderr=True)

StoreOption = Annotated[
    Path | None,
    typer.Option(
        "--store",
        help="Feature store directory. Default: $MSCCT_STORE, else ./mscct-store.",
        show_default=False,
    ),
]


def _print_error(message: str) -> None:
    # One line whatever the width (no wrapping), and the message verbatim: a path
    # may hold brackets that rich would take for markup.
    err.print(Text.assemble(("error:", "bold red"), " ", message), highlight=False, soft_wrap=True)


def _store_path(store: Path | None) -> Path:
    return store if store is not None else schemas.default_store_path()


def _progress(*extra: TextColumn) -> Progress:
    return Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        *extra,
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        console=err,
        transient=False,
    )


def _summary_table(manifest: Any, title: str) -> Table:
    from pipeline.ingest.summary import failure_reasons, summarize

    table = Table(title=title)
    for column in ("category", "ok", "failed", "frames", "mean face rate"):
        table.add_column(column, justify="left" if column == "category" else "right")
    for name, row in summarize(manifest).items():
        rate = row.mean_face_rate
        table.add_row(
            name,
            str(row.ok),
            str(row.failed),
            str(row.frames),
            "-" if math.isnan(rate) else f"{rate:.2f}",
            style="bold" if name == "total" else None,
        )
    reasons = failure_reasons(manifest)
    if reasons:
        table.caption = "failures: " + "; ".join(f"{n}x {r}" for r, n in reasons.most_common(5))
    return table
