"""``mscct-pipeline repair`` and ``compact``: upkeep of a store's manifest."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from pipeline.cli.common import StoreOption, _store_path, app, err, out


@app.command()
def repair(store: StoreOption = None) -> None:
    """Rebuild the store's manifest from the clips committed in clips/ (or shards/).

    Every committed clip carries its own manifest row, so a deleted or damaged
    manifest loses nothing but failed rows (a rerun of ingest retries those). The
    rebuilt manifest is one compacted manifest.parquet (no fragments). A store whose
    .lock, folders, clip folders or fragments are links, FIFOs or other things a store
    never writes is refused in one line naming the entry: nothing is read or swept
    through it (remove it, then run repair again).
    """
    from pipeline.ingest.manifest_book import repair_manifest

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
    from pipeline.ingest.manifest_book import compact_store

    path = _store_path(store)
    folded = compact_store(path)
    what = f"{folded} fragments folded into" if folded else "nothing to fold in"
    out.print(f"manifest of {path}: {what} manifest.parquet", markup=False, soft_wrap=True)


@app.command()
def convert(
    store: StoreOption = None,
    to: Annotated[str, typer.Option("--to", help="The format to convert to: packed.")] = "packed",
    out_store: Annotated[
        Path | None,
        typer.Option(
            "--out",
            help="Write the packed store here (a new store) and leave --store as it is. "
            "Default: convert --store in place.",
        ),
    ] = None,
    shard_bytes: Annotated[
        int | None,
        typer.Option(
            help="Shard size in bytes of the packed store (default 1 GiB).", show_default=False
        ),
    ] = None,
) -> None:
    """Rewrite a store's clips into shards: a packed store (format 4).

    Resumable: a rerun after a kill seals the shards left open and goes on with the
    clips its manifest does not place yet. In place, the store reads as before until
    the last step turns it into format 4 and deletes its clip folders.
    """
    from pipeline.ingest.convert import convert_store

    if to != "packed":
        raise typer.BadParameter(f"--to must be packed, not {to!r}")
    path = _store_path(store)
    result = convert_store(path, out_store, shard_bytes=shard_bytes)
    out.print(
        f"store {result.target} is packed: {result.converted} clips converted now, "
        f"{result.already} before, {result.shards} shards",
        markup=False,
        soft_wrap=True,
    )
