"""The recipe ``mscct-pipeline ingest`` uses, built in one place.

The CLI and the ingest benchmark (``benchmarks/bench_ingest.py``) both call
:func:`ingest_recipe`, so that the benchmark times what users run. Cheap to import
(:mod:`schemas` only): the landmark predictor is looked for when the recipe is built.

What the CLI's options leave to it: landmarks are on when the 68-point predictor is
installed (the ``landmarks`` extra), else off; the decoder is ``pyav``; a rerun into an
existing store keeps that store's settings of both. Every other field is the
:class:`schemas.Recipe` default unless given.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import schemas


def ingest_recipe(
    *,
    landmarks: bool | None = None,
    streams: tuple[str, ...] = ("face",),
    decoder: str | None = None,
    resume: Path | None = None,
    **fields: Any,
) -> schemas.Recipe:
    """The recipe of ``mscct-pipeline ingest`` given its options; with no argument, its default.

    ``landmarks`` and ``decoder`` are the options as given (``None``: not given; see
    :func:`resolve_landmarks` and :func:`resolve_decoder`), ``resume`` the store a rerun
    would resume (``None`` with ``--overwrite``), ``fields`` any other recipe field.
    Raises :class:`schemas.UserError` for a recipe that cannot be made.
    """
    return schemas.Recipe(
        **fields,
        landmarks=resolve_landmarks(landmarks, "mouth" in streams, resume),
        streams=streams,
        decoder=resolve_decoder(decoder, resume),
    )


def resolve_landmarks(asked: bool | None, mouth: bool, resume: Path | None) -> bool:
    """``--landmarks/--no-landmarks``; by default what the store being resumed (``resume``,
    when it is a store) was made with, else whether the predictor is installed.

    Raises :class:`schemas.UserError` (one line: what to install) when landmarks are
    asked for, or needed by the mouth stream, and the predictor is missing.
    """
    from pipeline.clip.landmarks import MISSING_PREDICTOR, landmarks_available

    if asked is None and not mouth and resume is not None and schemas.is_store(resume):
        asked = schemas.open_store(resume).recipe.landmarks  # a rerun keeps its recipe
    if asked is False:
        if mouth:
            raise schemas.UserError("the mouth stream is aligned by landmarks: drop --no-landmarks")
        return False
    if landmarks_available():
        return True
    if asked or mouth:
        raise schemas.UserError(MISSING_PREDICTOR)
    return False


def resolve_decoder(asked: str | None, resume: Path | None) -> str:
    """The decoder asked for; else the one an existing store was made with; else pyav."""
    if asked is not None:
        return asked
    if resume is not None and schemas.is_store(resume):
        return schemas.open_store(resume).recipe.decoder  # a rerun keeps its recipe
    return "pyav"
