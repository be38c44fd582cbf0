"""``mscct-pipeline split``: make, import or take a dataset's train/val/test split."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

import schemas
from pipeline.cli.common import StoreOption, _store_path, app, out


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
    leave_out_little_speech: Annotated[
        bool,
        typer.Option(
            "--leave-out-little-speech",
            help="Leave out clips flagged little_speech (few frames sound like speech); "
            "kept by default.",
        ),
    ] = False,
    leave_out_low_frontal_rate: Annotated[
        bool,
        typer.Option(
            "--leave-out-low-frontal-rate",
            help="Leave out clips flagged low_frontal_rate (head mostly turned or badly "
            "fitted); kept by default.",
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
    says how many) unless ``--keep-low-face-rate``; clips flagged ``little_speech`` only
    with ``--leave-out-little-speech``, ``low_frontal_rate`` only with
    ``--leave-out-low-frontal-rate``. ``--from-file`` imports another
    project's split and ``--official`` takes the dataset's own; their parts are used
    as given (no balancing, ratios or folds).
    """
    from pipeline.splits.params import SplitParams, parse_ratios
    from pipeline.splits.report import render_counts, split_summary
    from pipeline.splits.split import make_split

    path = _store_path(store)
    if from_file or official:
        table, recorded = _given_split(
            path, from_file or [], file_format, official, keep_low_face_rate,
            made=(
                balance, strict_identities, ratios, per_category, folds, fold,
                leave_out_little_speech, leave_out_low_frontal_rate,
            ),
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
            leave_out_little_speech=leave_out_little_speech,
            leave_out_low_frontal_rate=leave_out_low_frontal_rate,
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
    from pipeline.splits.formats import read_split_file
    from pipeline.splits.imports import import_split, official_split
    from pipeline.splits.report import split_summary

    given = "--official" if official else "--from-file"
    if from_file and official:
        raise schemas.UserError("--from-file and --official each give the parts; choose one")
    names = (
        "--balance", "--strict-identities", "--ratios", "--per-category", "--folds", "--fold",
        "--leave-out-little-speech", "--leave-out-low-frontal-rate",
    )  # fmt: skip
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
