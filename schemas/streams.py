"""The stream door: one table of every per-frame array a clip can hold.

Each :class:`ClipArray` says what one stored array is: its name in code, its path in
the clip's group, the shape of one frame's row and its data type as the store's recipe
makes them, the recipe settings that produce it, whether the recipe decides that a clip
holds it, whether the trainer can read it as the model's visual input, and what a clip
stored without it reads as. Every array is ``(T, *row)`` with the clip's ``T``.

Everything that needs to know the arrays reads :data:`CLIP_ARRAY_TABLE`: the recipe's
selectable :data:`STREAMS`, the shape checks of ``write_clip`` and of a stored array's
metadata (:mod:`schemas.array_limits`), the store's file rules
(:mod:`schemas.store_files`), the readers (``schemas.open_stream``), the pipeline's
per-clip tensors and silence trim, and the trainer's stream settings and readers.
Adding a stream starts here (``docs/contributing.md``, "Adding a stream").

The face crops are the stream ``face``; on disk their array is called ``video`` (the
name stores have always used, kept so that no store needs rewriting): ``path``
carries that mapping, and only code that touches files uses it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from schemas.layout import AUDIO_CHANNELS, LABELS_DIR

if TYPE_CHECKING:
    from schemas.recipe import Recipe

#: Side of a stored mouth crop, pixels (``pipeline.clip.mouth`` cuts them this size).
MOUTH_SIZE = 96


@dataclass(frozen=True)
class ClipArray:
    """One per-frame array of a clip: ``(T, *row(recipe))`` of ``dtype(recipe)``.

    ``name``: its name in code (a visual stream's name, as ``Recipe.streams`` and the
    trainer's ``data.streams`` list it). ``path``: its path in the clip's group.
    ``made_by``: the recipe settings that produce or shape it. ``calls_for``: whether
    the recipe makes every clip hold it (True) or none (False); None where a clip may
    hold it or not (an array added after stores were made, a dataset's frame labels).
    ``visual``: a visual stream the model can read as its input. ``absent``: the value
    every element of a clip stored without it reads as (None: no such reading; the
    array is required or its reader returns None).
    """

    name: str
    path: str
    row: Callable[[Recipe], tuple[int, ...]]
    dtype: Callable[[Recipe], np.dtype]
    made_by: tuple[str, ...] = ()
    calls_for: Callable[[Recipe], bool] | None = None
    visual: bool = False
    absent: float | None = None

    @property
    def is_label(self) -> bool:
        """Whether it is a per-frame label, kept under ``labels/``."""
        return self.path.startswith(f"{LABELS_DIR}/")


def _fixed(dtype: type) -> Callable[[Recipe], np.dtype]:
    """A data type the recipe does not change."""
    return lambda recipe: np.dtype(dtype)


def _always(recipe: Recipe) -> bool:
    return True


def _label(name: str) -> ClipArray:
    """A per-frame label ``(T,)`` uint8, 1 = the frame is fake (``schemas.frame_label_rule``)."""
    return ClipArray(name, f"{LABELS_DIR}/{name}", lambda r: (), _fixed(np.uint8))


#: Every per-frame array a clip can hold, in the order readers list them.
CLIP_ARRAY_TABLE: tuple[ClipArray, ...] = (
    # RGB face crops (pipeline.clip.faces), square of the recipe's crop_size.
    ClipArray(
        "face", "video", lambda r: (r.crop_size, r.crop_size, 3), _fixed(np.uint8),
        made_by=("crop_size", "streams"), calls_for=_always, visual=True,
    ),
    # MFCC or log filter-bank features (pipeline.clip.audio_features), one row per frame.
    ClipArray(
        "audio", "audio", lambda r: (AUDIO_CHANNELS,), lambda r: np.dtype(r.audio_dtype),
        made_by=("features", "audio_dtype", "sample_rate"), calls_for=_always,
    ),
    # The square of the source frame each face crop was cut from, (x0, y0, x1, y1) px.
    ClipArray("face_boxes", "face_boxes", lambda r: (4,), _fixed(np.float32)),
    # dlib's 68 points (x, y) in face-crop pixels, NaN without a face (pipeline.clip.landmarks).
    ClipArray(
        "landmarks", "landmarks", lambda r: (68, 2), _fixed(np.float16),
        made_by=("landmarks",), calls_for=lambda r: r.landmarks,
    ),
    # Grayscale mouth crops aligned by the landmarks (pipeline.clip.mouth).
    ClipArray(
        "mouth", "mouth", lambda r: (MOUTH_SIZE, MOUTH_SIZE), _fixed(np.uint8),
        made_by=("streams", "landmarks"), calls_for=lambda r: "mouth" in r.streams,
        visual=True,
    ),
    # 1 where the frame has a face (pipeline.clip.shots); a clip stored before it: all faces.
    ClipArray("face_valid", "face_valid", lambda r: (), _fixed(np.uint8), absent=1.0),
    # Head yaw, pitch, roll (degrees) and fit residual (pipeline.clip.head_pose); else unknown.
    ClipArray(
        "pose", "pose", lambda r: (4,), _fixed(np.float32), made_by=("landmarks",),
        absent=float("nan"),
    ),
    _label("fake"),
    _label("audio_fake"),
    _label("video_fake"),
)  # fmt: skip

#: The table by name.
ARRAYS_BY_NAME: dict[str, ClipArray] = {array.name: array for array in CLIP_ARRAY_TABLE}
#: The visual streams a store can hold and the trainer can read, in canonical order.
STREAMS: tuple[str, ...] = tuple(a.name for a in CLIP_ARRAY_TABLE if a.visual)
#: A visual stream -> its array's path in the clip (``face`` -> ``video``).
STREAM_PATHS: dict[str, str] = {a.name: a.path for a in CLIP_ARRAY_TABLE if a.visual}
#: The paths of a clip's arrays outside ``labels/`` (``schemas.open_stream``'s names).
CLIP_ARRAY_PATHS: tuple[str, ...] = tuple(a.path for a in CLIP_ARRAY_TABLE if not a.is_label)
#: The per-frame label names under ``labels/``.
LABEL_NAMES: tuple[str, ...] = tuple(a.name for a in CLIP_ARRAY_TABLE if a.is_label)


def rows_of(recipe: Recipe) -> dict[str, tuple[tuple[int, ...], np.dtype]]:
    """Each array's path -> (its row shape after ``T``, its dtype), as ``recipe`` makes them."""
    return {a.path: (a.row(recipe), a.dtype(recipe)) for a in CLIP_ARRAY_TABLE}


def stream_row(recipe: Recipe, stream: str) -> tuple[int, ...]:
    """One frame's shape of the visual ``stream`` (``face``: ``(S, S, 3)``)."""
    return ARRAYS_BY_NAME[stream].row(recipe)
