"""What a clip sounds like, read back from its stored audio features: a log-mel picture
and a loudness track, for ``mscct-pipeline show``.

The store keeps no waveform, only 104 features per video frame: four 10 ms hops of 26
values each (:mod:`pipeline.clip.audio_features`), and the source file may be gone or
elsewhere when a store is looked at. So the picture is read from the features alone,
the same way whatever the store's history:

- recipe ``fbank``: the 26 stored log mel filterbank energies of each hop, as they are;
- recipe ``mfcc``: a 26-band log mel *envelope*. The 13 cepstra are the first 13
  coefficients of the orthonormal DCT-II of the 26 log filterbank energies, liftered,
  with c0 replaced by the log frame energy. Undoing the lifter and inverting the DCT
  with c0 and the 13 upper coefficients at zero gives the shape of the filterbank
  energies smoothed along frequency (formants, not harmonics); its level is the one
  at which the bands' energies add up to the stored frame energy. On the synthetic
  clips it lies a median 1-1.6 dB from the log filter banks of the same audio
  (correlation 0.999; ``tests/test_look.py``).

Both are in dB (10 log10 of the filterbank energy, int16 units). The loudness track is
the hop's log energy: the stored c0 for ``mfcc``, the log of the summed filterbank
energies for ``fbank``, in dB below the clip's loud level (its 95th percentile, as
:mod:`pipeline.clip.speech` measures the loud level).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from pipeline.clip.audio_features import CHANNELS_PER_HOP, HOPS_PER_FRAME, LIFTER, NUM_CEPSTRA
from pipeline.clip.silence import SPEECH_PERCENTILE
from pipeline.clip.speech import MIN_SPEECH_FRACTION, RELATIVE_DB

#: dB per natural-log unit of energy.
DB = 10.0 / math.log(10.0)
#: Range of the picture's colours, dB below its loudest cells (speech spans about 50).
DYNAMIC_DB = 60.0
#: What the picture says it shows, per recipe.
SOURCES = {
    "fbank": "log-mel filter banks as stored (recipe fbank; no waveform is kept)",
    "mfcc": "log-mel envelope: inverse DCT of the stored 13 MFCC (recipe mfcc; no waveform kept)",
}


def hops(audio: np.ndarray) -> np.ndarray:
    """The stored ``(T, 104)`` features as their ``(4T, 26)`` 10 ms hops, in time order."""
    a = np.asarray(audio, np.float64)
    return a.reshape(a.shape[0] * HOPS_PER_FRAME, CHANNELS_PER_HOP)


def mel_db(audio: np.ndarray, features: str) -> np.ndarray:
    """``(4T, 26)`` log mel energies in dB of the clip's hops (see the module's rule)."""
    h = hops(audio)
    if features == "fbank":
        return h * DB
    n = np.arange(1, NUM_CEPSTRA)
    cep = h[:, 1:NUM_CEPSTRA] / (1 + LIFTER / 2 * np.sin(np.pi * n / LIFTER))
    shape = cep @ _dct_basis(CHANNELS_PER_HOP)[1:NUM_CEPSTRA]  # (4T, 26), mean 0 per hop
    # The level that makes the bands' energies sum to the frame's energy (stored c0).
    level = h[:, 0] - np.logaddexp.reduce(shape, axis=1)
    return np.asarray((shape + level[:, None]) * DB)


def _dct_basis(size: int) -> np.ndarray:
    """``(size, size)`` orthonormal DCT-II basis: row ``k`` is coefficient ``k``'s cosine."""
    k, i = np.meshgrid(np.arange(size), np.arange(size), indexing="ij")
    basis = np.cos(np.pi * k * (2 * i + 1) / (2 * size)) * math.sqrt(2.0 / size)
    basis[0] /= math.sqrt(2.0)
    return basis


