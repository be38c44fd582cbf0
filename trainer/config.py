"""Training configuration: one dataclass, two presets, YAML files and ``key=value`` overrides.

A run is its config: ``mscct-train run --config tiny --set model.dim=64 --set epochs=3``
resolves the preset (or a YAML file), applies the dotted overrides and records the
result as ``config.yaml`` in the run directory, so that the run can be repeated.
"""

from __future__ import annotations

import dataclasses
import math
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from trainer.model import LossWeights, ModelConfig

PRESETS = ("tiny", "paper")
OPTIMIZERS = ("adam", "adamw")
SCHEDULES = ("cosine", "constant")
AMP_MODES = ("auto", "off", "bf16")
DEVICES = ("auto", "cpu", "cuda")


class TrainerError(RuntimeError):
    """A user-facing error (bad config, store, checkpoint): printed as one line, exit code 2."""


@dataclass
class TrainConfig:
    """Everything that determines a training run besides the data.

    ``window`` is the number of frames per training window (the model sees
    audio ``(B, window, 104)`` and video ``(B, 3, window, S, S)``); an epoch draws
    ``windows_per_clip`` random windows from every training clip.
    ``schedule='cosine'`` warms the learning rate up linearly for
    ``warmup_epochs`` and then decays it to zero along a half cosine, per step.
    ``grad_clip`` is a max global gradient norm (0 disables clipping).
    ``patience`` stops training after that many epochs without a better val AUC
    (None: never stop early). ``precise_bn`` is the number of training batches used to
    recompute BatchNorm statistics before each evaluation (0: keep the running averages).
    """

    model: ModelConfig = field(default_factory=lambda: ModelConfig.preset("tiny"))
    window: int = 16
    windows_per_clip: int = 8
    batch_size: int = 16
    epochs: int = 12
    optimizer: str = "adam"
    lr: float = 1e-3
    weight_decay: float = 0.0
    schedule: str = "cosine"
    warmup_epochs: int = 1
    grad_clip: float = 1.0
    loss: LossWeights = field(default_factory=LossWeights)
    seed: int = 0
    num_workers: int = 0
    eval_stride: int | None = None
    amp: str = "auto"
    device: str = "auto"
    patience: int | None = None
    precise_bn: int = 8

    def __post_init__(self) -> None:
        _check_choice("optimizer", self.optimizer, OPTIMIZERS)
        _check_choice("schedule", self.schedule, SCHEDULES)
        _check_choice("amp", self.amp, AMP_MODES)
        _check_choice("device", self.device, DEVICES)
        for name in ("window", "windows_per_clip", "batch_size", "epochs"):
            if getattr(self, name) < 1:
                raise TrainerError(f"config: {name} must be >= 1, not {getattr(self, name)}")
        for name in ("warmup_epochs", "num_workers", "seed", "precise_bn"):
            if getattr(self, name) < 0:
                raise TrainerError(f"config: {name} must be >= 0, not {getattr(self, name)}")
        if not all(math.isfinite(getattr(self, n)) for n in ("lr", "weight_decay", "grad_clip")):
            raise TrainerError("config: lr, weight_decay and grad_clip must be finite numbers")
        if self.lr <= 0 or self.weight_decay < 0 or self.grad_clip < 0:
            raise TrainerError("config: lr must be > 0, weight_decay and grad_clip >= 0")
        if self.eval_stride is not None and not 1 <= self.eval_stride <= self.window:
            # A stride beyond the window would skip frames that evaluation promises to score.
            raise TrainerError(
                f"config: eval_stride must be in [1, window={self.window}] or null, "
                f"not {self.eval_stride}"
            )
        if self.patience is not None and self.patience < 1:
            raise TrainerError(f"config: patience must be >= 1 or null, not {self.patience}")
        if self.window > self.model.max_frames:
            raise TrainerError(
                f"config: window {self.window} exceeds model.max_frames {self.model.max_frames}"
            )

    @classmethod
    def preset(cls, name: str) -> TrainConfig:
        """The ``tiny`` (minutes on a laptop CPU) or ``paper`` (Adam, 200 epochs) preset."""
        if name == "tiny":
            return cls(model=ModelConfig.preset("tiny"))
        if name == "paper":
            return cls(
                model=ModelConfig.preset("paper"),
                window=50,
                windows_per_clip=1,
                batch_size=32,
                epochs=200,
                optimizer="adam",
                lr=1e-4,
                weight_decay=0.0,
                schedule="cosine",
                warmup_epochs=5,
                grad_clip=1.0,
                num_workers=4,
                patience=None,
                precise_bn=50,
            )
        raise TrainerError(f"unknown preset {name!r}; expected one of {', '.join(PRESETS)}")

    def to_dict(self) -> dict[str, Any]:
        """Plain nested dict (tuples as lists) that YAML and ``torch.load`` both accept."""
        return _plain(dataclasses.asdict(self))

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TrainConfig:
        """Build from a (possibly partial) nested dict; missing keys keep the ``tiny`` defaults.

        Unknown keys raise :class:`TrainerError` naming the dotted key.
        """
        if not isinstance(data, dict):
            raise TrainerError("config must be a mapping of keys to values")
        base = cls.preset("tiny")
        values: dict[str, Any] = {}
        for key, value in data.items():
            if key not in _field_names(cls):
                raise TrainerError(f"unknown config key {key!r}")
            if key == "model":
                values[key] = _sub_config(ModelConfig, base.model, value, "model")
            elif key == "loss":
                values[key] = _sub_config(LossWeights, base.loss, value, "loss")
            else:
                values[key] = _coerce(key, value, getattr(base, key))
        try:
            return cls(**{**_shallow(base), **values})
        except TrainerError:
            raise
        except (TypeError, ValueError) as exc:
            raise TrainerError(f"invalid config: {exc}") from exc


