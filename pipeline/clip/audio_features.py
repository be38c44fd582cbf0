"""104 audio features per video frame: four stacked 10 ms frames of MFCC+Δ or log filterbanks.

Both recipes are python_speech_features' ``mfcc`` / ``logfbank`` with a 25 ms window
and a 10 ms hop on the 16 kHz mono signal in int16 units (what ``scipy.io.wavfile.read``
returns, as the peer scripts feed it), so the values match theirs. They are called with
BLAS held to one thread (see :func:`_one_blas_thread`):

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

import functools
from contextlib import AbstractContextManager
from typing import Any

import numpy as np
from python_speech_features import delta, logfbank, mfcc
from threadpoolctl import ThreadpoolController

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
    with _one_blas_thread():
        if features == "fbank":
            bank = logfbank(x, sample_rate, WINDOW_S, HOP_S, CHANNELS_PER_HOP, nfft,
                            preemph=PREEMPHASIS)  # fmt: skip
            return bank.astype(np.float32)
        cep = mfcc(x, sample_rate, WINDOW_S, HOP_S, NUM_CEPSTRA, CHANNELS_PER_HOP, nfft,
                   preemph=PREEMPHASIS, ceplifter=LIFTER, appendEnergy=True)  # fmt: skip
        return np.concatenate([cep, delta(cep, 2)], axis=1).astype(np.float32)


@functools.cache
def _blas_controller() -> ThreadpoolController:
    """The process's thread-pool libraries, looked up once (the lookup costs milliseconds)."""
    return ThreadpoolController()


def _one_blas_thread() -> AbstractContextManager[Any]:
    """A context in which BLAS runs in the calling thread only.

    The library's filterbank product (``numpy.dot`` of the power spectra, ``(F, 257)``,
    with the filterbank) is a BLAS call big enough for OpenBLAS to wake its worker
    threads, which then spin for a while after it returns; that spinning cost several
    times the feature computation itself (about 8 ms of CPU per clip on two cores),
    taken from the decode and face detection running beside it. One thread gives the
    same values: the product's reduction order does not depend on the thread count.
    ``threadpoolctl.threadpool_limits(1)`` would look the libraries up on every call.
    """
    return _blas_controller().limit(limits=1, user_api="blas")


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
