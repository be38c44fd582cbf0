"""The perturbations of ``mscct-train audit``: stored clips changed the way a shortcut would
not notice and an audio-visual consistency check would.

Every function here is pure: it takes a clip's stored arrays and returns new ones, both
streams of the same length ``T'`` (what the trainer then cuts into windows, exactly as
``eval`` does). ``video`` is the stored visual stream, ``(T, S, S, 3)`` face crops or
``(T, 88, 88)`` mouth crops, uint8; ``audio`` is the stored ``(T, 104)`` features,
**before** the per-clip normalisation (:func:`trainer.data.reader.audio_stats`): the trainer
normalises the perturbed clip as it would any clip, so silence keeps its place relative
to the clip's speech.

Silence, in feature values. A stored clip that begins with silence has those rows
(:func:`leading_silence`); silence added or put in place of the audio repeats them
(:func:`silence_rows`). A clip without any gets the features of digital silence
(:func:`silence_row`): python_speech_features floors a zero energy at float64's ``eps``
before the log, so every log energy is ``log(eps)`` and every cepstrum and delta 0.
That is what the pipeline stores for the zero samples a generated fake is padded with
(FakeAVCeleb's leading silence, and the synthetic dataset's), so it is the silence a
shortcut learns; a constant track normalises to 0 in every channel.
"""

from __future__ import annotations

import math

import numpy as np

#: The layout of the 104 audio channels (``pipeline.clip.audio_features``; the trainer does not
#: import the pipeline): four 10 ms hops of 26 values per video frame, in time order.
HOPS_PER_FRAME = 4
CHANNELS_PER_HOP = 26
#: ``log`` of a zero energy in python_speech_features (floored at float64's eps).
SILENT_LOG_ENERGY = math.log(np.finfo(np.float64).eps)
#: The speech level of a clip: this percentile of its frame energies (``pipeline.clip.silence``).
SPEECH_PERCENTILE = 95.0
DB_PER_NEPER = 10.0 / math.log(10.0)  # natural log of a power -> dB


def silence_row(features: str) -> np.ndarray:
    """The ``(104,)`` float32 features of one frame of digital silence.

    ``mfcc``: per hop, c0 (the log frame energy) ``log(eps)``, cepstra 1-12 and the 13
    deltas 0 (the DCT of a constant log filterbank has only its 0th term, which c0
    replaces); ``fbank``: 26 log filterbank energies of ``log(eps)``.
    """
    hop = np.zeros(CHANNELS_PER_HOP, np.float32)
    if features == "mfcc":
        hop[0] = SILENT_LOG_ENERGY
    elif features == "fbank":
        hop[:] = SILENT_LOG_ENERGY
    else:
        raise ValueError(f"features must be 'mfcc' or 'fbank', not {features!r}")
    return np.tile(hop, HOPS_PER_FRAME)


def frame_energy_db(audio: np.ndarray, features: str) -> np.ndarray:
    """The energy of each frame, in dB up to a constant: ``(T, 104)`` -> ``(T,)`` float64.

    ``mfcc``: c0 of each hop is the natural log of the hop's power-spectrum sum; the
    frame's energy is the log of the mean of its four hops' powers. ``fbank``: a hop's
    power is the sum of its 26 filterbank energies (what the mel filters pass). Only
    differences matter: silence is measured against the clip's own speech level.
    """
    hops = np.asarray(audio, np.float64).reshape(len(audio), HOPS_PER_FRAME, CHANNELS_PER_HOP)
    if features == "mfcc":
        log_power = hops[:, :, 0]
    elif features == "fbank":
        log_power = _logsumexp(hops, axis=2)
    else:
        raise ValueError(f"features must be 'mfcc' or 'fbank', not {features!r}")
    return DB_PER_NEPER * (_logsumexp(log_power, axis=1) - math.log(HOPS_PER_FRAME))


def _logsumexp(x: np.ndarray, axis: int) -> np.ndarray:
    top = x.max(axis=axis, keepdims=True)
    return np.squeeze(top, axis) + np.log(np.exp(x - top).sum(axis=axis))