def _check_choice(name: str, value: str, choices: tuple[str, ...]) -> None:
    if value not in choices:
        raise TrainerError(f"config: {name} must be one of {', '.join(choices)}, not {value!r}")


def _field_names(cls: type) -> set[str]:
    return {f.name for f in dataclasses.fields(cls)}


def _shallow(obj: Any) -> dict[str, Any]:
    return {f.name: getattr(obj, f.name) for f in dataclasses.fields(obj)}


def _plain(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    return value


def _sub_config(cls: type, base: Any, data: Any, prefix: str) -> Any:
    """Merge ``data`` into the dataclass instance ``base`` (a model or loss config)."""
    if not isinstance(data, dict):
        raise TrainerError(f"config key {prefix!r} must be a mapping")
    names = _field_names(cls)
    merged = _shallow(base)
    for key, value in data.items():
        if key not in names:
            raise TrainerError(f"unknown config key {prefix + '.' + key!r}")
        merged[key] = _coerce(f"{prefix}.{key}", value, merged[key])
    try:
        return cls(**merged)
    except (TypeError, ValueError) as exc:
        raise TrainerError(f"invalid {prefix} config: {exc}") from exc


def _coerce(name: str, value: Any, default: Any) -> Any:
    """Convert a YAML value to the type of the field's default, or fail naming the key.

    YAML reads ``1e-3`` as a string (it wants ``1.0e-3``), so numbers are
    parsed from strings too; bools are never taken for numbers.
    """
    if value is None or default is None:
        return value
    try:
        if isinstance(default, bool):
            if isinstance(value, bool):
                return value
            raise ValueError
        if isinstance(default, int):
            if isinstance(value, bool) or (isinstance(value, float) and not value.is_integer()):
                raise ValueError
            return int(value)
        if isinstance(default, float):
            if isinstance(value, bool):
                raise ValueError
            return float(value)
        if isinstance(default, str):
            if not isinstance(value, str):
                raise ValueError
            return value
        if isinstance(default, tuple | list):
            if not isinstance(value, list | tuple):
                raise ValueError
            return tuple(value)
    except (TypeError, ValueError):
        raise TrainerError(
            f"config key {name!r}: {value!r} is not a valid {type(default).__name__}"
        ) from None
    return value


class _Yaml12Loader(yaml.SafeLoader):
    """``yaml.SafeLoader`` whose booleans are only true / false, as in YAML 1.2.

    YAML 1.1 also reads on / off / yes / no as booleans, so ``--set amp=off`` or
    ``amp: off`` in a file would arrive as ``False`` instead of the choice ``"off"``.
    """


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


def parse_overrides(pairs: list[str]) -> dict[str, Any]:
    """``["model.dim=64", "epochs=3"]`` → ``{"model": {"dim": 64}, "epochs": 3}``.

    Values are parsed as YAML scalars (``null``, ``true``, ``[3, 5]`` ...).
    """
    tree: dict[str, Any] = {}
    for pair in pairs:
        key, sep, raw = pair.partition("=")
        key = key.strip()
        if not sep or not key:
            raise TrainerError(f"--set expects key=value, got {pair!r}")
        try:
            value = load_yaml(raw) if raw.strip() else ""
        except yaml.YAMLError:
            value = raw
        node = tree
        parts = key.split(".")
        for part in parts[:-1]:
            child = node.setdefault(part, {})
            if not isinstance(child, dict):
                raise TrainerError(f"--set {key}: {part!r} is not a section")
            node = child
        node[parts[-1]] = value
    return tree


def _deep_merge(base: dict[str, Any], extra: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    out = dict(base)
    for key, value in extra.items():
        name = f"{prefix}{key}"
        if key not in base:
            raise TrainerError(f"unknown config key {name!r}")
        if isinstance(base[key], dict):
            if not isinstance(value, dict):
                raise TrainerError(f"config key {name!r} is a section; set one of its keys")
            out[key] = _deep_merge(base[key], value, f"{name}.")
        else:
            out[key] = value
    return out


def load_config(spec: str | None = None, overrides: list[str] | None = None) -> TrainConfig:
    """Resolve ``--config`` (``tiny``, ``paper`` or a YAML file) and ``--set`` overrides."""
    spec = spec or "tiny"
    if spec in PRESETS:
        data = TrainConfig.preset(spec).to_dict()
    else:
        path = Path(spec)
        if not path.is_file():
            raise TrainerError(
                f"--config {spec!r} is neither a preset ({', '.join(PRESETS)}) nor a file"
            )
        try:
            loaded = load_yaml(path.read_text(encoding="utf-8")) or {}
        except UnicodeDecodeError as exc:
            raise TrainerError(
                f"config {path} is not UTF-8 text (byte {exc.start}); save it as UTF-8"
            ) from None
        except yaml.YAMLError as exc:
            mark = getattr(exc, "problem_mark", None)
            where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
            problem = getattr(exc, "problem", None) or "unparsable"
            raise TrainerError(f"config {path} is not valid YAML{where}: {problem}") from None
        except OSError as exc:
            raise TrainerError(f"cannot read config {path}: {exc.strerror or exc}") from None
        data = TrainConfig.from_dict(loaded).to_dict()
    data = _deep_merge(data, parse_overrides(overrides or []))
    return TrainConfig.from_dict(data)


def config_diff(a: TrainConfig, b: TrainConfig) -> list[str]:
    """Dotted keys whose values differ between two configs (empty when equal)."""
    out: list[str] = []

    def walk(x: Any, y: Any, prefix: str) -> None:
        if isinstance(x, dict) and isinstance(y, dict):
            for key in sorted(set(x) | set(y)):
                walk(x.get(key), y.get(key), f"{prefix}{key}.")
        elif x != y:
            out.append(f"{prefix[:-1]}: {x!r} != {y!r}")

    walk(a.to_dict(), b.to_dict(), "")
    return out


def save_config(cfg: TrainConfig, path: Path) -> None:
    path.write_text(yaml.safe_dump(cfg.to_dict(), sort_keys=False))
