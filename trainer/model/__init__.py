"""The detectors (pure PyTorch): MSCT and the baselines, each registered by ``model.name``.

Importing this package registers every detector module listed below (as timm's model
modules do); :func:`build_model` and :func:`detector_loss` serve the trainer.
"""

from . import mds, mrdf, msct_detector, unimodal  # noqa: F401  (each registers its detectors)
from .config import ModelConfig
from .loss import LossParts, LossWeights, msct_loss
from .msct import MSCT, MSCTOutput
from .outputs import DetectorOutput
from .registry import (
    Reads,
    build_model,
    detector_loss,
    detector_names,
    detector_reads,
    get_detector,
    model_config,
)

__all__ = [
    "MSCT",
    "DetectorOutput",
    "LossParts",
    "LossWeights",
    "MSCTOutput",
    "ModelConfig",
    "Reads",
    "build_model",
    "detector_loss",
    "detector_names",
    "detector_reads",
    "get_detector",
    "model_config",
    "msct_loss",
]
