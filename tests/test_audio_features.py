"""Audio features (104 per video frame) and leading-silence detection."""

from __future__ import annotations

import subprocess

import numpy as np
import pytest
from python_speech_features import delta, logfbank, mfcc, sigproc
from python_speech_features.base import get_filterbanks, lifter
from scipy.fftpack import dct

from pipeline.clip.audio_features import frame_features, hop_features, stack_to_frames
from pipeline.clip.silence import leading_silence_frames
from pipeline.synth.audio import speech
from pipeline.synth.spec import Voice

RATE = 16000


def _speechlike(seconds: float, seed: int = 0) -> np.ndarray:
    """Amplitude-modulated noise and tones in int16 units, like loud speech."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * RATE)) / RATE
    envelope = 0.6 + 0.4 * np.sin(2 * np.pi * 3 * t)
    tone = np.sin(2 * np.pi * 220 * t) + 0.5 * np.sin(2 * np.pi * 660 * t)
    return (envelope * (6000 * tone + 1500 * rng.standard_normal(t.size))).astype(np.int16)


def test_mfcc_recipe_is_python_speech_features_mfcc_and_deltas() -> None:
    signal = _speechlike(1.0)
    feats = hop_features(signal, RATE, "mfcc")
    cep = mfcc(signal.astype(np.float64), RATE, winlen=0.025, winstep=0.01, numcep=13,
               nfilt=26, nfft=512, appendEnergy=True)  # fmt: skip
    expected = np.concatenate([cep, delta(cep, 2)], axis=1)
    assert feats.shape == (99, 26) and feats.dtype == np.float32
    np.testing.assert_allclose(feats, expected, rtol=1e-5, atol=1e-4)


def test_fbank_recipe_is_26_log_filterbanks() -> None:
    signal = _speechlike(0.5)
    feats = hop_features(signal, RATE, "fbank")
    expected = logfbank(signal.astype(np.float64), RATE, winlen=0.025, winstep=0.01, nfilt=26,
                        nfft=512)  # fmt: skip
    np.testing.assert_allclose(feats, expected, rtol=1e-5, atol=1e-4)


def _stepwise_reference(signal: np.ndarray, features: str) -> np.ndarray:
    """The recipes rebuilt from the library's own steps, the filterbank product by einsum.

    An independent path to the same numbers (it never calls ``numpy.dot``, so no BLAS):
    ``(F, 26)`` float32 of a 16 kHz ``signal`` ``(N,)``.
    """
    x = np.asarray(signal, dtype=np.float64)
    frames = sigproc.framesig(sigproc.preemphasis(x, 0.97), 0.025 * RATE, 0.01 * RATE)
    power = sigproc.powspec(frames, 512)
    eps = np.finfo(float).eps
    frame_energy = power.sum(axis=1)
    frame_energy = np.where(frame_energy == 0, eps, frame_energy)
    energies = np.einsum("fk,bk->fb", power, get_filterbanks(26, 512, RATE, 0, RATE / 2))
    energies = np.where(energies == 0, eps, energies)
    if features == "fbank":
        return np.log(energies).astype(np.float32)
    cep = lifter(dct(np.log(energies), type=2, axis=1, norm="ortho")[:, :13], 22)
    cep[:, 0] = np.log(frame_energy)
    return np.concatenate([cep, delta(cep, 2)], axis=1).astype(np.float32)


def _lavfi_noise(seconds: float) -> np.ndarray:
    """Pink noise from ffmpeg's ``anoisesrc``: ``(seconds * 16000,)`` int16."""
    cmd = ["ffmpeg", "-v", "error", "-f", "lavfi", "-i",
           "anoisesrc=color=pink:amplitude=0.3:sample_rate=16000:seed=3", "-t", str(seconds),
           "-f", "s16le", "-ac", "1", "-ar", str(RATE), "-"]  # fmt: skip
    raw = subprocess.run(cmd, capture_output=True, check=True).stdout
    return np.frombuffer(raw, np.int16)


@pytest.mark.parametrize("features", ["mfcc", "fbank"])
def test_features_are_bit_identical_to_the_stepwise_recipe(features: str) -> None:
    """Real speech (synth's flite voices), noise and silence give exactly the same floats."""
    voices = [Voice("awb", "the quick brown fox jumps over a lazy dog", 1.0),
              Voice("slt", "our team will meet again next week", 1.07)]  # fmt: skip
    signals = [*(speech(v) for v in voices), _lavfi_noise(3.0), np.zeros(3 * RATE, np.int16)]
    for signal in signals:
        expected = _stepwise_reference(signal, features)
        got = hop_features(signal, RATE, features)
        assert got.shape == expected.shape and np.array_equal(got, expected)


