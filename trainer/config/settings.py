"""Training configuration: the dataclass, the presets, YAML files and ``key=value`` overrides.

A run is its config: ``mscct-train run --config tiny --set model.dim=64 --set epochs=3``
resolves the preset (a YAML file in :mod:`trainer.presets`) or a YAML file of the user's,
applies the dotted overrides and records the result as ``config.yaml`` in the run
directory, so that the run can be repeated. OmegaConf merges the layers and checks every
key and type against the dataclasses; their ``__post_init__`` checks the values, every
number against its documented range (:mod:`trainer.config.ranges`).

Config values are data: a string holding ``${`` (an OmegaConf interpolation such as
``${oc.env:VAR}``) is refused in a file, a ``--set`` value and a checkpoint's config
alike, so nothing from the environment or elsewhere ever enters a config.
"""

from __future__ import annotations

import dataclasses
import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

import yaml
from omegaconf import OmegaConf
from omegaconf.errors import ConfigAttributeError, ConfigKeyError, OmegaConfBaseException

from schemas.cli_errors import UserError
from schemas.safe_files import RefusedFile, read_text_inside
from schemas.streams import STREAMS as SCHEMA_STREAMS
from trainer.config.detector_sections import detector_layers, preset_layers
from trainer.config.ranges import CONFIG_RANGES, out_of_range
from trainer.config.yaml_file import MAX_CONFIG_BYTES, load_yaml
from trainer.evaluate.clip_aggregate import AGGREGATES
from trainer.model import LossWeights, model_config
from trainer.presets import preset_names

OPTIMIZERS = ("adam", "adamw")
SCHEDULES = ("cosine", "constant")
AMP_MODES = ("auto", "off", "bf16")
DEVICES = ("auto", "cpu", "cuda")
#: The visual streams a store can hold, in the order items and errors list them (the
#: table's visual arrays, :data:`schemas.streams.STREAMS`).
STREAMS = SCHEMA_STREAMS
#: Config keys added after runs were saved whose default is not how those runs computed:
#: a stored config (a checkpoint's) without one of them read as the code before the key
#: did (:meth:`TrainConfig.from_stored`), not as today's default. Keys whose default is
#: the old behaviour need no entry: a missing key takes the default anyway.
LEGACY_CONFIG: dict[str, dict[str, Any]] = {
    "model": {"dca_form": "diff_transformer"},  # the only DCA before the key
}


class TrainerError(UserError, RuntimeError):
    """A user-facing error (bad config, store, checkpoint): printed as one line, exit code 2.

    A :class:`~schemas.UserError` (and still a ``RuntimeError``, as it always was)."""


@dataclass
class DataConfig:
    """What the training items carry.

    ``streams``: the visual streams read for every training window, ``face`` (item key
    ``"video"``, ``(window, S, S, 3)``) and/or ``mouth`` (item key ``"mouth"``,
    ``(window, 88, 88)``), with the same window, draws and mask. The model's own stream
    (``model.visual_input``) is always read as well (:attr:`TrainConfig.streams`), so
    ``model.visual_input=mouth`` alone still trains; ``streams: [mouth]`` then reads
    only the mouth crops.
    """

    streams: list[str] = dataclasses.field(default_factory=lambda: ["face"])

    def __post_init__(self) -> None:
        if not self.streams:
            raise TrainerError(
                f"config: data.streams must list one or more of {', '.join(STREAMS)}"
            )
        for name in self.streams:
            _check_choice("data.streams", name, STREAMS)
        if len(set(self.streams)) != len(self.streams):
            raise TrainerError(f"config: data.streams lists a stream twice: {self.streams}")


@dataclass
class EvalConfig:
    """How a clip's score is made from its windows' scores, wherever clips are scored
    (validation, test, ``mscct-train eval`` and ``predict``).

    ``aggregate``: ``mean`` | ``max`` | ``logsumexp`` (:mod:`trainer.evaluate.clip_aggregate`).
    """

    aggregate: str = "mean"

    def __post_init__(self) -> None:
        _check_choice("eval.aggregate", self.aggregate, AGGREGATES)


