"""The tree of a FakeAVCeleb v1.2 release: its root folder, type folders and ``meta_data.csv``.

One definition of the names that the scan (:mod:`pipeline.datasets.fakeavceleb`)
reads and the synthetic generator (:mod:`pipeline.synth`) writes. The tree is
``<ROOT_NAME>/<type>/<race>/<gender>/<idNNNNN>/<file>.mp4`` with ``meta_data.csv``
at the root. The CSV's header names nine columns and ends with a comma: each row
has a tenth, unnamed field, the file's directory, which starts with
``FakeAVCeleb/`` (``CSV_DIR_PREFIX``) rather than the root's real name. The type
folders are those of :data:`schemas.TYPE_DIR_TO_CATEGORY`.
"""

from __future__ import annotations

from schemas.labels import CATEGORY_TO_TYPE_DIR, LETTER_TO_CATEGORY

ROOT_NAME = "FakeAVCeleb_v1.2"
CSV_NAME = "meta_data.csv"
#: The nine named columns of ``meta_data.csv``, in order.
CSV_COLUMNS: tuple[str, ...] = (
    "source",
    "target1",
    "target2",
    "method",
    "category",
    "type",
    "race",
    "gender",
    "path",
)
#: The header line as the release writes it: the named columns and a trailing comma.
CSV_HEADER = ",".join(CSV_COLUMNS) + ","
CSV_DIR_PREFIX = "FakeAVCeleb"

#: Type folder of each FakeAVCeleb category letter: ``"A"`` -> ``"RealVideo-RealAudio"`` ...
TYPE_DIRS: dict[str, str] = {
    letter: CATEGORY_TO_TYPE_DIR[category] for letter, category in LETTER_TO_CATEGORY.items()
}

#: Some copies of the release spell race folders with spaces and parentheses (both ways).
RACE_SPELLINGS = {
    "Asian_East": "Asian (East)",
    "Asian_South": "Asian (South)",
    "Caucasian_American": "Caucasian (American)",
    "Caucasian_European": "Caucasian (European)",
}
RACE_SPELLINGS.update({v: k for k, v in RACE_SPELLINGS.items()})

#: Method tokens found in FakeAVCeleb file names, most specific first.
METHOD_TOKENS = (
    ("faceswap-wav2lip", ("faceswap-wav2lip", "faceswap_wav2lip", "faceswap-wavtolip")),
    ("fsgan-wav2lip", ("fsgan-wav2lip", "fsgan_wav2lip", "fsgan-wavtolip")),
    ("wav2lip", ("wav2lip", "wavtolip")),
    ("faceswap", ("faceswap",)),
    ("fsgan", ("fsgan",)),
)
#: The method of a category that names none (its real clips; its one voice cloner).
DEFAULT_METHOD = {"RARV": "real", "FARV": "rtvc"}


def infer_method(category: str, file_name: str) -> str:
    """Manipulation method from a file name (used when there is no CSV)."""
    if category in DEFAULT_METHOD:
        return DEFAULT_METHOD[category]
    lowered = file_name.lower()
    for method, tokens in METHOD_TOKENS:
        if any(token in lowered for token in tokens):
            return method
    return "unknown"


__all__ = [
    "CSV_COLUMNS",
    "CSV_DIR_PREFIX",
    "CSV_HEADER",
    "CSV_NAME",
    "DEFAULT_METHOD",
    "METHOD_TOKENS",
    "RACE_SPELLINGS",
    "ROOT_NAME",
    "TYPE_DIRS",
    "infer_method",
]
