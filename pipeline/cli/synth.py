"""``mscct-pipeline synth``: write a small synthetic dataset."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any, TypeVar

import typer

import schemas
from pipeline.cli.common import _progress, app, out

T = TypeVar("T")


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
            help="fakeavceleb, lavdf or avdeepfake1m: the folder tree and metadata to write.",
        ),
    ] = "fakeavceleb",
) -> None:
    """Write a small synthetic dataset in the exact folder tree of FakeAVCeleb v1.2, LAV-DF or AV-Deepfake1M.

    Real H.264/AAC media: a moving human face with synthetic speech, and a genuine
    cue per category (another voice for fake audio, a manipulated mouth region for
    fake video), plus the dataset's metadata in its official format. LAV-DF and
    AV-Deepfake1M clips are partial fakes (fake segments inside real clips) in
    train / val / test; --per-category counts source clips per split there.
    """
    from pipeline.synth import FORMATS, make_dataset, make_segmented
    from pipeline.synth.segmented_writer import check_segmented_args

    if dataset_format not in FORMATS:
        raise schemas.UserError(
            f"--format must be one of {', '.join(FORMATS)}, got {dataset_format!r}"
        )
    if dataset_format != "fakeavceleb":
        if with_defects or difficulty != "easy":
            raise schemas.UserError(
                "--with-defects and --difficulty apply to --format fakeavceleb only"
            )
        check_segmented_args(out_dir, dataset_format, per_category, identities, workers)
        written = _synth_with_progress(
            make_segmented,
            out_dir,
            format=dataset_format,
            per_category=per_category,
            identities=identities,
            seed=seed,
            workers=workers,
        )
        out.print(f"wrote {written.root}", markup=False, soft_wrap=True)
        for split, counts in written.counts.items():
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


def _synth_with_progress(make: Callable[..., T], out_dir: Path, **options: Any) -> T:
    """``make(out_dir, **options)`` under a progress bar of the clips rendered."""
    with _progress() as progress:
        task = progress.add_task("synth", total=None)
        return make(
            out_dir,
            **options,
            progress=lambda done, total: progress.update(task, completed=done, total=total),
        )