def test_unknown_recipe_is_refused() -> None:
    with pytest.raises(ValueError, match="features"):
        hop_features(np.zeros(1600, np.int16), RATE, "spectrogram")


def test_stacking_order_four_hops_per_frame() -> None:
    hops = np.arange(12 * 26, dtype=np.float32).reshape(12, 26)
    out = stack_to_frames(hops, 3)
    assert out.shape == (3, 104)
    for t in range(3):
        for j in range(4):
            np.testing.assert_array_equal(out[t, 26 * j : 26 * (j + 1)], hops[4 * t + j])


def test_short_audio_is_edge_padded_and_long_audio_trimmed() -> None:
    hops = np.arange(10 * 26, dtype=np.float32).reshape(10, 26)
    padded = stack_to_frames(hops, 4)  # needs 16 hops, has 10
    np.testing.assert_array_equal(padded.reshape(16, 26)[:10], hops)
    np.testing.assert_array_equal(padded.reshape(16, 26)[10:], np.repeat(hops[-1:], 6, axis=0))
    np.testing.assert_array_equal(stack_to_frames(hops, 2).reshape(8, 26), hops[:8])


def _beep_at(frame: int, seconds: float = 2.0) -> np.ndarray:
    """Quiet noise with a loud 40 ms 1 kHz beep exactly under video frame ``frame`` (25 fps)."""
    signal = np.random.default_rng(2).normal(0, 30, int(seconds * RATE))
    start = frame * RATE // 25
    t = np.arange(RATE // 25) / RATE
    signal[start : start + t.size] += 20000 * np.sin(2 * np.pi * 1000 * t)
    return signal.astype(np.int16)


@pytest.mark.parametrize("features", ["mfcc", "fbank"])
@pytest.mark.parametrize("frame", [0, 17, 33, 49])
def test_frame_features_align_to_video_frames(features: str, frame: int) -> None:
    # 2 s at 25 fps: 50 frames; python_speech_features gives 199 hops, padded to 200.
    out = frame_features(_beep_at(frame), RATE, 50, features)
    assert out.shape == (50, 104) and out.dtype == np.float32
    assert np.isfinite(out).all()
    # The loudest row is the beep's frame: c0 (log energy) of each hop for mfcc, the
    # mean log filterbank energy for fbank. Row t holds hops 4t..4t+3, whose 25 ms
    # windows start 10 ms apart inside frame t: each of them hears the beep wholly or
    # mostly, while row t-1's last hop hears 15 ms of it at most.
    hops = out.reshape(50, 4, 26)
    loudness = hops[:, :, 0] if features == "mfcc" else hops.mean(axis=2)
    assert int(np.argmax(loudness.mean(axis=1))) == frame


def test_leading_silence_is_counted_in_whole_frames() -> None:
    speech = _speechlike(2.0)
    for silent_s, frames in ((0.0, 0), (0.4, 10), (0.52, 13)):
        signal = np.concatenate([np.zeros(int(silent_s * RATE), np.int16), speech])
        num_frames = len(signal) // 640
        assert leading_silence_frames(signal, RATE, 25, num_frames) == frames


def test_quiet_noise_before_speech_counts_as_silence() -> None:
    noise = (np.random.default_rng(1).standard_normal(8000) * 20).astype(np.int16)  # ~-64 dBFS
    signal = np.concatenate([noise, _speechlike(1.0)])
    assert leading_silence_frames(signal, RATE, 25, len(signal) // 640) == 12


def test_silence_trim_never_removes_the_clip() -> None:
    silent = np.zeros(RATE, np.int16)
    assert leading_silence_frames(silent, RATE, 25, 25) == 0  # silent clip: nothing to trim
    late = np.concatenate([np.zeros(RATE - 640, np.int16), _speechlike(0.04)])
    assert leading_silence_frames(late, RATE, 25, 25) == 23  # speech only in the last frame
    assert leading_silence_frames(late, RATE, 25, 25, min_keep=5) == 20
    assert leading_silence_frames(late, RATE, 25, 2) == 0
