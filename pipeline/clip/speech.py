"""Speech presence: the share of a clip's 40 ms frames that sound like someone speaking.

An audio-visual detector learns from the voice; a clip with no one speaking (a
near-silent track, music, hum) teaches it nothing about the voice and can teach it
shortcuts. The measure is computed in numpy from the 16 kHz mono signal the clip's
audio features are made from, over the stored frames (after leading-silence
trimming), so it costs well under a millisecond per second of audio.

Rule. Each video frame's audio has an energy (dB of the mean square, int16 units,
as in :mod:`pipeline.clip.silence`). A frame counts as speech when all three hold:

1. its energy is above :data:`FLOOR_DB` (-50 dBFS): quieter is no one speaking
   to the microphone, whatever the clip's own level (a clip at -63 dBFS has none);
2. it is within :data:`RELATIVE_DB` of the clip's loud level (the 95th percentile
   of the frames' energies, as the silence trimming uses): the pauses between
   sentences are not speech;
3. the energy rises or falls by at least :data:`MODULATION_DB` within
   :data:`MODULATION_FRAMES` frames either side (about half a second in all):
   speech comes in syllables, a few per second, each a rise and fall of 10 to 30 dB,
   while a steady tone, a held chord, a music bed, hum or noise varies by a few dB.

``speech_fraction`` is the share of the stored frames that count;
:data:`MIN_SPEECH_FRACTION` is the threshold under which a clip is flagged
``little_speech``.

Limits. It is an energy rule, not a recogniser: music with a strong beat, a
crowd, or a door slamming counts as speech, and speech under loud steady music
(whose pauses the music fills) may count less than it should. A flagged clip is
worth a look, not proof that no one speaks; an unflagged one is not proof that
someone does.
"""

from __future__ import annotations

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from pipeline.clip.silence import SPEECH_PERCENTILE, frame_energy_db

#: Frames quieter than this (dB of the mean square in int16 units; 90.3 is full
#: scale, so 40.3 is -50 dBFS) are not speech.
FLOOR_DB = 40.3
#: Frames more than this below the clip's loud level are pauses.
RELATIVE_DB = 30.0
#: How much the energy must move near a frame for it to be speech (syllables).
MODULATION_DB = 10.0
#: How many frames either side that movement is looked for in (6: 240 ms at 25 fps).
MODULATION_FRAMES = 6
#: A clip whose speech_fraction is below this is flagged ``little_speech``.
MIN_SPEECH_FRACTION = 0.2


def speech_fraction(
    signal: np.ndarray, sample_rate: int, fps: float, num_frames: int, start_frame: int = 0
) -> float:
    """Share of the frames ``start_frame .. num_frames - 1`` that count as speech.

    ``signal`` is ``(N,)`` int16-scaled mono samples at ``sample_rate`` from frame 0
    on; frame ``t`` is its samples ``[t·sample_rate/fps, (t+1)·sample_rate/fps)``.
    Frames the signal does not reach are not speech. 0.0 when no frame is asked for.
    """
    stored = num_frames - start_frame
    if stored <= 0:
        return 0.0
    samples_per_frame = round(sample_rate / fps)
    covered = min(num_frames, len(signal) // samples_per_frame) - start_frame
    if covered <= 0:
        return 0.0
    energy = frame_energy_db(signal[start_frame * samples_per_frame :], samples_per_frame, covered)
    # Digital silence is -inf: held just under the floor, so that a jump next to it
    # is finite and the frame itself never counts.
    energy = np.maximum(energy, FLOOR_DB - RELATIVE_DB)
    level = float(np.percentile(energy, SPEECH_PERCENTILE))
    # The clip's ends are padded with their own values: an edge is not a jump.
    windows = sliding_window_view(np.pad(energy, MODULATION_FRAMES, mode="edge"),
                                  2 * MODULATION_FRAMES + 1)  # fmt: skip
    moving = windows.max(axis=1) - windows.min(axis=1) >= MODULATION_DB
    speech = (energy > FLOOR_DB) & (energy >= level - RELATIVE_DB) & moving
    return float(np.count_nonzero(speech)) / stored


def little_speech(fraction: float) -> bool:
    """Whether a clip with this ``speech_fraction`` is flagged ``little_speech``."""
    return fraction < MIN_SPEECH_FRACTION


__all__ = [
    "FLOOR_DB",
    "MIN_SPEECH_FRACTION",
    "MODULATION_DB",
    "MODULATION_FRAMES",
    "RELATIVE_DB",
    "little_speech",
    "speech_fraction",
]
