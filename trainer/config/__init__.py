"""The training configuration: dataclasses, presets, YAML files, overrides and their ranges."""
