"""``mscct-train``: train, evaluate and apply the MSCT detector.

    mscct-train run [--store S] [--split default] [--config tiny|paper|FILE] [--out DIR]
                    [--set key=value ...] [--resume]
    mscct-train eval CHECKPOINT [--store S] [--split default [--part test] | --all] [--force]
                     [--json] [--out REPORT.json]
    mscct-train predict CHECKPOINT VIDEO... [--json] [--plot OUT.png]
    mscct-train audit CHECKPOINT [--store S] [--split default] [--part test] [--seed N] [--json]

Several GPUs or processes: ``torchrun --standalone --nproc_per_node N -m trainer.cli run ...``
(see :mod:`trainer.train.distributed`). User errors (:class:`schemas.UserError`, the base of
``TrainerError``, ``StoreError`` ...) print one line on stderr and exit 2; anything else
keeps its traceback and exits 1.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING

import typer

from schemas.cli_errors import UserError
from schemas.containers import accepted_list
from schemas.remote import STORAGE_OPTION_HELP, use_storage_pairs

if TYPE_CHECKING:  # imported by the commands that need it: a fast --help
    from trainer.evaluate.inference import WindowScores

app = typer.Typer(
    add_completion=False,
    no_args_is_help=True,
    help="Train, evaluate and apply the MSCT audio-visual deepfake detector.",
)

PIPELINE_HINT = "predict needs the pipeline extras: pip install 'mscct[pipeline]'"


def _store(store: Path | None) -> Path:
    import schemas

    return store if store is not None else schemas.default_store_path()


def one_line(exc: BaseException) -> str:
    """The user-facing line of an error.

    An error raised in a DataLoader worker reaches this process re-raised by torch as
    the same type with a message of ``Caught X in DataLoader worker process N.`` and
    the worker's whole traceback; its last line is ``module.X: <the message>``.
    """
    text = str(exc).strip()
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    if len(lines) > 1 and lines[0].startswith("Caught ") and "DataLoader worker" in lines[0]:
        last = lines[-1]
        _, sep, message = last.partition(f"{type(exc).__name__}: ")
        return message if sep else last
    return " ".join(lines)


def _echo_err(message: str) -> None:
    typer.echo(f"error: {message}", err=True)


@app.command()
def run(
    store: Path | None = typer.Option(
        None, "--store", help="Feature store (default: $MSCCT_STORE, else ./mscct-store)."
    ),
    split: str = typer.Option("default", "--split", help="Split table in the store."),
    config: str | None = typer.Option(
        None, "--config", help="Preset (tiny, paper) or YAML file [default: tiny]."
    ),
    out: Path | None = typer.Option(
        None,
        "--out",
        help="Run directory (default: ./runs/<timestamp>): a new or empty folder, or with "
        "--resume a run's folder. A folder holding anything else, or one inside a store, "
        "is refused; a folder another run is writing into is refused (lock).",
    ),
    overrides: list[str] | None = typer.Option(
        None, "--set", help="Override a config key, e.g. --set model.dim=64 --set epochs=3."
    ),
    resume: bool = typer.Option(False, "--resume", help="Continue the run in --out exactly."),
    storage: list[str] | None = typer.Option(None, "--storage-option", help=STORAGE_OPTION_HELP),
) -> None:
    """Train on the split's train part, pick the best epoch on val, evaluate test once.

    Config files (at most 1 MiB, no YAML aliases, 32 levels deep at most), --set values
    and checkpoints' configs are data: every number must lie in its documented range
    (docs/training.md) and no value may hold '${' (no interpolation).

    Writes config.yaml, meta.json, metrics.jsonl, tb/, checkpoints/{last,best}.pt,
    report.json and plots/ (roc, confusion, tsne) into the run directory.
    """
    from trainer.config.settings import load_config
    from trainer.train.distributed import detect
    from trainer.train.run import train

    use_storage_pairs(storage)
    if resume and out is None:
        raise UserError("--resume needs the --out of the run to continue")
    if resume and config is None and not overrides:
        assert out is not None
        cfg = _config_of_run(out)
    else:
        cfg = load_config(config, overrides or [])
    main = detect().is_main
    # Without --out the loop creates a fresh runs/<timestamp> directory, atomically.
    report = train(
        cfg, _store(store), split, out, resume=resume, log=typer.echo if main else _quiet
    )
    if main:
        _print_report(report, Path(report["run_dir"]) if out is None else out)


def _print_report(report: dict, out: Path) -> None:
    """The metrics table of a finished run, and where its files are."""
    from rich.console import Console
    from rich.table import Table

    from schemas import CATEGORIES
    from trainer.evaluate.metrics import SCORES

    detector = report.get("detector", "msct")
    table = Table(title=f"{detector}, best epoch {report['best_epoch']} (chosen on val)")
    columns: tuple[str, ...] = (
        "part",
        "ACC",
        "bal ACC",
        "AUC",
        "AP",
        "EER",
        "audio AUC",
        "video AUC",
    )
    columns += tuple(f"{c} acc" for c in CATEGORIES)
    for column in columns:
        table.add_column(column, justify="left" if column == "part" else "right")
    for part in ("val", "test"):
        m = report[part]
        cells = [m[k] for k in SCORES]
        cells += [m["audio_auc"], m["video_auc"]]
        cells += [m["per_category_acc"][c] for c in CATEGORIES]
        table.add_row(part, *(_fmt(v) for v in cells))
    console = Console(width=max(160, Console().width))
    console.print(table)
    console.print(f"report: {out / 'report.json'}", markup=False, soft_wrap=True)
    console.print(
        f"plots:  {out / 'plots'}/{{roc,confusion,tsne}}.png", markup=False, soft_wrap=True
    )
    console.print(
        f"checkpoints: {out / 'checkpoints'}/{{best,last}}.pt  (TensorBoard: {out / 'tb'})"
    )


def _quiet(_: str) -> None:
    pass


def _config_of_run(out: Path):
    from trainer.config.settings import TrainConfig
    from trainer.train.checkpoint import load_checkpoint

    return TrainConfig.from_stored(load_checkpoint(out / "checkpoints" / "last.pt")["config"])


@app.command("eval")
def eval_(
    checkpoint: Path = typer.Argument(..., help="A checkpoint (e.g. runs/X/checkpoints/best.pt)."),
    store: Path | None = typer.Option(
        None, "--store", help="Feature store; may be another store of the same dataset."
    ),
    split: str | None = typer.Option(
        None,
        "--split",
        help="Split table in the store [default: default]; if it has none of that name, "
        "--split-store's.",
    ),
    split_store: Path | None = typer.Option(
        None,
        "--split-store",
        help="Store whose split to use when --store has none of that name (such as the "
        "training store); clips are matched by clip id. The training store's path a "
        "checkpoint records is never read.",
    ),
    part: str | None = typer.Option(
        None, "--part", help="Part of the split: train, val or test [default: test]."
    ),
    all_clips: bool = typer.Option(
        False, "--all", help="Score every ok, labelled clip of the store (no split needed)."
    ),
    force: bool = typer.Option(
        False, "--force", help="Score clips the checkpoint was trained on (refused by default)."
    ),
    aggregate: str | None = typer.Option(
        None,
        "--aggregate",
        help="How a clip's score is made from its windows': mean, max, logsumexp, or all "
        "(every one side by side) [default: the checkpoint's eval.aggregate].",
    ),
    as_json: bool = typer.Option(False, "--json", help="Print the metrics as JSON only."),
    out: Path | None = typer.Option(
        None,
        "--out",
        help="Also write the report (with the segment proposals) to this file (replaced if "
        "it exists; a folder is refused).",
    ),
    storage: list[str] | None = typer.Option(None, "--storage-option", help=STORAGE_OPTION_HELP),
) -> None:
    """Evaluate a checkpoint on one part of a split, or on a whole store (--all): ACC,
    balanced ACC, AUC, AP, EER, per category, per modality and per dataset; where the
    store has frame labels, frame AUC, segment proposals and AP@IoU / AR@k.

    The store may be another store, of the same dataset or another (cross-dataset
    evaluation), made with the checkpoint's audio features and crop size (a recipe
    mismatch is refused, naming the difference). With --split, clips are matched by
    clip id, and when the store has no split of that name the split of
    --split-store is used. Clips the checkpoint was trained on are refused unless
    --force.
    """
    from trainer.evaluate.inference import evaluate_checkpoint

    use_storage_pairs(storage)
    if all_clips and (split is not None or part is not None or split_store is not None):
        raise UserError(
            "--all scores the whole store: give it without --split, --part and --split-store"
        )
    if out is not None:
        _check_report_path(out)
    split, part = split or "default", part or "test"
    metrics = evaluate_checkpoint(
        checkpoint, _store(store), split, part, log=_stderr, force=force, all_clips=all_clips,
        split_store=split_store, aggregate=aggregate,
    )  # fmt: skip
    if out is not None:
        _write_report(out, metrics)
    if as_json:
        typer.echo(json.dumps(metrics, indent=2))
        return
    where = "all labelled clips" if all_clips else f"{split}/{part}"
    title = f"{checkpoint} on {where} ({metrics['n']} clips, {metrics['aggregate']} of windows)"
    _print_eval(metrics, title)
    if "by_aggregate" in metrics:
        _print_by_aggregate(metrics["by_aggregate"])


def _check_report_path(out: Path) -> None:
    """Refuse an ``eval --out`` that cannot take the report, before anything is scored."""
    import os

    if os.path.lexists(out) and not out.is_file():
        raise UserError(f"--out {out} is a folder or not a regular file; name a report file")
    if not out.parent.is_dir():
        raise UserError(f"--out {out}: folder {out.parent} does not exist")


def _write_report(out: Path, metrics: dict) -> None:
    """``eval --out``: the report, written atomically; a full disk is one line."""
    from trainer.train.runtime import write_json

    try:
        write_json(out, metrics)
    except OSError as exc:
        raise UserError(f"cannot write --out {out}: {exc.strerror or exc}") from None


def _print_eval(metrics: dict, title: str) -> None:
    """The metrics table of ``eval``, a line per dataset and the frame-level scores."""
    from rich.console import Console
    from rich.table import Table

    from trainer.evaluate.metrics import SCORES

    table = Table(title=title)
    table.add_column("metric")
    table.add_column("value", justify="right")
    for key in SCORES:
        table.add_row(key, _fmt(metrics[key]))
    for head in ("audio", "video"):
        for key in SCORES:
            table.add_row(f"{head}_{key}", _fmt(metrics[f"{head}_{key}"]))
    for cat, value in metrics["per_category_acc"].items():
        table.add_row(f"acc {cat}", _fmt(value))
    for name, scores in metrics["per_dataset"].items():
        cells = "  ".join(f"{k} {_fmt(scores[k])}" for k in ("acc", "auc", "eer"))
        table.add_row(f"dataset {name} ({scores['n']} clips)", cells)
    frames = metrics.get("frames")
    if frames:
        for key in ("auc", "audio_auc", "video_auc"):
            table.add_row(f"frame {key}", _fmt(frames[key]))
        for kind in ("ap", "ar"):
            for k, value in (frames[kind] or {}).items():
                table.add_row(f"{kind.upper()}@{k}", _fmt(value))
    Console(width=max(100, Console().width)).print(table)


def _print_by_aggregate(by_aggregate: dict[str, dict]) -> None:
    """``eval --aggregate all``: the main scores of every window-to-clip aggregation, a
    column each, from the same window scores."""
    from rich.console import Console
    from rich.table import Table

    from trainer.evaluate.metrics import SCORES

    table = Table(title="clip scores by window aggregation")
    table.add_column("metric")
    for name in by_aggregate:
        table.add_column(name, justify="right")
    for key in (*SCORES, *(f"{head}_{k}" for head in ("audio", "video") for k in SCORES)):
        table.add_row(key, *(_fmt(metrics[key]) for metrics in by_aggregate.values()))
    Console(width=max(100, Console().width)).print(table)


def _stderr(message: str) -> None:
    typer.echo(message, err=True)


def _fmt(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.4f}"


@app.command()
def predict(
    checkpoint: Path = typer.Argument(..., help="A checkpoint (e.g. runs/X/checkpoints/best.pt)."),
    videos: list[Path] = typer.Argument(..., help=f"Raw video files ({accepted_list()})."),
    as_json: bool = typer.Option(False, "--json", help="Print a JSON list instead of a table."),
    plot: Path | None = typer.Option(
        None,
        "--plot",
        metavar="OUT.png",
        help="Also draw the fake probability of the audio, video and overall heads over "
        "time, one value per scored window (the clip's score is their mean); one VIDEO only.",
    ),
) -> None:
    """Fake probabilities (audio, video, overall) of raw video files.

    Runs the pipeline's per-clip preprocessing (ffmpeg, dlib face crops, audio
    features) in this process with the recipe the checkpoint was trained on.
    """
    if plot is not None and len(videos) != 1:
        raise UserError(f"--plot draws one video; {len(videos)} were given")
    if plot is not None:
        from schemas.output_targets import check_file_target

        check_file_target(plot, "--plot")  # before the model runs
    try:
        from pipeline.clip.transform import preprocess_clip
        from pipeline.errors import ClipError
    except ImportError:
        raise UserError(PIPELINE_HINT) from None
    import schemas
    from trainer.data.streams import clip_stream
    from trainer.evaluate.inference import model_from_checkpoint, window_scores

    model, ckpt, cfg = model_from_checkpoint(checkpoint)
    recipe = schemas.Recipe.from_dict(ckpt["recipe"])
    visual = cfg.model.visual_input  # a mouth model's recipe has the mouth stream: made below
    rows = []
    for path in videos:
        row: dict = {"file": str(path)}
        try:
            clip = preprocess_clip(path, recipe)
        except ClipError as exc:
            row.update(error=str(exc), audio_fake=None, video_fake=None, fake=None)
        else:
            stream = clip_stream(clip, visual)  # frames without a face are masked as in eval
            scores = window_scores(model, cfg, stream, clip.audio, clip.face_valid)
            p = scores.clip(cfg.eval.aggregate)
            row.update(audio_fake=p["audio"], video_fake=p["video"], fake=p["overall"], error=None)
            if plot is not None:
                _plot_windows(plot, path, scores, recipe.fps)
        rows.append(row)
    if as_json:
        typer.echo(json.dumps(rows, indent=2))
    else:
        from rich.console import Console
        from rich.table import Table

        table = Table(title=f"fake probabilities ({checkpoint})")
        for column in ("file", "audio fake", "video fake", "fake"):
            table.add_column(column, justify="left" if column == "file" else "right")
        for row in rows:
            if row["error"]:
                table.add_row(row["file"], "-", "-", f"error: {row['error']}")
            else:
                table.add_row(
                    row["file"], _fmt(row["audio_fake"]), _fmt(row["video_fake"]), _fmt(row["fake"])
                )
        Console(width=200).print(table)
    if any(r["error"] for r in rows):
        raise typer.Exit(1)


@app.command()
def audit(
    checkpoint: Path = typer.Argument(..., help="A checkpoint (e.g. runs/X/checkpoints/best.pt)."),
    store: Path | None = typer.Option(None, "--store", help="Feature store."),
    split: str = typer.Option("default", "--split", help="Split table in the store."),
    part: str = typer.Option("test", "--part", help="Part of the split: train, val or test."),
    seed: int = typer.Option(0, "--seed", help="Seed of the audio-swap pairs and the jitter."),
    as_json: bool = typer.Option(False, "--json", help="Print the report as JSON only."),
) -> None:
    """Shortcut audit: AUC, balanced ACC and verdict flips of each head on the same clips
    with swapped, shifted or silenced audio, a frozen video, leading silence cut or added,
    and a frame jitter (docs/audit.md)."""
    from trainer.audit.report import print_audit
    from trainer.audit.run import audit_checkpoint

    report = audit_checkpoint(checkpoint, _store(store), split, part, seed, log=_stderr)
    if as_json:
        typer.echo(json.dumps(report, indent=2))
    else:
        print_audit(report, f"{checkpoint} on {split}/{part} ({report['n']} clips)")


def _plot_windows(out: Path, video: Path, scores: WindowScores, fps: int) -> None:
    """``predict --plot``: the per-window scores of ``video`` drawn into ``out``."""
    from trainer.evaluate.plots import plot_window_scores

    title = f"{video.name}: {len(scores.starts)} windows of {scores.window} frames"
    plot_window_scores(
        out, scores.starts, scores.window, scores.num_frames, scores.prob, fps=fps, title=title
    )
    typer.echo(f"wrote {out}", err=True)


def main(argv: list[str] | None = None) -> None:
    """Console entry point: user errors become one line on stderr and exit code 2.

    Also where a trainer process starts: the descriptor limit is raised here, once,
    before any command reads the store or starts a DataLoader worker (they inherit it).
    """
    from schemas.cli_errors import run_app
    from trainer.data.reader import raise_fd_limit

    raise_fd_limit()
    run_app(app, argv, _echo_err, line=one_line)


if __name__ == "__main__":
    main()
