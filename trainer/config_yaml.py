"""The YAML dialect of config files: ``yaml.safe_load`` with YAML 1.2 booleans.

YAML 1.1 also reads on / off / yes / no as booleans, so ``--set amp=off`` or ``amp: off``
in a file would arrive as ``False`` instead of the choice ``"off"``; OmegaConf's own loader
keeps the 1.1 booleans, so presets, config files and ``--set`` values are all read here.
"""

from __future__ import annotations

import re
from typing import Any

import yaml


class _Yaml12Loader(yaml.SafeLoader):
    """``yaml.SafeLoader`` whose booleans are only true / false, as in YAML 1.2."""


_Yaml12Loader.yaml_implicit_resolvers = {
    first: [(tag, rx) for tag, rx in resolvers if tag != "tag:yaml.org,2002:bool"]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}
_Yaml12Loader.add_implicit_resolver(
    "tag:yaml.org,2002:bool", re.compile(r"^(?:true|True|TRUE|false|False|FALSE)$"), list("tTfF")
)


def load_yaml(text: str) -> Any:
    """Parse config YAML (safe, YAML 1.2 booleans); raises ``yaml.YAMLError``."""
    return yaml.load(text, Loader=_Yaml12Loader)  # a SafeLoader subclass: safe
