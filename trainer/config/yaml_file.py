"""The YAML dialect of config files: ``yaml.safe_load`` with YAML 1.2 booleans.

YAML 1.1 also reads on / off / yes / no as booleans, so ``--set amp=off`` or ``amp: off``
in a file would arrive as ``False`` instead of the choice ``"off"``; OmegaConf's own loader
keeps the 1.1 booleans, so presets, config files and ``--set`` values are all read here.

A config is a few dozen keys, so the loader is bounded to what one can be: aliases
(``*name``) are refused outright, since a few hundred bytes of nested aliases expand to
billions of nodes (an "alias bomb"), and nesting deeper than :data:`MAX_DEPTH` is refused
before the recursive composer could exhaust the stack. Files are read by
:func:`trainer.config.settings._read_file`, at most :data:`MAX_CONFIG_BYTES`.
"""

from __future__ import annotations

import re
from typing import Any

import yaml

#: The largest config file read (the presets are about 2 KB).
MAX_CONFIG_BYTES = 1 << 20
#: The deepest nesting of mappings and lists accepted (a config nests three levels).
MAX_DEPTH = 32


class _Yaml12Loader(yaml.SafeLoader):
    """``yaml.SafeLoader`` whose booleans are only true / false, as in YAML 1.2, with no
    aliases and at most :data:`MAX_DEPTH` levels of nesting."""

    _depth = 0

    def compose_node(self, parent: Any, index: Any) -> Any:
        """One node, refusing an alias and nesting beyond :data:`MAX_DEPTH`."""
        if self.check_event(yaml.AliasEvent):
            event = self.peek_event()
            raise yaml.composer.ComposerError(
                None, None, "aliases (*name) are not allowed in config files", event.start_mark
            )
        if self._depth >= MAX_DEPTH:
            raise yaml.composer.ComposerError(
                None, None, f"nested deeper than {MAX_DEPTH} levels", self.peek_event().start_mark
            )
        self._depth += 1
        try:
            return super().compose_node(parent, index)
        finally:
            self._depth -= 1


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
