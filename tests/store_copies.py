"""Copies of a feature store under another recipe (layout, trim flag), through the store contract."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np

import schemas


def copy_store(src: Path, dst: Path, *, with_splits: bool = True, **recipe_changes: object) -> Path:
    """Write every clip of ``src`` into a new store ``dst`` whose recipe is ``src``'s with
    ``recipe_changes`` (e.g. ``layout="zstd"``): same clip ids and tensors, as another
    ingest of the same dataset would give. Splits are copied unless ``with_splits=False``."""
    recipe = schemas.Recipe.from_dict(
        {**schemas.open_store(src).recipe.to_dict(), **recipe_changes}
    )
    schemas.create_store(dst, recipe)
    rows = schemas.read_manifest(src).to_pylist()
    for row in rows:
        row["recipe_hash"] = recipe.hash()
        video, audio = (np.array(a) for a in schemas.open_clip(src, row["clip_id"]))
        schemas.write_clip(dst, row["clip_id"], video, audio, row, recipe)
    schemas.write_manifest(dst, schemas.rows_to_table(rows, schemas.MANIFEST_SCHEMA))
    if with_splits:
        shutil.copytree(src / "splits", dst / "splits", dirs_exist_ok=True)
    return dst
