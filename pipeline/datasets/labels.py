"""Label vocabulary shared by the adapters: categories, modification types, official splits.

Every dataset says, one way or another, which modalities of a clip are fake. The
adapters turn that into the project's category (``RARV``/``FARV``/``RAFV``/``FAFV``:
real or fake audio, real or fake video) and into one modification-type spelling,
AV-Deepfake1M's (``real``, ``audio_modified``, ``visual_modified``,
``both_modified``), used for ``source_type`` where a dataset has no type folders.
"""

from __future__ import annotations

from pipeline.datasets.source import Segments

#: modify_type -> (audio fake, video fake). ``both-modified`` is the official SDK's spelling.
MODIFY_TYPES: dict[str, tuple[bool, bool]] = {
    "real": (False, False),
    "audio_modified": (True, False),
    "visual_modified": (False, True),
    "both_modified": (True, True),
    "both-modified": (True, True),
}

#: A dataset's own split names -> the project's parts (LAV-DF's ``dev`` is ``val``).
OFFICIAL_SPLITS: dict[str, str] = {
    "train": "train",
    "dev": "val",
    "val": "val",
    "valid": "val",
    "validation": "val",
    "test": "test",
}


def category_of(audio_fake: bool, video_fake: bool) -> str:
    """``RARV``, ``FARV`` (fake audio), ``RAFV`` (fake video) or ``FAFV``."""
    return f"{'F' if audio_fake else 'R'}A{'F' if video_fake else 'R'}V"


def modify_type_of(audio_fake: bool, video_fake: bool) -> str:
    """The canonical modification type of a pair of per-modality labels."""
    if audio_fake and video_fake:
        return "both_modified"
    if audio_fake:
        return "audio_modified"
    return "visual_modified" if video_fake else "real"


def official_split(source_split: str) -> str:
    """``train``/``val``/``test`` for a dataset's split name, ``""`` when it names none of them."""
    return OFFICIAL_SPLITS.get(source_split.strip().lower(), "")


def per_modality(fake: Segments, audio_fake: bool, video_fake: bool) -> tuple[Segments, Segments]:
    """Audio and video segments of a dataset that gives one list and the modified modalities.

    A modified modality is fake over the clip's segments; the other is real throughout.
    """
    return (fake if audio_fake else ()), (fake if video_fake else ())


__all__ = [
    "MODIFY_TYPES",
    "OFFICIAL_SPLITS",
    "category_of",
    "modify_type_of",
    "official_split",
    "per_modality",
]
