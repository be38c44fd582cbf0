"""Refuse, in one line naming the fix, a store or window a detector cannot read.

A detector declares what it reads (:class:`trainer.model.Reads`: visual streams, audio
features, crop size, window lengths); training and evaluation check the store's recipe
against it before anything is built, so a mismatch is named at once rather than found
as a shape error, or worse, as a model silently trained on the wrong features.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import schemas
from trainer.config.settings import TrainerError
from trainer.data.streams import require_streams
from trainer.model import detector_reads

INGEST = "ingest the dataset into a new store with `mscct-pipeline ingest DATASET --store NEW_STORE"


def check_detector_store(
    model: Any, recipe: schemas.Recipe, store: Path | str, window: int | None = None
) -> None:
    """Raise :class:`TrainerError` when ``store`` (of ``recipe``) or ``window`` does not
    give what the detector of ``model`` (its config) reads."""
    reads, name = detector_reads(model), f"model.name={model.name}"
    if reads.features is not None and recipe.features != reads.features:
        raise TrainerError(
            f"store {store} holds {recipe.features} audio features but {name} reads "
            f"{reads.features}; {INGEST} --audio-features {reads.features}`"
        )
    if reads.crop_size is not None and recipe.crop_size != reads.crop_size:
        raise TrainerError(
            f"store {store} holds {recipe.crop_size}-pixel face crops but {name} reads "
            f"{reads.crop_size}; {INGEST} --crop-size {reads.crop_size}`"
        )
    require_streams(recipe, dict.fromkeys(reads.streams, name), store)
    if window is not None and reads.window is not None:
        low, high = reads.window
        if not low <= window <= high:
            raise TrainerError(
                f"window {window} is outside the {low}-{high} frames {name} reads; "
                f"train with --set window=N for N in that range"
            )
