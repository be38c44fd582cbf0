"""Clips with fake segments inside real ones: another voice for a while, a manipulated mouth.

A :class:`SegmentedSpec` is a real clip (its ``base`` :class:`~pipeline.synth.spec.ClipSpec`,
rendered exactly as the real clip of the same source) with up to two frame ranges
``[start, stop)`` changed:

- ``audio_segment``: samples ``[start * 640, stop * 640)`` are replaced by the
  speech of another identity (``donor_voice``, from its first word), a hard splice,
  so the fake audio begins and ends exactly on those frames' boundaries;
- ``video_segment``: in those frames the lower face is regenerated as the
  wav2lip stage does (blurred, its mouth following this clip's audio, the
  spliced one where the audio is fake too) and tinted (``MOUTH_TINT``), a visible
  change confined to the mouth region and to exactly those frames.

Every frame and sample outside the segments is the real clip's, so a fake and
its ``original`` differ only inside the segments (before encoding). A segment
may cover the whole clip (a whole-clip fake). Nothing here draws random numbers.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from pipeline.synth.audio import clip_audio, envelope, place, speech
from pipeline.synth.encode import encode
from pipeline.synth.spec import FPS, SAMPLES_PER_FRAME, ClipSpec, Voice
from pipeline.synth.video import (
    MOUTH_CENTRE,
    MOUTH_RADII,
    ellipse_box,
    ellipse_mask,
    frame_transform,
    render_video,
    to_output,
)

# Gains on R, G, B of the regenerated mouth region: a reddish cast that a real
# mouth of the same identity never has.
MOUTH_TINT = (1.18, 0.86, 0.92)

Frames = tuple[int, int]  # [start, stop) in video frames


@dataclass(frozen=True)
class SegmentedSpec:
    """One clip of a segment-labelled format; ``rel_path`` is relative to the dataset root."""

    rel_path: str
    base: ClipSpec
    donor_voice: Voice | None = None
    audio_segment: Frames | None = None
    video_segment: Frames | None = None

    @property
    def n_frames(self) -> int:
        return self.base.n_frames

    def __post_init__(self) -> None:
        for seg in (self.audio_segment, self.video_segment):
            if seg is not None and not 0 <= seg[0] < seg[1] <= self.base.n_frames:
                raise ValueError(f"segment {seg} is outside the clip's {self.base.n_frames} frames")
        if self.audio_segment is not None and self.donor_voice is None:
            raise ValueError("a fake audio segment needs a donor voice")


def seconds(segment: Frames) -> list[float]:
    """``[start_s, end_s]`` of a frame range, exact to the frame (0.04 s steps)."""
    return [round(segment[0] / FPS, 2), round(segment[1] / FPS, 2)]


def splice_audio(audio: np.ndarray, donor_voice: Voice, segment: Frames) -> np.ndarray:
    """``audio`` ``(T * 640,)`` int16 with the donor's speech in ``segment``: ``(T * 640,)``."""
    start, stop = segment
    donor = place(speech(donor_voice), stop - start, 0.0)
    out = audio.copy()
    out[start * SAMPLES_PER_FRAME : stop * SAMPLES_PER_FRAME] = donor
    return out


def tint_mouth(frames: np.ndarray, base: ClipSpec, segment: Frames) -> None:
    """Recolour the mouth region of ``frames`` ``(T, 224, 224, 3)`` uint8 in ``segment``, in place."""
    gains = np.asarray(MOUTH_TINT, dtype=np.float32)
    for t in range(*segment):
        tf = frame_transform(base.look, base.motion, t / FPS)
        centre = to_output(base.look, tf, MOUTH_CENTRE)
        # The same ellipse as the regenerated lower face (video.render_video's lipsync).
        radii = (MOUTH_RADII[0] * 1.4 * tf[2], MOUTH_RADII[1] * 1.6 * tf[2])
        y0, y1, x0, x1 = box = ellipse_box(centre, radii, 0)
        mask = ellipse_mask(centre, radii, box)
        region = frames[t, y0:y1, x0:x1].astype(np.float32)
        mixed = region * (1 - mask) + np.clip(region * gains, 0, 255) * mask
        frames[t, y0:y1, x0:x1] = np.clip(mixed + 0.5, 0, 255).astype(np.uint8)


def render_segmented(spec: SegmentedSpec) -> tuple[np.ndarray, np.ndarray]:
    """Frames ``(T, 224, 224, 3)`` uint8 and audio ``(T * 640,)`` int16 of a segmented clip."""
    base = spec.base
    real, _ = clip_audio(base)
    audio = real
    if spec.audio_segment is not None:
        assert spec.donor_voice is not None
        audio = splice_audio(real, spec.donor_voice, spec.audio_segment)
    mouth_env = envelope(real, base.n_frames)  # the real mouth follows the real speech
    if spec.video_segment is None:
        return render_video(base, mouth_env, None, mouth_env), audio
    lipsync = replace(base, lipsync=True, manip_frames=spec.video_segment)
    frames = render_video(lipsync, mouth_env, None, envelope(audio, base.n_frames))
    tint_mouth(frames, base, spec.video_segment)
    return frames, audio


def write_segmented(spec: SegmentedSpec, root: str | Path) -> str:
    """Render ``spec`` and encode it under ``root``; returns ``spec.rel_path``. Runs in a worker."""
    out = Path(root).absolute() / spec.rel_path
    out.parent.mkdir(parents=True, exist_ok=True)
    encode(out, *render_segmented(spec))
    return spec.rel_path
