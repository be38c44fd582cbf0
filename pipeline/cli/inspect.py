"""``mscct-pipeline inspect`` (a store's summary, or pictures of it) and ``show`` (one clip)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

import schemas
from pipeline.cli.common import StoreOption, _store_path, _summary_table, app, err, out


@app.command()
def inspect(
    store: StoreOption = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print as JSON.")] = False,
    sheet: Annotated[
        Path | None,
        typer.Option(
            "--sheet",
            metavar="OUT.png",
            help="Write a contact sheet instead of the summary: one row per ok clip, grouped "
            "by category, 10 evenly spaced face crops (and the middle mouth crop where "
            "stored), labelled with clip id, face detection rate and flags. OUT.png is a new "
            "path or a file it replaces, outside the store.",
        ),
    ] = None,
    html_dir: Annotated[
        Path | None,
        typer.Option(
            "--html",
            metavar="DIR",
            help="Write a static report into DIR instead of the summary: index.html (open it "
            "in a browser, no server) with the counts per category, failures with reasons, "
            "flagged clips, histograms and two contact sheets (a sample, the worst clips). "
            "DIR must be new, empty or a previous report (recognised by the "
            ".mscct-report.json it writes, whose files it replaces); a folder holding other "
            "files, or one inside a store, is refused.",
        ),
    ] = None,
    per_category: Annotated[
        int | None,
        typer.Option(
            help="Clips per category on a contact sheet [--sheet default: all; --html: 8]."
        ),
    ] = None,
    sort: Annotated[
        str,
        typer.Option(
            help="Which clips a --sheet shows first: random (seeded sample), worst (lowest "
            "face detection rate first, then most landmark jitter where stored) or id."
        ),
    ] = "random",
    seed: Annotated[int, typer.Option(help="Seed of --sort random: same seed, same clips.")] = 0,
) -> None:
    """Summarise an existing store: recipe, clips per category, failures, splits.

    With --sheet or --html, draw pictures of the stored crops instead (see
    `mscct-pipeline show` for one clip over time).
    """
    if sheet is not None or html_dir is not None:
        _write_pictures(_store_path(store), sheet, html_dir, per_category, sort, seed)
        return
    from dataclasses import asdict

    from pipeline.ingest.summary import failure_reasons, quality_lines, quality_summary, summarize

    path = _store_path(store)
    info = schemas.open_store(path)
    manifest = schemas.read_manifest(path)
    if as_json:
        data = {
            "store": str(path),
            "format_version": info.format_version,
            "software_version": info.software_version,
            "recipe": info.recipe.to_dict(),
            "fingerprint": schemas.store_fingerprint(path),
            "categories": {k: asdict(v) for k, v in summarize(manifest).items()},
            "failures": dict(failure_reasons(manifest)),
            "quality": quality_summary(manifest),
            "splits": schemas.list_splits(path),
        }
        out.print_json(json.dumps(data))
        return
    out.print(
        f"store {path} (format {info.format_version}, written by mscct {info.software_version})"
    )
    out.print("recipe: " + ", ".join(f"{k}={v}" for k, v in info.recipe.to_dict().items()))
    if info.recipe.pipeline_version < schemas.PIPELINE_VERSION:
        err.print(
            f"note: this store was made by pipeline_version {info.recipe.pipeline_version}; "
            f"this software computes version {schemas.PIPELINE_VERSION}, so `ingest` into it "
            "needs --overwrite (its clips would be recomputed)",
            highlight=False,
            soft_wrap=True,
        )
    out.print(_summary_table(manifest, title="clips"))
    for line in quality_lines(quality_summary(manifest)):
        out.print(line, highlight=False, soft_wrap=True)
    splits = schemas.list_splits(path)
    out.print(f"splits: {', '.join(splits) if splits else 'none (run `mscct-pipeline split`)'}")


def _write_pictures(
    path: Path,
    sheet: Path | None,
    html_dir: Path | None,
    per_category: int | None,
    sort: str,
    seed: int,
) -> None:
    """``inspect --sheet`` / ``--html``: check where they go, draw, then say where the
    files are."""
    from pipeline.report.clips import choose, manifest_rows
    from pipeline.report.html_report import write_report
    from pipeline.report.sheet import write_sheet
    from schemas.output_targets import check_file_target, check_report_folder

    if sheet is not None:
        check_file_target(sheet, "--sheet")
    if html_dir is not None:
        check_report_folder(html_dir, "--html")
    schemas.open_store(path)
    rows = manifest_rows(path)
    if sheet is not None:
        groups = choose(rows, per_category, sort, seed)
        if not groups:
            raise schemas.UserError(f"store {path} has no ok clips to draw")
        totals = {c: len(m) for c, m in choose(rows, None, "id").items()}
        title = f"{path.name}: {sum(map(len, groups.values()))} clips, sort {sort}"
        width, height = write_sheet(path, groups, sheet, title=title, totals=totals)
        out.print(f"wrote {sheet} ({width}x{height})", markup=False, soft_wrap=True)
    if html_dir is not None:
        choose(rows, per_category, sort, seed)  # the same checks of the options as --sheet
        index = write_report(path, html_dir, per_category=per_category or 8, seed=seed)
        out.print(f"wrote {index}", markup=False, soft_wrap=True)


@app.command()
def show(
    clip_id: Annotated[str, typer.Argument(help="A clip id of the store (see its manifest).")],
    out_png: Annotated[
        Path,
        typer.Option(
            "--out",
            metavar="OUT.png",
            help="Where to write the picture (1200x800 PNG): a new path or a file it replaces, "
            "outside the store.",
        ),
    ],
    store: StoreOption = None,
) -> None:
    """Draw one clip over time: face crops (landmarks on them where stored), mouth crops
    where stored, a log-mel picture of the audio read from the stored features and its
    loudness with the clip's speech_fraction, strips of the frames with a face, where a
    shot may start and the head's yaw (where stored), the face-box track (x, y, size)
    where stored, and the clip's labels and flags, all on one time axis.
    """
    from pipeline.report.clip_view import write_clip_view
    from pipeline.report.clips import manifest_rows, row_of
    from schemas.output_targets import check_file_target

    check_file_target(out_png, "--out")
    path = _store_path(store)
    info = schemas.open_store(path)
    row = row_of(manifest_rows(path), clip_id)
    width, height = write_clip_view(path, row, out_png, info.recipe)
    out.print(f"wrote {out_png} ({width}x{height})", markup=False, soft_wrap=True)