@dataclass
class TrainConfig:
    """Everything that determines a training run besides the data.

    ``window`` is the number of frames per training window (the model sees
    audio ``(B, window, 104)`` and video ``(B, 3, window, S, S)``, or ``(B, 1, window, 88,
    88)`` mouth crops with ``model.visual_input=mouth``, :mod:`trainer.data.streams`); an epoch draws
    ``windows_per_clip`` random windows from every training clip.
    ``schedule='cosine'`` warms the learning rate up linearly for
    ``warmup_epochs`` and then decays it to zero along a half cosine, per step.
    ``grad_clip`` is a max global gradient norm (0 disables clipping).
    ``patience`` stops training after that many epochs without a better val AUC
    (None: never stop early). ``precise_bn`` is the number of training batches used to
    recompute BatchNorm statistics before each evaluation (0: keep the running averages).
    ``sync_every`` is the number of steps between host reads of the running losses: the
    loop keeps them on the device, reads them (and checks them for a non-finite loss, naming
    the first bad step) every ``sync_every`` steps and at the end of every epoch, and the
    progress bar shows the loss of the latest read. ``compile`` runs the training step's
    model forward and loss under ``torch.compile`` (evaluation and precise BN stay eager).
    ``eval`` says how clip scores are made from window scores (:class:`EvalConfig`).

    The fields have no defaults: the presets' YAML files hold the values, so build one with
    :func:`load_config`, :meth:`preset` or :meth:`from_dict`.
    """

    model: Any  # the detector's config (trainer.model.registry); a mapping until built
    window: int
    windows_per_clip: int
    batch_size: int
    epochs: int
    optimizer: str
    lr: float
    weight_decay: float
    schedule: str
    warmup_epochs: int
    grad_clip: float
    loss: LossWeights
    seed: int
    num_workers: int
    eval_stride: int | None
    amp: str
    device: str
    patience: int | None
    precise_bn: int
    data: DataConfig
    sync_every: int
    compile: bool
    eval: EvalConfig

    def __post_init__(self) -> None:
        if isinstance(self.model, dict):  # the section of model.name, checked by its dataclass
            self.model = model_config(self.model)
        problems = out_of_range(self.to_dict(), CONFIG_RANGES)
        if problems:
            raise TrainerError(f"config: {problems[0]}")
        _check_choice("optimizer", self.optimizer, OPTIMIZERS)
        _check_choice("schedule", self.schedule, SCHEDULES)
        _check_choice("amp", self.amp, AMP_MODES)
        _check_choice("device", self.device, DEVICES)
        for name in ("window", "windows_per_clip", "batch_size", "epochs", "sync_every"):
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

    @property
    def streams(self) -> tuple[str, ...]:
        """The visual streams training reads: ``data.streams`` and the model's
        ``visual_input``, in :data:`STREAMS` order."""
        wanted = {*self.data.streams, self.model.visual_input}
        return tuple(name for name in STREAMS if name in wanted)

    @classmethod
    def preset(cls, name: str) -> TrainConfig:
        """The preset ``name`` (``tiny`` or ``paper``), read from ``trainer/presets/<name>.yaml``."""
        layers, size = _preset_layers(name)
        return _build(*layers, size=size)

    def to_dict(self) -> dict[str, Any]:
        """Plain nested dict (tuples as lists) that YAML and ``torch.load`` both accept."""
        return dataclasses.asdict(self) | {"model": self.model.to_dict()}

    @classmethod
    def from_stored(cls, data: dict[str, Any]) -> TrainConfig:
        """A config an earlier run saved (a checkpoint's): :meth:`from_dict`, with each key
        of :data:`LEGACY_CONFIG` it lacks set to its legacy value."""
        if not isinstance(data, dict):
            raise TrainerError("config must be a mapping of keys to values")
        filled = dict(data)
        for section, legacy in LEGACY_CONFIG.items():
            stored = data.get(section, {})
            if (
                section == "model"
                and isinstance(stored, dict)
                and stored.get("name", "msct") != "msct"
            ):
                continue  # the legacy model keys are MSCT's; other detectors have none
            if isinstance(stored, dict):
                filled[section] = {**legacy, **stored}
        return cls.from_dict(filled)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TrainConfig:
        """Build from a (possibly partial) nested dict; missing keys keep the ``tiny`` values.

        Unknown keys and values of the wrong type raise :class:`TrainerError` naming the
        dotted key.
        """
        if not isinstance(data, dict):
            raise TrainerError("config must be a mapping of keys to values")
        return _build(*_preset_layers("tiny")[0], data)


def _check_choice(name: str, value: str, choices: tuple[str, ...]) -> None:
    if value not in choices:
        raise TrainerError(f"config: {name} must be one of {', '.join(choices)}, not {value!r}")


def _preset_layers(name: str) -> tuple[list[dict[str, Any]], str]:
    """The layers of a preset and its size (:func:`trainer.config.detector_sections.preset_layers`)."""
    try:
        return preset_layers(name)
    except ValueError as exc:
        raise TrainerError(str(exc)) from None


