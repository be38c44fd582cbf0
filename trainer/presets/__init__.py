"""The training presets, one YAML file each: the only place their values are written.

``tiny.yaml`` trains MSCT in minutes on a laptop CPU; ``paper.yaml`` is the paper's model
with Adam for 200 epochs. Both ship inside the package (``mscct-train run --config tiny``
reads them from there) and each lists every key, so either is a complete file to copy,
edit and pass as ``--config FILE``.

Every other detector (``model.name``, :mod:`trainer.model.registry`) has two presets
here, ``<name>_tiny.yaml`` and ``<name>.yaml``, each holding only what differs from the
``tiny`` or the ``paper`` preset that it is read over: its ``model`` and ``loss`` sections
and, in ``<name>.yaml``, the training settings its source fixes.
"""

from __future__ import annotations

from importlib.resources import files
from typing import Any

from trainer.config.yaml_file import load_yaml

#: The two complete presets (MSCT's sizes), over which the other presets are read.
PRESETS: tuple[str, ...] = ("tiny", "paper")


def preset_names() -> tuple[str, ...]:
    """Every preset: ``tiny``, ``paper``, then the detectors' presets by name."""
    found = sorted(
        entry.name[: -len(".yaml")]
        for entry in files(__name__).iterdir()
        if entry.name.endswith(".yaml")
    )
    return (*PRESETS, *(name for name in found if name not in PRESETS))


def read_preset(name: str) -> dict[str, Any]:
    """The preset file ``name`` as a plain nested mapping; ``ValueError`` for an unknown name."""
    names = preset_names()
    if name not in names:
        raise ValueError(f"unknown preset {name!r}; expected one of {', '.join(names)}")
    return load_yaml(files(__name__).joinpath(f"{name}.yaml").read_text(encoding="utf-8"))
