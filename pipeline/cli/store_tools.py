"""``mscct-pipeline repair`` and ``compact``: upkeep of a store's manifest."""

from __future__ import annotations

from pipeline.cli.common import StoreOption, _store_path, app, err, out


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