def _build(
    *layers: dict[str, Any], overrides: list[str] | None = None, size: str = "tiny"
) -> TrainConfig:
    """Merge ``layers`` (later wins) over the dataclass schema, then apply ``overrides``.

    OmegaConf rejects unknown keys and values that do not fit a field's type (it converts
    ``"1e-3"`` to a float but never a bool to a number); building the dataclasses then
    runs their value checks. Every failure becomes one :class:`TrainerError` line. The
    ``model`` and ``loss`` sections are those of the detector the config names, of
    ``size`` where no layer gives them (:func:`trainer.config.detector_sections.detector_layers`).
    """
    parsed = _parse_overrides(overrides or [])
    for layer in layers:
        _refuse_interpolation(layer, "")
    for key, value in parsed:
        _refuse_interpolation(value, key)
    try:
        layers = tuple(detector_layers(layers, parsed, size))
        merged = OmegaConf.merge(OmegaConf.structured(TrainConfig), *layers)
        for key, value in parsed:
            # One key at a time, so that a rejected value is reported under its dotted key.
            OmegaConf.update(merged, key, value, merge=True)
        return cast(TrainConfig, OmegaConf.to_object(merged))
    except OmegaConfBaseException as exc:
        if _interrupted(exc):  # Ctrl-C inside OmegaConf, reworded by it: still Ctrl-C
            raise KeyboardInterrupt from None
        raise TrainerError(_one_line(exc)) from None
    except TrainerError:  # a UserError, hence a ValueError: already one line
        raise
    except ValueError as exc:  # ModelConfig's and LossWeights' checks
        raise TrainerError(f"invalid config: {exc}") from None


def _refuse_interpolation(value: Any, key: str) -> None:
    """Refuse a string holding ``${`` anywhere in ``value`` (nested dicts and lists): OmegaConf
    would resolve it (``${oc.env:HOME}`` reads the environment), and config values are data."""
    if isinstance(value, str) and "${" in value:
        raise TrainerError(
            f"config key {key or '(top level)'!r}: {value[:80]!r} holds '${{'; config values "
            "are data, never interpolated"
        )
    if isinstance(value, dict):
        for name, item in value.items():
            _refuse_interpolation(item, f"{key}.{name}" if key else str(name))
    elif isinstance(value, list):
        for item in value:
            _refuse_interpolation(item, key)


def _interrupted(exc: BaseException | None) -> bool:
    """Whether a KeyboardInterrupt is among the causes or contexts of ``exc``."""
    seen = 0
    while exc is not None and seen < 100:
        if isinstance(exc, KeyboardInterrupt):
            return True
        exc, seen = exc.__cause__ or exc.__context__, seen + 1
    return False


def _parse_overrides(pairs: list[str]) -> list[tuple[str, Any]]:
    """``["model.dim=64", "amp=off"]`` → ``[("model.dim", 64), ("amp", "off")]``.

    Values are parsed as YAML scalars (``null``, ``true``, ``[3, 5]`` ...) in the config
    files' dialect; what does not parse stays the string it was.
    """
    parsed: list[tuple[str, Any]] = []
    for pair in pairs:
        key, sep, raw = pair.partition("=")
        if not sep or not key.strip():
            raise TrainerError(f"--set expects key=value, got {pair!r}")
        try:
            value = load_yaml(raw) if raw.strip() else ""
        except yaml.YAMLError:
            value = raw
        parsed.append((key.strip(), value))
    return parsed


def _one_line(exc: OmegaConfBaseException) -> str:
    """OmegaConf's reason, led by the dotted key, without its multi-line context."""
    reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
    key = exc.full_key
    if isinstance(exc, ConfigKeyError | ConfigAttributeError):
        return f"unknown config key {key!r}: {reason}"
    return f"config key {key!r}: {reason}" if key else f"invalid config: {reason}"


def _read_file(spec: str) -> dict[str, Any]:
    """A user's config file as a plain mapping, or a one-line :class:`TrainerError`.

    The path is the user's, links included; the file it leads to must be a regular file
    of at most :data:`~trainer.config.yaml_file.MAX_CONFIG_BYTES` (a FIFO would block the
    read, a device never end), opened once by :func:`schemas.safe_files.read_text_inside`.
    """
    path = Path(spec)
    if not os.path.lexists(path):
        raise TrainerError(
            f"--config {spec!r} is neither a preset ({', '.join(preset_names())}) nor a file"
        )
    try:
        text = read_text_inside(os.path.realpath(path), max_bytes=MAX_CONFIG_BYTES, what="config")
        loaded = load_yaml(text) or {}
    except RefusedFile as exc:
        raise TrainerError(str(exc).replace(os.path.realpath(path), str(path))) from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(exc, "problem", None) or "unparsable"
        raise TrainerError(f"config {path} is not valid YAML{where}: {problem}") from None
    except OSError as exc:
        raise TrainerError(f"cannot read config {path}: {exc.strerror or exc}") from None
    if not isinstance(loaded, dict):
        raise TrainerError("config must be a mapping of keys to values")
    return loaded


def load_config(spec: str | None = None, overrides: list[str] | None = None) -> TrainConfig:
    """Resolve ``--config`` (``tiny``, ``paper``, a detector's preset or a YAML file) and
    ``--set`` overrides.

    A file need not list every key: it is read over the ``tiny`` preset.
    """
    spec = spec or "tiny"
    if spec in preset_names():
        layers, size = _preset_layers(spec)
        return _build(*layers, overrides=overrides, size=size)
    return _build(*_preset_layers("tiny")[0], _read_file(spec), overrides=overrides)


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
