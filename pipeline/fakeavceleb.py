"""The layout of a FakeAVCeleb v1.2 release: its root folder, type folders and ``meta_data.csv``.

One definition of the names that the scanner reads and the synthetic generator
writes. The tree is ``<ROOT_NAME>/<type>/<race>/<gender>/<idNNNNN>/<file>.mp4``
with ``meta_data.csv`` at the root. The CSV's header names nine columns and ends
with a comma: each row has a tenth, unnamed field, the file's directory, which
starts with ``FakeAVCeleb/`` (``CSV_DIR_PREFIX``) rather than the root's real name.
The type folders are those of :data:`schemas.TYPE_DIR_TO_CATEGORY`.
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