def loudness_db(audio: np.ndarray, features: str) -> np.ndarray:
    """``(4T,)`` each hop's energy in dB relative to the clip's loud level (<= 0 mostly)."""
    h = hops(audio)
    # c0 of the mfcc recipe is the log frame energy; the fbank recipe's bands sum to it.
    energy = (np.logaddexp.reduce(h, axis=1) if features == "fbank" else h[:, 0]) * DB
    return np.asarray(energy - np.percentile(energy, SPEECH_PERCENTILE))


def band_hz(sample_rate: int) -> np.ndarray:
    """``(26,)`` centre frequencies (Hz) of the mel bands python_speech_features uses
    (0 Hz to half the sample rate, evenly spaced in mel)."""
    top = 2595.0 * math.log10(1 + sample_rate / 2 / 700.0)
    mel = np.linspace(0.0, top, CHANNELS_PER_HOP + 2)[1:-1]
    return np.asarray(700.0 * (10 ** (mel / 2595.0) - 1))


def draw_spectrogram(fig: Any, ax: Any, audio: np.ndarray, features: str, rate: int) -> None:
    """The clip's log-mel picture in ``ax`` on a time axis of ``T`` frames, its colour
    bar beside it, and which of the two readings it is."""
    image_db = mel_db(audio, features)
    top = float(np.percentile(image_db, 99.5)) if image_db.size else 0.0
    image = ax.imshow(
        image_db.T,
        origin="lower",
        aspect="auto",
        cmap="magma",
        vmin=top - DYNAMIC_DB,
        vmax=top,
        extent=(0, audio.shape[0], 0, CHANNELS_PER_HOP),
        interpolation="nearest",
    )
    centres = band_hz(rate)
    ticks = [0, 8, 16, CHANNELS_PER_HOP - 1]
    ax.set_yticks([t + 0.5 for t in ticks], [f"{centres[t] / 1000:.1f}k" for t in ticks])
    ax.tick_params(axis="y", labelsize=7)
    ax.set_ylabel("mel band\n(Hz)", fontsize=8)
    ax.text(0.005, 0.97, SOURCES.get(features, SOURCES["mfcc"]), transform=ax.transAxes,
            fontsize=7, va="top", color="white",
            bbox={"facecolor": "black", "alpha": 0.6, "lw": 0, "pad": 1})  # fmt: skip
    # A colour bar in its own axes beside the panel: one taken from the panel would make
    # it narrower than the others and break the shared time axis.
    box = ax.get_position()
    bar = fig.colorbar(image, cax=fig.add_axes((0.94, box.y0, 0.012, box.height)))
    bar.set_label("dB", fontsize=7)


def draw_loudness(ax: Any, audio: np.ndarray, features: str, fraction: float | None) -> None:
    """Each hop's loudness under the picture, the pause line of :mod:`pipeline.clip.speech`
    (:data:`~pipeline.clip.speech.RELATIVE_DB` under the loud level) and the manifest's
    ``speech_fraction``. The per-frame speech decision needs the waveform's energy,
    which the store does not keep: the fraction is the ingest's, over the same frames."""
    level = loudness_db(audio, features)
    t = (np.arange(len(level)) + 0.5) / HOPS_PER_FRAME
    ax.plot(t, np.maximum(level, -DYNAMIC_DB), lw=0.7, color="#1c7ed6")
    ax.axhline(-RELATIVE_DB, color="grey", ls=":", lw=0.8)
    ax.set_ylim(-DYNAMIC_DB, 5)
    ax.set_yticks([-RELATIVE_DB, 0])
    ax.tick_params(axis="y", labelsize=7)
    ax.set_ylabel("loudness\n(dB)", fontsize=8)
    shown = "not stored" if fraction is None else f"{fraction:.2f}"
    note = (
        f"speech_fraction {shown} (manifest; little_speech under {MIN_SPEECH_FRACTION:.2f}); "
        f"dotted: {RELATIVE_DB:.0f} dB under the loud level (quieter is a pause)"
    )
    ax.text(0.005, 0.06, note, transform=ax.transAxes, fontsize=7, va="bottom")
