"""104 audio features per video frame: four stacked 10 ms frames of MFCC+Δ or log filterbanks.

Both recipes use python_speech_features with a 25 ms window and a 10 ms hop on the
16 kHz mono signal in int16 units (what ``scipy.io.wavfile.read`` returns, as the
peer scripts feed it), so the values match theirs:

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
from python_speech_features import delta, logfbank, mfcc

HOPS_PER_FRAME = 4
CHANNELS_PER_HOP = 26
WINDOW_S = 0.025
HOP_S = 0.010
NFFT = 512  # next power of two above the 400-sample window at 16 kHz


def hop_features(signal: np.ndarray, sample_rate: int, features: str = "mfcc") -> np.ndarray:
    """10 ms features of a mono ``signal`` (N,): shape ``(F, 26)`` float32.

    ``features`` is ``'mfcc'`` (13 MFCC + 13 Δ) or ``'fbank'`` (26 log filterbanks).
    """
    x = np.asarray(signal, dtype=np.float64)
    nfft = max(NFFT, 1 << int(np.ceil(np.log2(WINDOW_S * sample_rate))))
    if features == "mfcc":
        cep = mfcc(x, samplerate=sample_rate, winlen=WINDOW_S, winstep=HOP_S, numcep=13,
                   nfilt=26, nfft=nfft, appendEnergy=True)  # fmt: skip
        feats = np.concatenate([cep, delta(cep, 2)], axis=1)
    elif features == "fbank":
        feats = logfbank(x, samplerate=sample_rate, winlen=WINDOW_S, winstep=HOP_S, nfilt=26,
                         nfft=nfft)  # fmt: skip
    else:
        raise ValueError(f"features must be 'mfcc' or 'fbank', not {features!r}")
    return feats.astype(np.float32)


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
