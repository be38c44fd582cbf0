"""Leading-silence detection on whole video frames.

FakeAVCeleb's fake clips tend to begin with a short silence, a shortcut a detector
can learn instead of the manipulation. Trimming it cuts the same number of whole
40 ms frames from the audio and video tensors, so they stay aligned.

Rule: the energy (dB of the mean square, int16 units) of each frame's audio is
compared with the clip's speech level, the 95th percentile of those energies (a
loud peak does not move it). The first frame within ``threshold_db`` of that
level starts the speech; earlier frames are silence. A clip whose level is below
``silent_clip_db`` is silent throughout and is not trimmed, and at least
``min_keep`` frames are always kept, so a clip is never trimmed away.

Both thresholds shape the stored tensors, so they are settings of the store's
recipe (``silence_threshold_db``, ``silent_clip_db`` of
:class:`schemas.recipe.Recipe`); the defaults here are the recipe's defaults.
"""

from __future__ import annotations

import numpy as np

from schemas.recipe import Recipe

# The recipe's defaults are the one source of these numbers (see schemas.recipe.Recipe).
DEFAULT_THRESHOLD_DB = Recipe.silence_threshold_db  # 30 dB below the speech level
SPEECH_PERCENTILE = 95.0
# 30 dB, about -60 dBFS in int16 units: below this the "speech" is noise or nothing at all.
SILENT_CLIP_DB = Recipe.silent_clip_db


def frame_energy_db(signal: np.ndarray, samples_per_frame: int, num_frames: int) -> np.ndarray:
    """Energy in dB of each video frame's audio: ``signal`` (N,) → ``(num_frames,)``.

    Frames past the end of the signal get -inf energy (they are silent).
    """
    x = np.zeros(samples_per_frame * num_frames, np.float64)
    n = min(len(signal), len(x))
    x[:n] = signal[:n]
    power = np.square(x).reshape(num_frames, samples_per_frame).mean(axis=1)
    with np.errstate(divide="ignore"):
        return 10.0 * np.log10(power)


def leading_silence_frames(
    signal: np.ndarray,
    sample_rate: int,
    fps: float,
    num_frames: int,
    threshold_db: float = DEFAULT_THRESHOLD_DB,
    min_keep: int = Recipe.min_frames,
    silent_clip_db: float = SILENT_CLIP_DB,
) -> int:
    """How many whole leading video frames are silent (0 .. ``num_frames - min_keep``).

    ``signal`` is ``(N,)`` int16-scaled mono samples at ``sample_rate``; frame ``t``
    is its samples ``[t·sample_rate/fps, (t+1)·sample_rate/fps)``.
    """
    if num_frames <= min_keep:
        return 0
    energy = frame_energy_db(signal, round(sample_rate / fps), num_frames)
    finite = energy[np.isfinite(energy)]
    if finite.size == 0:
        return 0
    level = float(np.percentile(finite, SPEECH_PERCENTILE))
    if level < silent_clip_db:
        return 0
    loud = np.flatnonzero(energy >= level - threshold_db)
    first = int(loud[0]) if loud.size else 0
    return max(0, min(first, num_frames - min_keep))
