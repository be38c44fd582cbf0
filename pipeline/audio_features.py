"""104 audio features per video frame: four stacked 10 ms frames of MFCC+Δ or log filterbanks.

Both recipes are python_speech_features' ``mfcc`` / ``logfbank`` with a 25 ms window
and a 10 ms hop on the 16 kHz mono signal in int16 units (what ``scipy.io.wavfile.read``
returns, as the peer scripts feed it), so the values match theirs. They are built from
the library's own steps rather than called whole, only so that one matrix product runs
without waking OpenBLAS's threads (see :func:`_filterbank_energies`):

- ``mfcc``: 13 cepstra with the log frame energy in c0 (``appendEnergy=True``) and
  their deltas (N=2): 26 per 10 ms.
- ``fbank``: 26 log mel filterbank energies (``logfbank(nfilt=26)``), the AV-HuBERT /
  MRDF recipe: 26 per 10 ms.

Alignment: a 40 ms video frame holds four 10 ms hops, so row ``t`` of the result is
the 10 ms frames ``4t, 4t+1, 4t+2, 4t+3`` concatenated in that order
(``out[t, 26*j + c] = feat[4t + j, c]``). python_speech_features yields about
``4T - 1`` frames for ``T`` video frames of audio (the last window does not fit),
and the audio stream may be a little shorter or longer than the video: the 10 ms
frames are trimmed to ``4T``, or padded to it by repeating the last frame (edge
padding), so that the result has exactly ``T`` rows. No normalisation here: the
trainer owns it.
"""

from __future__ import annotations

import numpy as np
from python_speech_features import delta, sigproc
from python_speech_features.base import get_filterbanks, lifter
from scipy.fftpack import dct

HOPS_PER_FRAME = 4
CHANNELS_PER_HOP = 26
WINDOW_S = 0.025
HOP_S = 0.010
NFFT = 512  # next power of two above the 400-sample window at 16 kHz
NUM_CEPSTRA = 13
LIFTER = 22  # the library's default cepstral lifter
PREEMPHASIS = 0.97  # the library's default pre-emphasis


def hop_features(signal: np.ndarray, sample_rate: int, features: str = "mfcc") -> np.ndarray:
    """10 ms features of a mono ``signal`` (N,): shape ``(F, 26)`` float32.

    ``features`` is ``'mfcc'`` (13 MFCC + 13 Δ) or ``'fbank'`` (26 log filterbanks).
    """
    if features not in ("mfcc", "fbank"):
        raise ValueError(f"features must be 'mfcc' or 'fbank', not {features!r}")
    x = np.asarray(signal, dtype=np.float64)
    nfft = max(NFFT, 1 << int(np.ceil(np.log2(WINDOW_S * sample_rate))))
    energies, frame_energy = _filterbank_energies(x, sample_rate, nfft)
    if features == "fbank":
        return np.log(energies).astype(np.float32)
    cep = lifter(dct(np.log(energies), type=2, axis=1, norm="ortho")[:, :NUM_CEPSTRA], LIFTER)
    cep[:, 0] = np.log(frame_energy)  # appendEnergy: c0 is the log frame energy
    return np.concatenate([cep, delta(cep, 2)], axis=1).astype(np.float32)


def _filterbank_energies(
    x: np.ndarray, sample_rate: int, nfft: int
) -> tuple[np.ndarray, np.ndarray]:
    """``python_speech_features.fbank`` of ``x`` (N,): mel energies (F, 26) and frame energies (F,).

    The same steps from the library's own pieces, except the product of the power
    spectra with the filterbank: the library's ``numpy.dot`` is a BLAS call big enough
    for OpenBLAS to wake its worker threads, which then spin for a while after it
    returns; that spinning cost several times the feature computation itself (about
    8 ms of CPU per clip on two cores). ``einsum`` does the product in one thread.
    """
    emphasised = sigproc.preemphasis(x, PREEMPHASIS)
    frames = sigproc.framesig(emphasised, WINDOW_S * sample_rate, HOP_S * sample_rate)
    power = sigproc.powspec(frames, nfft)  # (F, nfft // 2 + 1)
    eps = np.finfo(float).eps  # the library's guard against log(0)
    frame_energy = power.sum(axis=1)
    frame_energy = np.where(frame_energy == 0, eps, frame_energy)
    bank = get_filterbanks(CHANNELS_PER_HOP, nfft, sample_rate, 0, sample_rate / 2)
    energies = np.einsum("fk,bk->fb", power, bank)
    return np.where(energies == 0, eps, energies), frame_energy


def stack_to_frames(hops: np.ndarray, num_frames: int) -> np.ndarray:
    """``(F, 26)`` 10 ms features → ``(num_frames, 104)``, trimmed or edge-padded to 4·T hops."""
    want = HOPS_PER_FRAME * num_frames
    if len(hops) == 0:
        raise ValueError("no audio features to stack")
    if len(hops) < want:
        hops = np.concatenate([hops, np.repeat(hops[-1:], want - len(hops), axis=0)])
    return np.ascontiguousarray(hops[:want].reshape(num_frames, HOPS_PER_FRAME * hops.shape[1]))


def frame_features(
    signal: np.ndarray, sample_rate: int, num_frames: int, features: str = "mfcc"
) -> np.ndarray:
    """Audio features aligned to ``num_frames`` 40 ms video frames: ``(T, 104)`` float32."""
    return stack_to_frames(hop_features(signal, sample_rate, features), num_frames)
