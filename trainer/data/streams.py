"""The visual stream the model reads: RGB face crops or grayscale mouth crops.

``model.visual_input`` chooses it. ``face`` reads the clip's ``video`` array,
``(T, S, S, 3)`` uint8. ``mouth`` reads its ``mouth`` array, ``(T, 96, 96)`` uint8
grayscale crops aligned by the landmarks (stored by ``mscct-pipeline ingest
--streams face,mouth``), and gives the model the centre ``88 × 88`` of each, as
AV-HuBERT trains and evaluates lip models: in training the 88 × 88 window moves by up
to :data:`MOUTH_MARGIN` pixels inside the 96 × 96 crop (AV-HuBERT's random crop;
real pixels, no reflected borders), the same offset for every frame of a window,
and is flipped left-right with the face stream's probability. Evaluation and
prediction take the centre.

Only the stream differs: windows, masks, audio and labels are the same for both.
Training items can carry both streams at once (``data.streams: [face, mouth]``, keys
``"video"`` and ``"mouth"``), cut from the same window with the same draws; the model
reads the one its ``visual_input`` names (:data:`STREAM_ARRAYS`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

import schemas
from schemas.streams import MOUTH_SIZE, STREAM_PATHS
from trainer.config.settings import TrainerError

#: A stream -> the clip array it reads (``schemas.open_stream``'s names, the table's
#: paths: ``face`` -> ``video``), which is also its key in a dataset item and a batch.
STREAM_ARRAYS: dict[str, str] = STREAM_PATHS
MOUTH_CROP = 88  # side of the mouth crop the model sees (AV-HuBERT's)
MOUTH_MARGIN = (MOUTH_SIZE - MOUTH_CROP) // 2  # 4: the centre crop's offset, the largest shift


#: A setting that reads a stream -> the value of it that reads the face stream instead,
#: offered beside the new store a missing stream needs.
FACE_INSTEAD = {
    "data.streams": "data.streams=[face]",
    "model.visual_input": "model.visual_input=face",
}


def require_streams(recipe: schemas.Recipe, readers: Mapping[str, str], store: Path | str) -> None:
    """Refuse, in one line naming the fix, a store that lacks a stream to be read.

    The one check of a store's streams: a run, evaluation, the dataset and a detector's
    reads all come here. ``readers`` maps each stream read to the setting that reads it
    (``data.streams``, ``model.visual_input=mouth``, ``model.name=mrdf_ce``), which the
    message names.
    """
    for name, reader in readers.items():
        if name in recipe.streams:
            continue
        instead = FACE_INSTEAD.get(reader.split("=")[0])
        raise TrainerError(
            f"store {store} has no {name} stream, which {reader} reads; "
            "ingest the dataset into a new store with `mscct-pipeline ingest DATASET "
            "--store NEW_STORE --landmarks --streams face,mouth`"
            + (f" (or train with {instead})" if instead else "")
        )


def check_streams(
    recipe: schemas.Recipe, streams: Sequence[str], visual_input: str, store: Path | str
) -> None:
    """:func:`require_streams` for the streams a run reads (``TrainConfig.streams``:
    ``data.streams`` and the model's ``visual_input``), each named by its setting."""
    readers = {
        name: f"model.visual_input={name}" if name == visual_input else "data.streams"
        for name in streams
    }
    require_streams(recipe, readers, store)


def check_visual_input(recipe: schemas.Recipe, visual_input: str, store: Path | str) -> None:
    """Refuse, in one line naming the fix, a store that lacks the model's visual stream."""
    check_streams(recipe, (visual_input,), visual_input, store)


def crop_mouth(frames: np.ndarray, dy: int = 0, dx: int = 0) -> np.ndarray:
    """The model's ``88 × 88`` window of stored mouth crops, offset ``(dy, dx)`` from the centre.

    Args:
        frames: ``(n, 96, 96)`` uint8 stored mouth crops.
        dy, dx: offsets in ``[-MOUTH_MARGIN, MOUTH_MARGIN]`` (0, 0: the centre crop).

    Returns:
        ``(n, 88, 88)`` uint8, a new contiguous array.
    """
    if frames.shape[1:] != (MOUTH_SIZE, MOUTH_SIZE):
        raise ValueError(f"mouth crops must be (n, {MOUTH_SIZE}, {MOUTH_SIZE}), got {frames.shape}")
    if max(abs(dy), abs(dx)) > MOUTH_MARGIN:
        raise ValueError(f"mouth crop offset ({dy}, {dx}) exceeds {MOUTH_MARGIN}")
    y, x = MOUTH_MARGIN + dy, MOUTH_MARGIN + dx
    return np.ascontiguousarray(frames[:, y : y + MOUTH_CROP, x : x + MOUTH_CROP])


def clip_stream(clip: Any, visual_input: str) -> np.ndarray:
    """The visual stream of one preprocessed clip (anything with an attribute per stream,
    named as :data:`schemas.streams.CLIP_ARRAY_TABLE` names it, ``face`` and ``mouth``, as
    the pipeline's per-clip tensors have), ready for
    :func:`trainer.evaluate.inference.window_scores`: face ``(T, S, S, 3)`` or mouth ``(T, 88, 88)``.
    """
    frames = getattr(clip, visual_input, None)
    if frames is None:
        raise TrainerError(
            f"the preprocessed clip has no {visual_input} stream; the checkpoint's recipe "
            "must store it (--streams face,mouth)"
        )
    return crop_mouth(frames) if visual_input == "mouth" else frames
