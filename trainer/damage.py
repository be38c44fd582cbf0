"""The one error for a committed clip whose stored tensors are not what was committed."""

from __future__ import annotations

from pathlib import Path

import schemas
from schemas.layout import clip_dir


def damaged(store: Path | str, clip_id: str, problem: str) -> schemas.StoreError:
    """The error for a committed clip whose tensors are not what was committed.

    Rerunning ``mscct-pipeline split`` would not help (the split names the clip, the
    clip is broken) and a plain ``ingest`` rerun skips committed clips; removing the
    clip's folder makes the rerun redo it, with the same id, so the split still holds.
    """
    return schemas.StoreError(
        f"clip {clip_id} of store {store} is damaged: {problem}; remove "
        f"{clip_dir(store, clip_id)} and rerun `mscct-pipeline ingest` "
        f"on the dataset with --store {store} to redo it"
    )
