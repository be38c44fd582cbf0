"""Dataset adapters: each turns a dataset root into the same :class:`ScanResult`.

``scan(root, dataset)`` runs the adapter named ``dataset``, or detects it from the
root's tree when ``dataset`` is None (:func:`detect`). One module per dataset,
each a :class:`~pipeline.datasets.base.DatasetAdapter`:

- ``fakeavceleb`` (:mod:`pipeline.datasets.fakeavceleb`): ``meta_data.csv`` or the type folders;
- ``lavdf`` (:mod:`pipeline.datasets.lavdf`): ``metadata.json`` / ``metadata.min.json``;
- ``avdeepfake1m`` (:mod:`pipeline.datasets.avdeepfake1m`): ``{train,val}_metadata.json``,
  ``{subset}_metadata/`` folders, ``test_files.txt``;
- ``csv`` (:mod:`pipeline.datasets.csv_table`): ``ROOT/labels.csv`` or ``ROOT`` the CSV
  itself; only when asked for, never detected.

Another dataset plugs in with :func:`register` (a module path, imported when first
used), or, for the command line, as an entry point of the group
:data:`ENTRY_POINT_GROUP` in the package that holds it (``docs/contributing.md``).

Detection looks at the root and, as the FakeAVCeleb scan always has, at the folders
right inside it. The adapters are imported when used, so that naming the datasets
costs nothing; no adapter imports another, and none imports this package's registry.
"""

from __future__ import annotations

import importlib
from importlib.metadata import entry_points
from pathlib import Path
from typing import TYPE_CHECKING

from pipeline.datasets.common import ScanError
from pipeline.datasets.source import ClipSource, ScanResult, Segments, make_clip_id

if TYPE_CHECKING:
    from pipeline.datasets.base import DatasetAdapter, DetectedAdapter
    from pipeline.datasets.collect import ClipSink

#: The adapters this package holds: name -> module.
_BUILT_IN = {
    "fakeavceleb": "pipeline.datasets.fakeavceleb",
    "lavdf": "pipeline.datasets.lavdf",
    "avdeepfake1m": "pipeline.datasets.avdeepfake1m",
    "csv": "pipeline.datasets.csv_table",
}
#: The entry-point group an installed package registers its adapters in (name = module).
ENTRY_POINT_GROUP = "mscct.datasets"

DATASETS: tuple[str, ...] = tuple(_BUILT_IN)
#: The built-in adapters that detection tries (a CSV could be anyone's; it is never guessed).
DETECTED: tuple[str, ...] = ("fakeavceleb", "lavdf", "avdeepfake1m")

_registered: dict[str, str] = {}  # name -> module, added by register()
_detected_extra: list[str] = []  # registered names that detection tries too


def register(name: str, module: str, *, detected: bool = False) -> None:
    """Make the adapter in ``module`` (an import path) the dataset ``name``.

    ``ingest --dataset name`` (or ``IngestOptions(dataset=name)``) then scans with it.
    With ``detected`` it is also tried by :func:`detect`, and must then provide
    ``WANTED`` and ``looks_like`` (:class:`~pipeline.datasets.base.DetectedAdapter`).
    The module is imported when first used. A name already taken is a ``ValueError``.
    """
    if not name.isidentifier() or name in _known():
        raise ValueError(f"dataset name {name!r} is taken or not a plain word")
    _registered[name] = module
    if detected:
        _detected_extra.append(name)


def unregister(name: str) -> None:
    """Forget an adapter :func:`register` added (a built-in one stays)."""
    _registered.pop(name, None)
    if name in _detected_extra:
        _detected_extra.remove(name)


def names() -> tuple[str, ...]:
    """Every dataset name an ingest takes: built-in, registered, then from entry points."""
    return tuple(_known())


def _known() -> dict[str, str]:
    """name -> module for every adapter; the built-in and registered ones win a clash."""
    found = {ep.name: ep.value for ep in entry_points(group=ENTRY_POINT_GROUP)}
    return {**found, **_BUILT_IN, **_registered}


def adapter(name: str) -> DatasetAdapter:
    """The adapter of the dataset ``name``; ``ScanError`` for a name no adapter has.

    A module that lacks what an adapter provides is a ``TypeError`` (a bug in the
    adapter, not the user's data).
    """
    from pipeline.datasets.base import DatasetAdapter

    modules = _BUILT_IN if name in _BUILT_IN else _known()
    if name not in modules:
        raise ScanError(f"unknown dataset {name!r}; expected one of {', '.join(names())}")
    module = importlib.import_module(modules[name])
    if not isinstance(module, DatasetAdapter):
        raise TypeError(f"{module.__name__} is not a dataset adapter: it needs NAME and scan()")
    return module


def _detectable(name: str) -> DetectedAdapter:
    from pipeline.datasets.base import DetectedAdapter

    module = adapter(name)
    if not isinstance(module, DetectedAdapter):
        raise TypeError(f"{name}: a detected adapter needs WANTED and looks_like()")
    return module


def detect(root: str | Path) -> str:
    """The name of the dataset at ``root`` (or in the one folder inside it that holds one).

    Raises a one-line ``ScanError`` when no tree matches, naming what was looked
    for, or when several do, naming them.
    """
    from pipeline.datasets.roots import candidate_roots

    root = Path(root)
    if root.is_file() and root.suffix.lower() == ".csv":
        raise ScanError(f"{root} is a CSV file; pass --dataset csv to read it as labels")
    if not root.is_dir():
        raise ScanError(f"dataset root {root} is not a directory")
    tried = [*DETECTED, *_detected_extra]
    at_root = [name for name in tried if _detectable(name).looks_like(root)]
    found = at_root or [
        f"{name} ({path.name})"
        for name in tried
        for path in candidate_roots(root, _detectable(name).looks_like)
    ]
    if len(found) == 1:
        return found[0].split(" ")[0]
    if found:
        raise ScanError(f"{root} matches several trees ({', '.join(found)}); pass --dataset")
    hint = "; it holds labels.csv: pass --dataset csv" if (root / "labels.csv").exists() else ""
    wanted = "; ".join(_detectable(name).WANTED for name in tried)
    raise ScanError(f"cannot tell the dataset at {root}: looked for {wanted}{hint}")


def scan(root: str | Path, dataset: str | None = None, sink: ClipSink | None = None) -> ScanResult:
    """The clips of the dataset at ``root`` (``dataset`` detected when None); with a
    ``sink``, each clip is also handed to it as it is found (:class:`ClipSink`)."""
    name = dataset if dataset is not None else detect(root)
    return adapter(name).scan(root, sink)


__all__ = [
    "DATASETS",
    "DETECTED",
    "ENTRY_POINT_GROUP",
    "ClipSource",
    "ScanResult",
    "Segments",
    "adapter",
    "detect",
    "make_clip_id",
    "names",
    "register",
    "scan",
    "unregister",
]
