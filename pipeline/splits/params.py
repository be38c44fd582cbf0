"""What a split request is: its parameters, checked on construction, and the split's error.

``SplitParams`` is what :func:`pipeline.splits.split.make_split` is asked for; its
range and combination rules are checked here, before any manifest is read, so a
bad request fails early with a ``SplitError`` saying why. ``SplitError`` is the
error every split step raises. The parameters are recorded in the store with
the split table (``to_dict``).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any

from schemas.cli_errors import UserError

_RATIO_TOLERANCE = 1e-6


class SplitError(UserError):
    """The split request cannot be met; the message says why."""


@dataclass(frozen=True)
class SplitParams:
    """How to split. Validated on construction (raises ``SplitError``).

    ``ratios`` are train / val / test fractions of identities; with ``folds``
    the test ratio is ignored and val takes val / (train + val) of the
    identities outside the test fold. ``keep_low_face_rate`` lets clips
    flagged ``low_face_rate`` take part (left out by default).
    ``leave_out_little_speech`` leaves out clips flagged ``little_speech``
    (:mod:`pipeline.clip.speech`; they take part by default: the flag is an energy rule
    that can mistake speech under music for none).
    ``leave_out_low_frontal_rate`` leaves out clips flagged ``low_frontal_rate``
    (:mod:`pipeline.clip.head_pose`: mostly turned or badly fitted heads; they take part by
    default: the limits are set on a generic face model, not yet measured on a dataset).
    ``strict_identities`` keeps every fake's target identities in its part.
    """

    balance: bool = False
    seed: int = 0
    ratios: tuple[float, float, float] = (0.7, 0.15, 0.15)
    per_category: int | None = None
    folds: int | None = None
    fold: int | None = None
    keep_low_face_rate: bool = False
    strict_identities: bool = False
    leave_out_little_speech: bool = False
    leave_out_low_frontal_rate: bool = False

    def __post_init__(self) -> None:
        ratios = tuple(float(r) for r in self.ratios)
        object.__setattr__(self, "ratios", ratios)
        if len(ratios) != 3:
            raise SplitError(f"ratios must be three numbers (train,val,test), got {len(ratios)}")
        if any(not math.isfinite(r) or r < 0 for r in ratios):
            raise SplitError(f"ratios must be non-negative numbers, got {_fmt(ratios)}")
        if abs(sum(ratios) - 1.0) > _RATIO_TOLERANCE:
            raise SplitError(f"ratios must sum to 1, got {_fmt(ratios)} (sum {sum(ratios):g})")
        train, val, test = ratios
        if train <= 0:
            raise SplitError("the train ratio must be > 0")
        if val <= 0:
            # The trainer selects checkpoints on val; without it the test set would be used.
            raise SplitError("the val ratio must be > 0: checkpoints are selected on val")
        if (self.folds is None) != (self.fold is None):
            raise SplitError("--folds and --fold go together (e.g. --folds 5 --fold 0)")
        if self.folds is None and test <= 0:
            raise SplitError("the test ratio must be > 0 (or use --folds K --fold I)")
        if self.folds is not None and self.fold is not None:
            if self.folds < 2:
                raise SplitError(f"--folds must be at least 2, got {self.folds}")
            if not 0 <= self.fold < self.folds:
                raise SplitError(f"--fold must be in 0..{self.folds - 1}, got {self.fold}")
        if self.per_category is not None and self.per_category < 1:
            raise SplitError(f"--per-category must be at least 1, got {self.per_category}")
        if self.strict_identities and self.folds is not None and not self.balance:
            # Components vary in size: K equal folds of whole components are rarely possible.
            raise SplitError("--strict-identities with --folds needs --balance")

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready parameters, recorded in the store with the split table."""
        data = asdict(self)
        data["ratios"] = list(self.ratios)
        return data


def parse_ratios(text: str) -> tuple[float, float, float]:
    """Parse ``"0.7,0.15,0.15"``; range checks happen in ``SplitParams``."""
    parts = [p.strip() for p in text.split(",")]
    if len(parts) != 3:
        raise SplitError(f"--ratios takes three comma-separated numbers, got {text!r}")
    try:
        train, val, test = (float(p) for p in parts)
    except ValueError:
        raise SplitError(f"--ratios takes three comma-separated numbers, got {text!r}") from None
    return train, val, test


def _fmt(ratios: tuple[float, ...]) -> str:
    return ",".join(f"{r:g}" for r in ratios)
