"""Checkpoint selection: which epoch's weights a run keeps, by its val metrics.

The epoch with the highest **val AUC** of the fused head (an undefined AUC counts as
lowest), then the highest val ACC, then the lowest val log loss; remaining ties keep
the earlier epoch. On a small or easy val part AUC and ACC saturate within a few
epochs, and keeping the first epoch that reached them picks an undertrained model;
the log loss still tells those epochs apart.
"""

from __future__ import annotations

import math
from typing import Any

SELECTION = (
    "val AUC of the fused head, then val ACC, then lower val log loss "
    "(undefined counts as worst); ties keep the earlier epoch"
)
KEY_LENGTH = 3  # [AUC, ACC, -log loss]


def worst_key() -> list[float]:
    """A key every epoch's key beats (no epoch selected yet)."""
    return [-math.inf] * KEY_LENGTH


def val_key(metrics: dict[str, Any]) -> list[float]:
    """Selection key, compared lexicographically (greater is better): [AUC, ACC, -log loss],
    undefined (NaN / None) as -inf."""

    def value(v: Any) -> float:
        return -math.inf if v is None or (isinstance(v, float) and math.isnan(v)) else float(v)

    return [value(metrics.get("auc")), value(metrics.get("acc")), -value(metrics.get("log_loss"))]
