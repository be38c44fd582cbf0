"""Label conventions shared by the pipeline and the trainer.

FakeAVCeleb names its four categories by letter (A-D) and by folder
(``RealVideo-RealAudio`` ...). This project names them by what is fake:
``RARV`` (real audio, real video), ``FARV``, ``RAFV`` and ``FAFV``.
Labels are 1 = fake, 0 = real, per modality and overall.
"""

from __future__ import annotations

from dataclasses import dataclass

CATEGORIES: tuple[str, ...] = ("RARV", "FARV", "RAFV", "FAFV")

LETTER_TO_CATEGORY: dict[str, str] = {"A": "RARV", "B": "FARV", "C": "RAFV", "D": "FAFV"}
CATEGORY_TO_LETTER: dict[str, str] = {v: k for k, v in LETTER_TO_CATEGORY.items()}

TYPE_DIR_TO_CATEGORY: dict[str, str] = {
    "RealVideo-RealAudio": "RARV",
    "RealVideo-FakeAudio": "FARV",
    "FakeVideo-RealAudio": "RAFV",
    "FakeVideo-FakeAudio": "FAFV",
}
CATEGORY_TO_TYPE_DIR: dict[str, str] = {v: k for k, v in TYPE_DIR_TO_CATEGORY.items()}

SPLITS: tuple[str, ...] = ("train", "val", "test")


@dataclass(frozen=True)
class Labels:
    """Targets of one clip. ``pair`` is the cross-modal alignment target (1 only for RARV)."""

    audio: int
    video: int
    overall: int
    pair: int


def labels_for(category: str) -> Labels:
    """Labels of a category name (``RARV`` ...) or FakeAVCeleb letter (``A`` ...)."""
    category = LETTER_TO_CATEGORY.get(category, category)
    if category not in CATEGORIES:
        raise ValueError(f"unknown category {category!r}; expected one of {', '.join(CATEGORIES)}")
    audio = int(category[0] == "F")
    video = int(category[2] == "F")
    overall = int(audio or video)
    return Labels(audio=audio, video=video, overall=overall, pair=1 - overall)
