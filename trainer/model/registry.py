"""The detector registry: ``model.name`` → the detector's config, builder, loss and inputs.

Training, evaluation, prediction and the benchmarks build every model through
:func:`build_model` and take its loss from :func:`detector_loss`, so a detector is added by
writing one module under ``trainer/model/`` whose builder carries the
:func:`register_detector` decorator (as timm's ``register_model``), importing that module
in ``trainer/model/__init__.py``, and writing its presets in ``trainer/presets/``
(``docs/contributing.md``)::

    @register_detector("audio_only", config=UnimodalConfig, loss=unimodal_loss,
                       reads=unimodal_reads, presets={"tiny": "audio_only_tiny",
                                                      "paper": "audio_only"})
    def audio_only(cfg: UnimodalConfig) -> nn.Module:
        return AudioOnly(cfg)

A detector's config is a dataclass with a ``name`` field (its registered name), the
fields the trainer reads of every detector (:class:`DetectorConfig`) and its own; its
``__post_init__`` checks the values (``ValueError``, one line). A config without ``name``
(a checkpoint from before the registry) is MSCT's.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Protocol

from omegaconf import OmegaConf
from omegaconf.errors import ConfigAttributeError, ConfigKeyError, OmegaConfBaseException
from torch import Tensor, nn

from .loss import LossParts, LossWeights

#: The detector of a config that names none (every config saved before the registry).
DEFAULT_DETECTOR = "msct"
#: The preset sizes every detector provides: ``tiny`` (a laptop CPU) and ``paper`` (the
#: size its source describes).
SIZES: tuple[str, ...] = ("tiny", "paper")


class DetectorConfig(Protocol):
    """What the trainer reads of every detector's config (besides its own fields)."""

    name: str  # the registered name
    visual_input: str  # "face" | "mouth": the visual stream its video input is cut from
    frame_head: bool  # a per-frame head trained on the store's frame labels
    max_frames: int  # the longest window it accepts

    def to_dict(self) -> dict[str, Any]: ...


@dataclass(frozen=True)
class Reads:
    """What a detector reads from a store; ``None`` where any value will do.

    ``streams``: the visual streams its input is made of (``()``: none, audio only);
    ``features``: the audio features (``schemas.Recipe.features``: ``mfcc`` | ``fbank``);
    ``crop_size``: the side of the stored face crops; ``window``: the inclusive range of
    training window lengths, in frames.
    """

    streams: tuple[str, ...]
    features: str | None = None
    crop_size: int | None = None
    window: tuple[int, int] | None = None


#: ``loss(cfg, out, audio_label, video_label, label, mask, weights, frame_label)``; labels
#: (B,) int64 with 1 = fake, mask (B, T) bool | None, frame_label (B, T) | None.
LossFn = Callable[
    [Any, Any, Tensor, Tensor, Tensor, Tensor | None, LossWeights, Tensor | None], LossParts
]


@dataclass(frozen=True)
class Detector:
    """One registered detector."""

    name: str
    config: type  # the dataclass of its ``model`` section
    build: Callable[[Any], nn.Module]  # config → an untrained model
    loss: LossFn
    reads: Callable[[Any], Reads]  # config → what it reads from the store
    presets: Mapping[str, str]  # size (``SIZES``) → the preset that holds that size
    # The unimodal heads it has; the others give constant logits (``outputs.no_head``).
    modality_heads: tuple[str, ...] = ("audio", "video")


_REGISTRY: dict[str, Detector] = {}


def register_detector(
    name: str,
    *,
    config: type,
    loss: LossFn,
    reads: Callable[[Any], Reads],
    presets: Mapping[str, str],
    modality_heads: tuple[str, ...] = ("audio", "video"),
) -> Callable[[Callable[[Any], nn.Module]], Callable[[Any], nn.Module]]:
    """Decorator: register the builder it wraps as the detector ``name``;
    ``modality_heads`` are the unimodal heads it has (a head it lacks scores every clip 0.5)."""

    def register(build: Callable[[Any], nn.Module]) -> Callable[[Any], nn.Module]:
        if name in _REGISTRY:
            raise ValueError(f"detector {name!r} is registered twice")
        if set(presets) != set(SIZES):
            raise ValueError(f"detector {name!r} must name a preset for each of {SIZES}")
        if not set(modality_heads) <= {"audio", "video"}:
            raise ValueError(f"detector {name!r}: modality_heads must be audio, video or both")
        heads = tuple(modality_heads)
        _REGISTRY[name] = Detector(name, config, build, loss, reads, dict(presets), heads)
        return build

    return register


def detector_names() -> tuple[str, ...]:
    """Every registered detector: ``msct`` first, then the others by name."""
    return tuple(sorted(_REGISTRY, key=lambda name: (name != DEFAULT_DETECTOR, name)))


def get_detector(name: str) -> Detector:
    """The detector ``name``; ``ValueError`` naming the registered ones otherwise."""
    try:
        return _REGISTRY[name]
    except KeyError:
        raise ValueError(
            f"model.name must be one of {', '.join(detector_names())}, not {name!r}"
        ) from None


def preset_size(preset: str) -> str | None:
    """The size (``tiny`` | ``paper``) a detector preset holds; None for another name."""
    for detector in _REGISTRY.values():
        for size, name in detector.presets.items():
            if name == preset:
                return size
    return None


def model_config(data: Mapping[str, Any]) -> Any:
    """The detector config of a ``model`` section (a plain mapping), its keys and types
    checked by OmegaConf against the detector's dataclass; ``ValueError`` naming the
    dotted key otherwise."""
    name = str(data.get("name", DEFAULT_DETECTOR))
    detector = get_detector(name)
    try:
        section: Any = {**data, "name": name}
        merged = OmegaConf.merge(OmegaConf.structured(detector.config), section)
        return OmegaConf.to_object(merged)
    except OmegaConfBaseException as exc:
        key = f"model.{exc.full_key}" if exc.full_key else "model"
        reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        if isinstance(exc, ConfigKeyError | ConfigAttributeError):
            raise ValueError(
                f"unknown config key {key!r} for model.name={name}: {reason}"
            ) from None
        raise ValueError(f"config key {key!r}: {reason}") from None


def build_model(cfg: DetectorConfig) -> nn.Module:
    """An untrained model of the detector ``cfg.name``."""
    return get_detector(cfg.name).build(cfg)


def detector_loss(cfg: DetectorConfig) -> LossFn:
    """The training loss of the detector ``cfg.name`` (called with ``cfg`` first)."""
    return get_detector(cfg.name).loss


def detector_reads(cfg: DetectorConfig) -> Reads:
    """What the detector of ``cfg`` reads from a store."""
    return get_detector(cfg.name).reads(cfg)
