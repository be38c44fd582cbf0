"""Shot cuts of a clip, found in its decoded frames, and the segments they bound.

A clip cut together from several shots must not be tracked as one shot: a face box
interpolated or smoothed across a cut slides over the frame for dozens of frames and
crops no face. The cuts are found here from the frames themselves, so that a cut
between two shots whose faces the detector sees alike (or does not see at all: a
profile) is found too.

The rule (constants below):

1. **Signature.** Each frame is reduced to a :data:`GRID` × :data:`GRID` RGB image:
   :data:`SAMPLES` × :data:`SAMPLES` point samples per cell, evenly spread over the
   frame, averaged. Whatever the frame size, this reads 4096 pixels a frame (about
   20 µs), and the averaging removes compression noise.
2. **Difference.** ``d[t]`` is the mean absolute difference, in 8-bit levels over
   cells and channels, between the signatures of frames ``t - 1`` and ``t``.
3. **Candidate.** Frame ``t`` starts a new shot when ``d[t]`` exceeds
   :data:`MIN_DIFF`, :data:`RATIO` times the median of ``d`` over the
   :data:`WINDOW` frames on each side (``t`` itself left out), and
   :data:`SPIKE_RATIO` times the second largest ``d`` of the :data:`SPIKE_NEAR`
   frames on each side. A steady clip moves by a level or two a frame; another
   shot differs by tens of levels. The median follows the clip's own level of
   motion (a shaky camera); the spike test keeps a fast pan or zoom, whose
   differences are high over several frames in a row, from being a cut, while a
   one-frame shot between two cuts (one black frame) still is two cuts.
4. **Persistence.** The :data:`HOLD` frames before ``t`` must all differ from the
   :data:`HOLD` frames from ``t`` on by more than the same threshold (every pair).
   A flash, or a hand passing in front of the lens for up to ``HOLD - 1`` frames,
   returns to what was there before, so one of those pairs is close and the
   candidate is refused; a new shot stays different.
5. **Face track, as a second opinion.** When two successive face detections jump
   (the centre moves more than :data:`CUT_SHIFT` box sides, or the side changes by
   more than a factor :data:`CUT_SCALE`) and no cut lies between them, the frame
   between them with the largest ``d`` is a cut if it passes steps 3 and 4 with
   :data:`WEAK_MIN_DIFF` in place of :data:`MIN_DIFF`: two shots of one scene at
   another framing differ less than two scenes, and the jump says where to look. A
   jump with no such frame (the track moved to another person in the same shot) is
   no cut.

Limits: a gradual transition (a dissolve or a fade over more than a few frames) has
no single frame that differs from its neighbours, and is not found; a whip pan of a
few frames looks like a cut and is found as one.
"""

from __future__ import annotations

import functools
import itertools
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

GRID = 16  # signature cells per side
SAMPLES = 4  # point samples per cell side: 64 x 64 samples a frame
#: Least mean difference (8-bit levels) of a cut. Successive frames of one shot of a
#: talking head differ by 0.5-3 levels; two shots by 15-60.
MIN_DIFF = 8.0
#: Least mean difference of a cut that a jump of the face track points at (step 5).
WEAK_MIN_DIFF = 4.0
#: A cut's difference is at least this many times the median around it.
RATIO = 4.0
WINDOW = 12  # frames on each side of the median (about 0.5 s at 25 fps)
#: ... and this many times the second largest difference of its near neighbours.
SPIKE_RATIO = 2.0
SPIKE_NEAR = 2  # frames on each side of the spike test
HOLD = 3  # frames on each side that must differ (flashes of up to 2 frames are no cut)
#: Between successive detections (one detector stride, 0.2 s at the defaults) a head
#: moves a small fraction of its width; half a box side is a new shot or another face.
CUT_SHIFT = 0.5
CUT_SCALE = 1.5


@functools.cache
def _sample_grid(height: int, width: int) -> tuple[np.ndarray, np.ndarray]:
    """Rows ``(side,)`` and columns ``(side,)`` of the point samples of a frame."""
    side = GRID * SAMPLES
    rows = ((np.arange(side) + 0.5) * height / side).astype(np.intp)
    cols = ((np.arange(side) + 0.5) * width / side).astype(np.intp)
    return rows, cols


def signatures(frames: np.ndarray) -> np.ndarray:
    """``(T, H, W, 3)`` uint8 frames → ``(T, GRID, GRID, 3)`` float32 signatures (step 1)."""
    out = np.empty((len(frames), GRID, GRID, 3), np.float32)
    for start in range(0, len(frames), 256):  # bounded temporaries for long clips
        out[start : start + 256] = cell_means(samples(frames[start : start + 256]))
    return out


def samples(frames: np.ndarray) -> np.ndarray:
    """The point samples of step 1: ``(..., H, W, 3)`` uint8 → ``(..., 64, 64, 3)`` uint8."""
    rows, cols = _sample_grid(*frames.shape[-3:-1])
    # Two takes (rows, then columns) cost a quarter of one fancy index of both.
    return frames.take(rows, axis=-3).take(cols, axis=-2)


def cell_means(sampled: np.ndarray) -> np.ndarray:
    """``(T, 64, 64, 3)`` uint8 samples (:func:`samples`) → ``(T, GRID, GRID, 3)`` float32."""
    cells = sampled.reshape(-1, GRID, SAMPLES, GRID, SAMPLES, 3).astype(np.float32)
    return np.asarray(cells.mean(axis=(2, 4)))


def distance(a: np.ndarray, b: np.ndarray) -> float:
    """Mean absolute difference of two signatures ``(GRID, GRID, 3)``, in 8-bit levels."""
    return float(np.abs(a - b).mean())


