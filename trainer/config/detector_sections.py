"""Which detector a config names, and the ``model`` and ``loss`` sections it starts from.

A config is merged from layers: a preset, a user's file, a checkpoint's config, then
``--set`` overrides. The ``model`` section's keys depend on the detector
(``model.name``, :mod:`trainer.model.registry`), so sections of different detectors are
never merged: the detector is the last one named (an override, else the last layer that
names one, else ``msct``); a layer whose ``model.name`` names another drops its ``model``
and ``loss`` sections, and when no layer is left to give the chosen detector's sections,
they are read from the detector's preset of the config's size (``tiny``: a user's file
or the ``tiny`` preset; ``paper``: the ``paper`` preset or a paper-size detector preset).
A layer whose ``model`` section names no detector (a partial user file, a checkpoint
from before the registry) applies to the chosen one.

So ``--config tiny --set model.name=mrdf_ce`` trains ``mrdf_ce_tiny``'s model with its
loss and ``tiny``'s other settings, and ``--config mrdf_ce`` is the detector's own preset:
the ``paper`` preset with ``mrdf_ce.yaml`` over it.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from trainer.model.registry import DEFAULT_DETECTOR, get_detector, preset_size
from trainer.presets import PRESETS, read_preset

#: The sections that belong to one detector.
DETECTOR_SECTIONS = ("model", "loss")


def preset_layers(name: str) -> tuple[list[dict[str, Any]], str]:
    """The layers of the preset ``name`` and its size: ``tiny`` and ``paper`` are one
    complete layer; a detector's preset is read over the preset of its size."""
    if name in PRESETS:
        return [read_preset(name)], name
    size = preset_size(name)
    if size is None:
        read_preset(name)  # raises for a name that is no preset at all
        raise ValueError(f"preset {name!r} belongs to no registered detector")
    return [read_preset(size), read_preset(name)], size


def _named(layer: dict[str, Any]) -> str | None:
    model = layer.get("model")
    return model.get("name") if isinstance(model, dict) else None


def chosen_detector(layers: Sequence[dict[str, Any]], overrides: Sequence[tuple[str, Any]]) -> str:
    """The detector the config names: the last ``model.name`` override, else the last
    layer's ``model.name``, else ``msct``; ``ValueError`` for an unregistered name."""
    named = [value for key, value in overrides if key == "model.name"]
    named = named or [n for n in map(_named, layers) if n is not None]
    name = str(named[-1]) if named else DEFAULT_DETECTOR
    get_detector(name)
    return name


def detector_layers(
    layers: Sequence[dict[str, Any]], overrides: Sequence[tuple[str, Any]], size: str
) -> list[dict[str, Any]]:
    """``layers`` with the sections of other detectors dropped and, where needed, the
    chosen detector's sections of ``size`` inserted after the first layer (see above)."""
    name = chosen_detector(layers, overrides)
    kept = []
    for layer in layers:
        other = _named(layer) not in (None, name)
        kept.append({k: v for k, v in layer.items() if not (other and k in DETECTOR_SECTIONS)})
    if any(_named(layer) == name for layer in kept):
        return kept
    preset = read_preset(get_detector(name).presets[size])
    sections = {k: v for k, v in preset.items() if k in DETECTOR_SECTIONS}
    return [*kept[:1], sections, *kept[1:]]