def leading_silence(audio: np.ndarray, features: str, threshold_db: float, min_keep: int) -> int:
    """How many leading frames of a stored clip are silent, measured on its features.

    ``pipeline.clip.silence``'s rule on the features' energy (:func:`frame_energy_db`): the
    speech level is the 95th percentile of the frame energies, and the first frame
    within ``threshold_db`` of it starts the speech; at least ``min_keep`` frames are
    left. The pipeline's absolute floor for a silent clip (int16 units) has no
    counterpart in the features; a clip silent throughout has no frame far below its
    level, so the rule gives it 0 all the same. ``audio``: ``(T, 104)``.
    """
    frames = len(audio)
    if frames <= min_keep:
        return 0
    energy = frame_energy_db(audio, features)
    level = float(np.percentile(energy, SPEECH_PERCENTILE))
    first = int(np.flatnonzero(energy >= level - threshold_db)[0])
    return max(0, min(first, frames - min_keep))


def silence_rows(audio: np.ndarray, lead: int, count: int, features: str) -> np.ndarray:
    """``count`` rows of silence for a clip: its own ``lead`` leading-silence rows of
    ``audio (T, 104)`` repeated in order, or :func:`silence_row` where ``lead`` is 0.
    Returns ``(count, 104)`` float32."""
    if lead > 0:
        source = np.asarray(audio[:lead], np.float32)
        return source[np.arange(count) % lead]
    return np.tile(silence_row(features), (count, 1))


def shift_audio(video: np.ndarray, audio: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """The audio ``k`` frames late (``k > 0``) or early (``k < 0``) against the video.

    Nothing is padded: the streams are cut to the frames where both exist, so the clip
    shortens by ``|k|`` (at least one frame is kept) and no silence or padding enters.
    Late audio: ``video[t + k]`` plays with ``audio[t]``; early: ``video[t]`` with
    ``audio[t + |k|]``. ``video (T, ...)``, ``audio (T, 104)`` -> ``(T - |k|, ...)``.
    """
    n = min(abs(k), len(video) - 1)
    if n == 0:
        return video, audio
    if k > 0:
        return video[n:], audio[:-n]
    return video[:-n], audio[n:]


def swap_audio(
    video: np.ndarray, audio: np.ndarray, donor: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """The clip's video with ``donor``'s audio ``(T_d, 104)`` (another clip's), both cut
    to ``min(T, T_d)`` frames: nothing is repeated or padded."""
    n = min(len(video), len(donor))
    return video[:n], np.asarray(donor[:n], np.float32)


def silence_audio(audio: np.ndarray, silence: np.ndarray) -> np.ndarray:
    """The audio replaced by ``silence`` rows ``(T, 104)`` (:func:`silence_rows`)."""
    if silence.shape != audio.shape:
        raise ValueError(f"silence {silence.shape} must have the audio's shape {audio.shape}")
    return np.asarray(silence, np.float32).copy()


def freeze_video(video: np.ndarray) -> np.ndarray:
    """Every frame replaced by the clip's middle frame: ``(T, ...)`` -> ``(T, ...)``.
    The middle, not the first, so a face caught mid-blink or mid-turn at the start is
    not what a still clip shows."""
    return np.repeat(video[len(video) // 2][None], len(video), axis=0)


def cut_leading(video: np.ndarray, audio: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray]:
    """The first ``n`` frames of both streams removed (at least one frame is kept)."""
    n = max(0, min(n, len(video) - 1))
    return video[n:], audio[n:]


def add_leading(
    video: np.ndarray, audio: np.ndarray, silence: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """``silence (n, 104)`` put before the audio and the first video frame held for those
    ``n`` frames, as a clip whose speech starts ``n`` frames late looks:
    ``(T, ...)`` -> ``(n + T, ...)``."""
    n = len(silence)
    held = np.repeat(video[:1], n, axis=0)
    return np.concatenate([held, video]), np.concatenate([np.asarray(silence, np.float32), audio])


def jitter_index(frames: int, events: int, rng: np.random.Generator) -> np.ndarray:
    """A frame order with ``events`` frames dropped and ``events`` others shown twice:
    ``(frames,)`` int64, increasing, the same length (so no frame count changes).

    Frame 0 is never touched (the onset stays where it was); with fewer than
    ``2 * events + 1`` frames, fewer events are made.
    """
    events = max(0, min(events, (frames - 1) // 2))
    picked = rng.choice(np.arange(1, frames), size=2 * events, replace=False)
    drop, twice = picked[:events], picked[events:]
    repeats = np.ones(frames, np.int64)
    repeats[drop] = 0
    repeats[twice] = 2
    return np.repeat(np.arange(frames, dtype=np.int64), repeats)


def jitter(
    video: np.ndarray, audio: np.ndarray, index: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Both streams re-ordered by the same ``index`` (:func:`jitter_index`), so they stay
    in step: a temporal jitter a consistency detector should tolerate."""
    return video[index], audio[index]