def frame_differences(sigs: np.ndarray) -> np.ndarray:
    """``d`` (T,) of signatures ``(T, GRID, GRID, 3)``: ``d[t]`` between ``t - 1`` and ``t``, ``d[0] = 0``."""
    d = np.zeros(len(sigs), np.float64)
    if len(sigs) > 1:
        d[1:] = np.abs(np.diff(sigs, axis=0)).mean(axis=(1, 2, 3))
    return d


def _threshold(d: np.ndarray, t: int, floor: float) -> float:
    """The cut threshold at frame ``t`` of the differences ``d`` (T,) (step 3)."""
    around = np.r_[d[max(1, t - WINDOW) : t], d[t + 1 : t + 1 + WINDOW]]
    near = np.sort(np.r_[d[max(1, t - SPIKE_NEAR) : t], d[t + 1 : t + 1 + SPIKE_NEAR]])
    median = float(np.median(around)) if around.size else 0.0
    second = float(near[-2]) if near.size > 1 else 0.0
    return max(floor, RATIO * median, SPIKE_RATIO * second)


def _is_cut(sigs: np.ndarray, d: np.ndarray, t: int, floor: float) -> bool:
    """Steps 3 and 4 at frame ``t`` (1 <= t < T) with ``floor`` as the least difference."""
    limit = _threshold(d, t, floor)
    if d[t] <= limit:
        return False
    before = range(max(0, t - HOLD), t)
    after = range(t, min(len(sigs), t + HOLD))
    return all(distance(sigs[i], sigs[j]) > limit for i in before for j in after)


def box_jumps(boxes: np.ndarray) -> np.ndarray:
    """Whether each pair of successive boxes ``(K, 4)`` jumps (step 5): ``(K - 1,)`` bool."""
    boxes = np.asarray(boxes, np.float64).reshape(-1, 4)
    if len(boxes) < 2:
        return np.zeros(0, np.bool_)
    centre = (boxes[:, :2] + boxes[:, 2:]) / 2
    side = np.maximum(np.maximum(boxes[:, 2] - boxes[:, 0], boxes[:, 3] - boxes[:, 1]), 1e-6)
    shift = np.linalg.norm(np.diff(centre, axis=0), axis=1) / ((side[1:] + side[:-1]) / 2)
    ratio = np.maximum(side[1:] / side[:-1], side[:-1] / side[1:])
    return np.asarray((shift > CUT_SHIFT) | (ratio > CUT_SCALE))


def find_cuts(
    frames: np.ndarray,
    keyframes: Sequence[int] = (),
    boxes: np.ndarray | None = None,
) -> np.ndarray:
    """The first frames of the shots after the first: ``(C,)`` int64, increasing, in ``[1, T)``.

    ``frames`` (T, H, W, 3) uint8; ``keyframes`` (K,) the frames of successive face
    detections and ``boxes`` (K, 4) their boxes, for step 5 (none: steps 1-4 alone).
    """
    return find_cuts_in(signatures(frames), keyframes, boxes)


def find_cuts_in(
    sigs: np.ndarray,
    keyframes: Sequence[int] = (),
    boxes: np.ndarray | None = None,
) -> np.ndarray:
    """:func:`find_cuts` from the frames' signatures ``(T, GRID, GRID, 3)`` (:func:`signatures`).

    A cut at ``t`` is settled once the frames up to ``t + WINDOW`` are known (steps 3-4
    look no further), so a clip streamed frame by frame knows its cuts with that delay.
    """
    d = frame_differences(sigs)
    cuts = {t for t in range(1, len(d)) if d[t] > MIN_DIFF and _is_cut(sigs, d, t, MIN_DIFF)}
    if boxes is not None and len(keyframes) > 1:
        for k in (int(i) for i in np.flatnonzero(box_jumps(boxes))):
            lo, hi = int(keyframes[k]) + 1, int(keyframes[k + 1]) + 1  # cut frames in (k0, k1]
            if hi <= lo or any(lo <= c < hi for c in cuts):
                continue
            t = lo + int(np.argmax(d[lo:hi]))
            if _is_cut(sigs, d, t, WEAK_MIN_DIFF):
                cuts.add(t)
    return np.array(sorted(cuts), np.int64)


def shot_bounds(num_frames: int, cuts: Sequence[int] | np.ndarray) -> list[tuple[int, int]]:
    """The shots ``[(start, stop), ...]`` of ``num_frames`` frames split at ``cuts``."""
    edges = [0, *(int(c) for c in cuts if 0 < c < num_frames), num_frames]
    return [(a, b) for a, b in itertools.pairwise(edges) if b > a]


def valid_runs(valid: np.ndarray, cuts: Sequence[int] | np.ndarray) -> list[tuple[int, int]]:
    """Runs ``[(start, stop), ...]`` of frames with a face (``valid`` (T,) bool), none across a cut."""
    runs = []
    for a, b in shot_bounds(len(valid), cuts):
        flags = np.r_[False, np.asarray(valid[a:b], np.bool_), False]
        edges = np.flatnonzero(np.diff(flags.astype(np.int8)))
        runs += [(a + int(s), a + int(e)) for s, e in zip(edges[::2], edges[1::2], strict=True)]
    return runs


@dataclass(frozen=True)
class Shots:
    """A clip's shots and its frames with a face."""

    cuts: np.ndarray  # (C,) int64: the first frames of the shots after the first
    valid: (
        np.ndarray
    )  # (T,) bool: the frame has a face (pipeline.clip.faces.StrideDetector.with_face)

    def runs(self) -> list[tuple[int, int]]:
        """The runs of frames with a face, none across a cut (:func:`valid_runs`)."""
        return valid_runs(self.valid, self.cuts)
