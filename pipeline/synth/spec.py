"""What one synthetic clip is: the spec a worker renders, and the clip format's constants.

A :class:`ClipSpec` holds every choice about one clip (drawn by
:mod:`pipeline.synth.plan`); rendering it is a pure function of the spec, so a
worker process given the same spec produces the same decoded frames and samples.
Clips are ``SIZE``×``SIZE`` RGB at ``FPS`` with 16 kHz mono audio, exactly
``SAMPLES_PER_FRAME = 640 = 16000 / 25`` samples per video frame, so that sample
block ``t`` lines up with frame ``t``.
"""

from __future__ import annotations

from dataclasses import dataclass

SIZE = 224
FPS = 25
SAMPLE_RATE = 16000
SAMPLES_PER_FRAME = SAMPLE_RATE // FPS  # 640

# Leaves the 8 kHz-band energy of a voice almost untouched but removes it from a
# "vocoded" fake; three cascaded 2-pole sections give a steep enough edge.
FAKE_AUDIO_FILTER = "lowpass=f=2800,lowpass=f=2800,lowpass=f=2800,highpass=f=200"
# The hard setting's vocoder: one gentle section at 5 kHz, so the band above
# 3.5 kHz is only attenuated (to about a third of its energy), not removed.
SUBTLE_AUDIO_FILTER = "lowpass=f=5000,highpass=f=120"


@dataclass(frozen=True)
class Look:
    """How one identity appears: a colour grade, a mirror, a size and a position.

    ``gains`` multiply R, G, B after a ``gamma`` curve; ``zoom`` is output pixels per
    source pixel (1.15 makes the face about 100 px wide in a 224 px frame);
    ``offset`` moves the face centre away from the frame centre (output px).
    """

    gains: tuple[float, float, float]
    gamma: float
    mirror: bool
    zoom: float
    offset: tuple[float, float]


@dataclass(frozen=True)
class Motion:
    """Smooth head motion of one clip: sinusoidal drift of position and scale.

    Each tuple is ``(amplitude, frequency_hz, phase_rad)``; x/y amplitudes in
    output pixels, the scale amplitude as a fraction of ``Look.zoom``.
    """

    x: tuple[float, float, float]
    y: tuple[float, float, float]
    scale: tuple[float, float, float]


@dataclass(frozen=True)
class Voice:
    """A flite voice saying ``text``, resampled by ``pitch`` with tempo kept."""

    name: str
    text: str
    pitch: float


@dataclass(frozen=True)
class ClipSpec:
    """Everything needed to render one clip; planned by :mod:`pipeline.synth.plan`.

    ``swap`` is ``None`` (source face kept), ``"faceswap"`` or ``"fsgan"``;
    ``lipsync`` re-renders the mouth from the clip's own audio at low resolution
    (the wav2lip stage); ``fake_pitch`` is ``None`` for real audio, else the
    pitch factor of the voice conversion. ``variant`` names a defect kind for
    deliberately broken files (``None`` for normal clips).

    The hard settings (``difficulty="hard"`` or ``"hard-partial"`` of
    :func:`pipeline.synth.plan.plan`) set the last five fields: ``audio_filter``
    replaces the vocoder's band limit; ``av_offset`` delays the whole mouth track by
    that many frames behind the audio; ``manip_frames`` ``(start, stop)`` confines the
    pasted face / mouth to those frames (``hard-partial``; ``None``: every frame);
    ``blur_scale`` and ``tone`` soften the pasted region's blur
    and skin-tone mismatch. Their defaults are the easy setting's behaviour.
    """

    rel_path: str  # relative to the dataset root, POSIX separators
    n_frames: int
    look: Look
    motion: Motion
    voice: Voice
    lead_silence: float = 0.0  # seconds of silence before the speech (fakes only)
    fake_pitch: float | None = None
    swap: str | None = None
    target_look: Look | None = None
    target_voice: Voice | None = None
    lipsync: bool = False
    variant: str | None = None
    seed: int = 0
    audio_filter: str = FAKE_AUDIO_FILTER
    av_offset: int = 0
    manip_frames: tuple[int, int] | None = None
    blur_scale: float = 1.0
    tone: tuple[float, float, float] = (1.07, 0.97, 0.9)
