"""Dataset adapters: each turns a dataset root into the same :class:`ScanResult`.

``scan(root, dataset)`` runs the adapter named ``dataset``, or detects it from the
root's layout when ``dataset`` is None (:func:`detect`). One module per dataset:

- ``fakeavceleb`` (:mod:`pipeline.datasets.fakeavceleb`): ``meta_data.csv`` or the type folders;
- ``lavdf`` (:mod:`pipeline.datasets.lavdf`): ``metadata.json`` / ``metadata.min.json``;
- ``avdeepfake1m`` (:mod:`pipeline.datasets.avdeepfake1m`): ``{train,val}_metadata.json``,
  ``{subset}_metadata/`` folders, ``test_files.txt``;
- ``csv`` (:mod:`pipeline.datasets.csv_table`): ``ROOT/labels.csv`` or ``ROOT`` the CSV
  itself; only when asked for, never detected.

Detection looks at the root and, as the FakeAVCeleb scan always has, at the folders
right inside it. The adapters are imported when used: :mod:`pipeline.scan` imports
this package's :mod:`~pipeline.datasets.source`, and the adapters import it back.
"""

from __future__ import annotations

import importlib
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING

from pipeline.datasets.source import ClipSource, ScanResult, Segments, make_clip_id

_MODULES = {
    "fakeavceleb": "pipeline.datasets.fakeavceleb",
    "lavdf": "pipeline.datasets.lavdf",
    "avdeepfake1m": "pipeline.datasets.avdeepfake1m",
    "csv": "pipeline.datasets.csv_table",
}
if TYPE_CHECKING:  # collect imports pipeline.scan, which imports this package
    from pipeline.datasets.collect import ClipSink

DATASETS: tuple[str, ...] = tuple(_MODULES)
#: The adapters that detection tries (a CSV could be anyone's; it is never guessed).
DETECTED: tuple[str, ...] = ("fakeavceleb", "lavdf", "avdeepfake1m")


def adapter(name: str) -> ModuleType:
    """The module of the dataset ``name``; ``ScanError`` for a name not in :data:`DATASETS`."""
    from pipeline.scan import ScanError

    if name not in _MODULES:
        raise ScanError(f"unknown dataset {name!r}; expected one of {', '.join(DATASETS)}")
    return importlib.import_module(_MODULES[name])


def detect(root: str | Path) -> str:
    """The name of the dataset at ``root`` (or in the one folder inside it that holds one).

    Raises a one-line ``ScanError`` when no layout matches, naming what was looked
    for, or when several do, naming them.
    """
    from pipeline.datasets.layout import candidate_roots
    from pipeline.scan import ScanError

    root = Path(root)
    if root.is_file() and root.suffix.lower() == ".csv":
        raise ScanError(f"{root} is a CSV file; pass --dataset csv to read it as labels")
    if not root.is_dir():
        raise ScanError(f"dataset root {root} is not a directory")
    at_root = [name for name in DETECTED if adapter(name).looks_like(root)]
    found = at_root or [
        f"{name} ({path.name})"
        for name in DETECTED
        for path in candidate_roots(root, adapter(name).looks_like)
    ]
    if len(found) == 1:
        return found[0].split(" ")[0]
    if found:
        raise ScanError(f"{root} matches several layouts ({', '.join(found)}); pass --dataset")
    hint = "; it holds labels.csv: pass --dataset csv" if (root / "labels.csv").exists() else ""
    wanted = "; ".join(adapter(name).WANTED for name in DETECTED)
    raise ScanError(f"cannot tell the dataset at {root}: looked for {wanted}{hint}")


def scan(root: str | Path, dataset: str | None = None, sink: ClipSink | None = None) -> ScanResult:
    """The clips of the dataset at ``root`` (``dataset`` detected when None); with a
    ``sink``, each clip is also handed to it as it is found (:class:`ClipSink`)."""
    name = dataset if dataset is not None else detect(root)
    result: ScanResult = adapter(name).scan(root, sink)
    return result


__all__ = [
    "DATASETS",
    "DETECTED",
    "ClipSource",
    "ScanResult",
    "Segments",
    "adapter",
    "detect",
    "make_clip_id",
    "scan",
]
