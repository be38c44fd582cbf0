"""The training presets, one YAML file each: the only place their values are written.

``tiny.yaml`` trains in minutes on a laptop CPU; ``paper.yaml`` is the paper's model with
Adam for 200 epochs. Both ship inside the package (``mscct-train run --config tiny``
reads them from there) and each lists every key, so either is a complete file to copy,
edit and pass as ``--config FILE``.
"""

from __future__ import annotations

from importlib.resources import files
from typing import Any

from trainer.config_yaml import load_yaml

PRESETS: tuple[str, ...] = ("tiny", "paper")


def read_preset(name: str) -> dict[str, Any]:
    """The preset ``name`` as a plain nested mapping; ``ValueError`` for an unknown name."""
    if name not in PRESETS:
        raise ValueError(f"unknown preset {name!r}; expected one of {', '.join(PRESETS)}")
    return load_yaml(files(__name__).joinpath(f"{name}.yaml").read_text(encoding="utf-8"))
