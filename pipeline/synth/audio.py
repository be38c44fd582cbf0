"""The synthetic clips' sound: flite speech, its place on the clip timeline, mouth envelopes.

Speech comes from ffmpeg's ``flite`` source, 16 kHz mono int16; a clip's audio is
``(T * 640,)`` samples for ``T`` video frames. The loudness of each 640-sample
block drives how far the rendered mouth opens in that frame
(:mod:`pipeline.synth.video`). Nothing here draws random numbers.
"""

from __future__ import annotations

import functools

import numpy as np

from pipeline.synth.encode import run_ffmpeg
from pipeline.synth.spec import FAKE_AUDIO_FILTER, SAMPLE_RATE, SAMPLES_PER_FRAME, ClipSpec, Voice

ONSET_LEVEL = 300  # |sample| above which speech has begun (int16 scale)


@functools.lru_cache(maxsize=64)
def speech(
    voice: Voice, fake_pitch: float | None = None, fake_filter: str = FAKE_AUDIO_FILTER
) -> np.ndarray:
    """Synthesised speech ``(n,)`` int16 at 16 kHz, no leading or trailing padding.

    The identity's own pitch and the fake conversion both resample the voice
    (``asetrate``) and restore the tempo (``atempo``), so a fake keeps the timing
    of the real utterance and therefore stays in sync with a real mouth; a fake
    is then band-limited by ``fake_filter`` (an ffmpeg filter chain).
    """
    chain = [f"flite=text={voice.text}:voice={voice.name}", f"aresample={SAMPLE_RATE}"]
    for factor in (voice.pitch, fake_pitch):
        if factor is not None and factor != 1.0:
            chain += [
                f"asetrate={SAMPLE_RATE * factor:.3f}",
                f"aresample={SAMPLE_RATE}",
                f"atempo={1.0 / factor:.6f}",
            ]
    if fake_pitch is not None:
        chain.append(fake_filter)
    chain.append("aformat=sample_fmts=s16:channel_layouts=mono")
    cmd = ["ffmpeg", "-nostdin", "-hide_banner", "-loglevel", "error", "-f", "lavfi"]
    cmd += ["-i", ",".join(chain), "-f", "s16le", "-ac", "1", "-ar", str(SAMPLE_RATE), "-"]
    samples = np.frombuffer(run_ffmpeg(cmd), dtype=np.int16)
    # flite starts with ~0.2 s of silence of its own; drop it (keeping 10 ms) so
    # that only the fakes' deliberate leading silence marks the onset.
    loud = np.flatnonzero(np.abs(samples) > ONSET_LEVEL)
    start = max(int(loud[0]) - SAMPLE_RATE // 100, 0) if loud.size else 0
    return samples[start:].copy()


def place(samples: np.ndarray, n_frames: int, lead_silence: float) -> np.ndarray:
    """Put speech on a clip timeline of ``n_frames`` frames: ``(n_frames * 640,)`` int16."""
    out = np.zeros(n_frames * SAMPLES_PER_FRAME, dtype=np.int16)
    start = min(round(lead_silence * SAMPLE_RATE), out.size)
    n = min(samples.size, out.size - start)
    out[start : start + n] = samples[:n]
    return out


def envelope(samples: np.ndarray, n_frames: int) -> np.ndarray:
    """Per-frame loudness in [0, 1]: ``(n_frames,)`` float32 from ``(n_frames * 640,)`` samples."""
    blocks = samples[: n_frames * SAMPLES_PER_FRAME].astype(np.float32).reshape(n_frames, -1)
    rms = np.sqrt((blocks**2).mean(axis=1))
    ref = np.percentile(rms, 95) if rms.any() else 1.0
    env = np.clip(rms / max(ref, 1.0), 0.0, 1.0)
    # A mouth does not jump in 40 ms; a short smoothing makes the motion plausible.
    env = np.convolve(np.pad(env, 1, mode="edge"), [0.25, 0.5, 0.25], mode="valid")
    return env.astype(np.float32)


def clip_audio(spec: ClipSpec) -> tuple[np.ndarray, np.ndarray]:
    """``(audio, real_timeline)``: the clip's samples and the real speech on the same timeline.

    Both are ``(T * 640,)`` int16. For real audio they are the same array. The
    leading silence delays the real speech too, so a real mouth that follows
    ``real_timeline`` stays in sync with a fake voice placed the same way.
    """
    real = place(speech(spec.voice), spec.n_frames, spec.lead_silence)
    if spec.fake_pitch is None:
        return real, real
    fake_speech = speech(spec.voice, spec.fake_pitch, spec.audio_filter)
    return place(fake_speech, spec.n_frames, spec.lead_silence), real


def delay(env: np.ndarray, frames: int) -> np.ndarray:
    """``env`` ``(T,)`` late by ``frames`` (the first value repeated in front): ``(T,)``."""
    if frames <= 0:
        return env
    return np.concatenate([np.repeat(env[:1], frames), env[:-frames]])


def mouth_envelopes(spec: ClipSpec) -> tuple[np.ndarray, np.ndarray | None, np.ndarray]:
    """``(mouth_env, target_env, sync_env)`` of ``render_video``, each ``(T,)`` float32.

    ``av_offset`` delays the source mouth and the lip-synced mouth behind the
    audio. A swapped-in face moves with the target's own speech (easy setting)
    or, without ``target_voice`` (hard setting), with the source's mouth, as a
    real face swap keeps the source's mouth motion.
    """
    audio, real = clip_audio(spec)
    mouth_env = delay(envelope(real, spec.n_frames), spec.av_offset)
    target_env = None
    if spec.target_voice is not None:
        target = place(speech(spec.target_voice), spec.n_frames, 0.0)
        target_env = envelope(target, spec.n_frames)
    elif spec.swap is not None:
        target_env = mouth_env
    sync_env = delay(envelope(audio, spec.n_frames), spec.av_offset)
    return mouth_env, target_env, sync_env
