"""The MSCT detector: configuration, model and loss (pure PyTorch)."""

from .config import ModelConfig
from .loss import LossParts, LossWeights, msct_loss
from .msct import MSCT, MSCTOutput

__all__ = ["MSCT", "LossParts", "LossWeights", "MSCTOutput", "ModelConfig", "msct_loss"]
