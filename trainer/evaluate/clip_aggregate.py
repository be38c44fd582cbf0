"""Window-to-clip aggregation of fake probabilities: ``eval.aggregate``.

A clip is scored window by window; its score is one of

* ``mean`` (the default): the mean of its windows' probabilities, as MRDF and AVAD average;
* ``max``: the highest window probability, as AV-Deepfake1M's Xception baseline takes;
* ``logsumexp``: a soft maximum, as AVH-Align's: the windows' log-odds ``z_i = logit(p_i)``
  are pooled as ``logsumexp(z) − log W`` (W windows) and mapped back with a sigmoid. The
  ``− log W`` keeps a clip whose windows all say ``p`` at ``p``, so 0.5 stays the decision
  threshold; the pooled log-odds lie between the mean and the max of ``z``, near the max
  when one window stands out.

Every choice agrees when a clip has one window. The embedding a clip reports (for the
t-SNE plot) is always the mean of its windows'.
"""

from __future__ import annotations

import numpy as np
from scipy.special import expit, logit

from trainer.evaluate.metrics import aggregate_windows

AGGREGATES: tuple[str, ...] = ("mean", "max", "logsumexp")
#: Probabilities are clipped this far inside (0, 1) before their log-odds are taken, so a
#: window scored exactly 0 or 1 (saturated softmax in float32) gives a finite logit.
LOGIT_EPS = 1e-7


def aggregate_probs(
    clip_index: np.ndarray, prob: np.ndarray, num_clips: int, how: str = "mean"
) -> tuple[np.ndarray, np.ndarray]:
    """Window probabilities ``prob (W, K)`` → per clip ``(num_clips, K)``, and each clip's
    window count ``(num_clips,)``; ``clip_index (W,)`` names each window's clip. Clips with
    no window get NaN (the caller decides whether that is an error)."""
    if how not in AGGREGATES:
        raise ValueError(f"aggregate must be one of {', '.join(AGGREGATES)}, not {how!r}")
    if how == "mean":
        return aggregate_windows(clip_index, prob, num_clips)
    clip_index = np.asarray(clip_index, dtype=np.int64)
    prob = np.asarray(prob, dtype=np.float64)
    counts = np.bincount(clip_index, minlength=num_clips)
    empty = counts == 0
    if how == "max":
        out = _group_max(clip_index, prob, num_clips)
    else:
        z = logit(np.clip(prob, LOGIT_EPS, 1.0 - LOGIT_EPS))
        top = _group_max(clip_index, z, num_clips)
        sums = np.zeros_like(top)
        # Shifted by each clip's maximum, so exp never overflows.
        np.add.at(sums, clip_index, np.exp(z - top[clip_index]))
        with np.errstate(divide="ignore", invalid="ignore"):
            pooled = top + np.log(sums) - np.log(counts).reshape(-1, *([1] * (prob.ndim - 1)))
        out = expit(pooled)
    out[empty] = np.nan
    return out, counts


def _group_max(clip_index: np.ndarray, values: np.ndarray, num_clips: int) -> np.ndarray:
    """The maximum of ``values (W, K)`` per clip → ``(num_clips, K)``, −inf for none."""
    top = np.full((num_clips, *values.shape[1:]), -np.inf)
    np.maximum.at(top, clip_index, values)
    return top
