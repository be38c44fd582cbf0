"""Media rendering for the synthetic FakeAVCeleb dataset: one clip spec in, one mp4 out.

Everything here is a pure function of a :class:`ClipSpec` (no randomness is drawn
in this module), so a worker process given the same spec produces the same
decoded frames and samples. ``pipeline.synth`` plans the specs and runs this
module in a process pool.

Geometry. The face is the one in ``skimage.data.astronaut()`` (512×512). In that
image the face centre is at about ``FACE_CENTRE`` and the mouth at
``MOUTH_CENTRE`` (pixels, x then y). A frame is rendered by mapping every output
pixel back to source coordinates (scale + translation that drift smoothly over
time, plus a local vertical stretch of the mouth that follows a loudness
envelope) and sampling bilinearly. Frames are ``(T, 224, 224, 3)`` uint8 RGB.

Audio is 16 kHz mono int16, exactly ``640 = 16000 / 25`` samples per video frame,
so sample block ``t`` lines up with frame ``t``.
"""

from __future__ import annotations

import functools
import os
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from scipy.ndimage import gaussian_filter

SIZE = 224
FPS = 25
SAMPLE_RATE = 16000
SAMPLES_PER_FRAME = SAMPLE_RATE // FPS  # 640

FACE_CENTRE = (224.0, 130.0)  # (x, y) in the 512x512 astronaut image
FACE_RADII = (44.0, 56.0)  # half-width, half-height of the face ellipse (source px)
MOUTH_CENTRE = (224.0, 145.0)
MOUTH_RADII = (28.0, 17.0)  # region that the mouth stretch moves (source px)
MOUTH_OPEN = 0.7  # vertical stretch of the mouth at full loudness (1 + MOUTH_OPEN)
ONSET_LEVEL = 300  # |sample| above which speech has begun (int16 scale)

# Leaves the 8 kHz-band energy of a voice almost untouched but removes it from a
# "vocoded" fake; three cascaded 2-pole sections give a steep enough edge.
FAKE_AUDIO_FILTER = "lowpass=f=2800,lowpass=f=2800,lowpass=f=2800,highpass=f=200"
# The hard setting's vocoder: one gentle section at 5 kHz, so the band above
# 3.5 kHz is only attenuated (to about a third of its energy), not removed.
SUBTLE_AUDIO_FILTER = "lowpass=f=5000,highpass=f=120"

# Flags that make libx264 / aac / the mp4 muxer produce the same stream for the
# same input on every run (no encoder version strings, no timestamps, one thread).
BITEXACT = ["-fflags", "+bitexact", "-flags:v", "+bitexact", "-flags:a", "+bitexact"]


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
    """Everything needed to render one clip; planned by ``pipeline.synth``.

    ``swap`` is ``None`` (source face kept), ``"faceswap"`` or ``"fsgan"``;
    ``lipsync`` re-renders the mouth from the clip's own audio at low resolution
    (the wav2lip stage); ``fake_pitch`` is ``None`` for real audio, else the
    pitch factor of the voice conversion. ``variant`` names a defect kind for
    deliberately broken files (``None`` for normal clips).

    The hard setting (``pipeline.synth``'s ``difficulty="hard"``) sets the last
    five fields: ``audio_filter`` replaces the vocoder's band limit;
    ``av_offset`` delays the whole mouth track by that many frames behind the
    audio; ``manip_frames`` ``(start, stop)`` confines the pasted face / mouth to
    those frames; ``blur_scale`` and ``tone`` soften the pasted region's blur
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


# --------------------------------------------------------------------------- audio


def _run(cmd: list[str], stdin: bytes | None = None) -> bytes:
    """Run ffmpeg with an argument list; raise with its own message on failure."""
    proc = subprocess.run(cmd, input=stdin, capture_output=True, check=False)
    if proc.returncode != 0:
        tail = proc.stderr.decode(errors="replace").strip()[-800:]
        raise RuntimeError(f"ffmpeg failed ({proc.returncode}): {tail}")
    return proc.stdout


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
    samples = np.frombuffer(_run(cmd), dtype=np.int16)
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


# --------------------------------------------------------------------------- video


@functools.lru_cache(maxsize=16)
def base_image(look: Look) -> np.ndarray:
    """The astronaut graded by ``look``: ``(512, 512, 3)`` float32 in [0, 255]."""
    from skimage import data

    img = data.astronaut().astype(np.float32) / 255.0
    if look.mirror:
        img = img[:, ::-1]
    img = img ** np.float32(look.gamma) * np.asarray(look.gains, dtype=np.float32)
    return np.ascontiguousarray(np.clip(img, 0.0, 1.0) * 255.0)


def _source_point(look: Look, point: tuple[float, float]) -> tuple[float, float]:
    """A point of the unmirrored astronaut in the (possibly mirrored) base image."""
    return (511.0 - point[0], point[1]) if look.mirror else point


def frame_transform(look: Look, motion: Motion, t: float) -> tuple[float, float, float]:
    """``(cx, cy, s)``: output position of the face centre and output px per source px."""
    ax, fx, px = motion.x
    ay, fy, py = motion.y
    aS, fS, pS = motion.scale
    cx = SIZE / 2 + look.offset[0] + ax * np.sin(2 * np.pi * fx * t + px)
    cy = SIZE / 2 + look.offset[1] + ay * np.sin(2 * np.pi * fy * t + py)
    s = look.zoom * (1.0 + aS * np.sin(2 * np.pi * fS * t + pS))
    return float(cx), float(cy), float(s)


def to_output(
    look: Look, transform: tuple[float, float, float], point: tuple[float, float]
) -> tuple[float, float]:
    """Output pixel position ``(x, y)`` of a point given in unmirrored source coordinates."""
    cx, cy, s = transform
    fx, fy = _source_point(look, FACE_CENTRE)
    px, py = _source_point(look, point)
    return cx + (px - fx) * s, cy + (py - fy) * s


_GRID_Y, _GRID_X = np.mgrid[0:SIZE, 0:SIZE].astype(np.float32)


Box = tuple[int, int, int, int]  # (y0, y1, x0, x1) of the output frame
FULL: Box = (0, SIZE, 0, SIZE)


def render_frame(
    look: Look, transform: tuple[float, float, float], mouth: float, box: Box = FULL
) -> np.ndarray:
    """The graded face placed by ``transform``: ``(y1 - y0, x1 - x0, 3)`` float32 of ``box``.

    ``mouth`` in [0, 1] opens the mouth by stretching the mouth region vertically
    about its centre, with a smooth falloff so that no seam appears. Rendering
    only a ``box`` keeps the pasted regions of fakes cheap.
    """
    img = base_image(look)
    cx, cy, s = transform
    fx, fy = _source_point(look, FACE_CENTRE)
    mx, my = _source_point(look, MOUTH_CENTRE)
    y0, y1, x0, x1 = box
    X = fx + (_GRID_X[y0:y1, x0:x1] - cx) / s
    Y = fy + (_GRID_Y[y0:y1, x0:x1] - cy) / s
    if mouth > 0:
        d = ((X - mx) / MOUTH_RADII[0]) ** 2 + ((Y - my) / MOUTH_RADII[1]) ** 2
        w = np.clip(1.0 - d, 0.0, 1.0) ** 2
        Y = Y - w * (Y - my) * (1.0 - 1.0 / (1.0 + MOUTH_OPEN * mouth))
    return _bilinear(img, X, Y)


def _bilinear(img: np.ndarray, X: np.ndarray, Y: np.ndarray) -> np.ndarray:
    """Sample ``img`` ``(H, W, 3)`` at float coordinates ``X``, ``Y`` ``(h, w)`` → ``(h, w, 3)``."""
    h, w = img.shape[:2]
    X = np.clip(X, 0, w - 1.001)
    Y = np.clip(Y, 0, h - 1.001)
    x0 = X.astype(np.int32)
    y0 = Y.astype(np.int32)
    ax = (X - x0)[..., None]
    ay = (Y - y0)[..., None]
    # One flat index and four takes are much cheaper than 2-D fancy indexing.
    flat = img.reshape(-1, 3)
    idx = y0 * w + x0
    top = flat.take(idx, axis=0) * (1 - ax) + flat.take(idx + 1, axis=0) * ax
    bottom = flat.take(idx + w, axis=0) * (1 - ax) + flat.take(idx + w + 1, axis=0) * ax
    return top * (1 - ay) + bottom * ay


def ellipse_box(centre: tuple[float, float], radii: tuple[float, float], margin: int) -> Box:
    """The part of the frame an ellipse (plus ``margin`` px) covers, clipped to the frame."""
    y0 = max(int(centre[1] - radii[1]) - margin, 0)
    y1 = min(int(centre[1] + radii[1]) + margin + 1, SIZE)
    x0 = max(int(centre[0] - radii[0]) - margin, 0)
    x1 = min(int(centre[0] + radii[0]) + margin + 1, SIZE)
    return y0, max(y1, y0 + 1), x0, max(x1, x0 + 1)


def ellipse_mask(centre: tuple[float, float], radii: tuple[float, float], box: Box) -> np.ndarray:
    """Soft elliptical mask of ``box``: ``(h, w, 1)`` float32, 1 inside, feathered over 25 %."""
    y0, y1, x0, x1 = box
    gx = _GRID_X[y0:y1, x0:x1]
    gy = _GRID_Y[y0:y1, x0:x1]
    d = np.sqrt(((gx - centre[0]) / radii[0]) ** 2 + ((gy - centre[1]) / radii[1]) ** 2)
    return np.clip((1.0 - d) / 0.25, 0.0, 1.0)[..., None]


def _paste(
    frame: np.ndarray,
    patch: np.ndarray,
    sigma: float,
    centre: tuple[float, float],
    radii: tuple[float, float],
    box: Box,
) -> None:
    """Blend a blurred ``patch`` of ``box`` into ``frame`` ``(224, 224, 3)`` inside an ellipse."""
    y0, y1, x0, x1 = box
    mask = ellipse_mask(centre, radii, box)
    patch = _degrade(patch, sigma)
    frame[y0:y1, x0:x1] = frame[y0:y1, x0:x1] * (1 - mask) + patch * mask


def _degrade(frame: np.ndarray, sigma: float) -> np.ndarray:
    """Low-resolution look of generated faces: blur in space only, not across channels."""
    return gaussian_filter(frame, sigma=(sigma, sigma, 0))


# Blur strength of what each method pastes; generated faces are made at 64-128 px.
SWAP_SIGMA = {"faceswap": 1.4, "fsgan": 1.9}
LIPSYNC_SIGMA = 2.0
# A face from another person never matches the skin tone exactly (ClipSpec.tone's
# default; the hard setting uses a closer match).
SWAP_TONE = np.asarray([1.07, 0.97, 0.9], dtype=np.float32)


def render_video(
    spec: ClipSpec, mouth_env: np.ndarray, target_env: np.ndarray | None, sync_env: np.ndarray
) -> np.ndarray:
    """All frames of a clip: ``(T, 224, 224, 3)`` uint8.

    ``mouth_env`` drives the source mouth, ``target_env`` the mouth of a swapped-in
    face (the target's own speech, hence out of sync with this clip's audio), and
    ``sync_env`` the lip-synced mouth of the wav2lip stage (this clip's audio).
    All envelopes are ``(T,)``. Only frames in ``spec.manip_frames`` (all when
    ``None``) get the pasted regions.
    """
    frames = np.empty((spec.n_frames, SIZE, SIZE, 3), dtype=np.uint8)
    tone = np.asarray(spec.tone, dtype=np.float32)
    lo, hi = spec.manip_frames or (0, spec.n_frames)
    for t in range(spec.n_frames):
        tf = frame_transform(spec.look, spec.motion, t / FPS)
        frame = render_frame(spec.look, tf, float(mouth_env[t]))
        if not lo <= t < hi:
            frames[t] = np.clip(frame + 0.5, 0, 255).astype(np.uint8)
            continue
        if spec.swap is not None:
            assert spec.target_look is not None and target_env is not None
            centre = to_output(spec.look, tf, (FACE_CENTRE[0], FACE_CENTRE[1] + 4.0))
            radii = (FACE_RADII[0] * tf[2], FACE_RADII[1] * tf[2])
            sigma = SWAP_SIGMA[spec.swap] * spec.blur_scale
            box = ellipse_box(centre, radii, int(3 * sigma) + 1)
            patch = render_frame(spec.target_look, tf, float(target_env[t]), box) * tone
            _paste(frame, patch, sigma, centre, radii, box)
        if spec.lipsync:
            # The wav2lip stage regenerates the lower face from the audio on top of
            # whatever face is there (the swapped one for the two-stage methods).
            look = spec.target_look if spec.swap is not None else spec.look
            assert look is not None
            centre = to_output(spec.look, tf, MOUTH_CENTRE)
            radii = (MOUTH_RADII[0] * 1.4 * tf[2], MOUTH_RADII[1] * 1.6 * tf[2])
            sigma = LIPSYNC_SIGMA * spec.blur_scale
            box = ellipse_box(centre, radii, int(3 * sigma) + 1)
            patch = render_frame(look, tf, float(sync_env[t]), box)
            if spec.swap is not None:
                patch = patch * tone
            _paste(frame, patch, sigma, centre, radii, box)
        frames[t] = np.clip(frame + 0.5, 0, 255).astype(np.uint8)
    return frames


# --------------------------------------------------------------------------- encode


def encode(
    out: Path,
    frames: np.ndarray | None,
    audio: np.ndarray | None,
    *,
    fps: int = FPS,
    audio_rate: int = SAMPLE_RATE,
    audio_channels: int = 1,
    pix_fmt: str = "yuv420p",
    video_args: tuple[str, ...] = (),
) -> None:
    """Encode ``frames`` ``(T, H, W, 3)`` uint8 and ``audio`` ``(n,)`` int16 16 kHz to mp4.

    Either may be ``None`` for a single-stream file. The file appears under its
    final name only when complete (written beside it, then renamed).
    """
    cmd = ["ffmpeg", "-nostdin", "-hide_banner", "-loglevel", "error", "-y"]
    with tempfile.TemporaryDirectory(prefix="mscct-synth-") as tmp:
        stdin = None
        if frames is not None:
            h, w = frames.shape[1:3]
            cmd += ["-f", "rawvideo", "-pix_fmt", "rgb24", "-s", f"{w}x{h}", "-r", str(fps)]
            cmd += ["-i", "-"]
            stdin = np.ascontiguousarray(frames).tobytes()
        if audio is not None:
            pcm = Path(tmp) / "audio.s16"
            pcm.write_bytes(np.ascontiguousarray(audio, dtype="<i2").tobytes())
            cmd += ["-f", "s16le", "-ar", str(SAMPLE_RATE), "-ac", "1", "-i", str(pcm)]
        if frames is not None:
            cmd += ["-map", "0:v"]
            cmd += ["-c:v", "libx264", "-preset", "veryfast", "-crf", "18", "-g", str(2 * fps)]
            cmd += ["-threads", "1", "-pix_fmt", pix_fmt, *video_args]
        if audio is not None:
            cmd += ["-map", f"{0 if frames is None else 1}:a"]
            cmd += ["-c:a", "aac", "-b:a", "64k", "-ar", str(audio_rate)]
            cmd += ["-ac", str(audio_channels)]
        tmp_out = out.with_name(f".{out.name}.{os.getpid()}.part")
        cmd += [*BITEXACT, "-map_metadata", "-1", "-f", "mp4", str(tmp_out)]
        try:
            _run(cmd, stdin)
            os.replace(tmp_out, out)
        finally:
            tmp_out.unlink(missing_ok=True)


def remux(path: Path, args: tuple[str, ...]) -> None:
    """Copy the streams of ``path`` into a new file with extra output ``args``, in place."""
    tmp_out = path.with_name(f".{path.name}.{os.getpid()}.remux")
    cmd = ["ffmpeg", "-nostdin", "-hide_banner", "-loglevel", "error", "-y", "-i", str(path)]
    cmd += ["-map", "0", "-c", "copy", *args, *BITEXACT, "-f", "mp4", str(tmp_out)]
    try:
        _run(cmd)
        os.replace(tmp_out, path)
    finally:
        tmp_out.unlink(missing_ok=True)


# --------------------------------------------------------------------------- one clip


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


def render_clip(spec: ClipSpec) -> tuple[np.ndarray, np.ndarray]:
    """Frames ``(T, 224, 224, 3)`` uint8 and audio ``(T * 640,)`` int16 of a normal clip."""
    audio, _ = clip_audio(spec)
    return render_video(spec, *mouth_envelopes(spec)), audio


def _no_face_frames(n_frames: int, seed: int) -> np.ndarray:
    """A drifting colour gradient with noise: ``(T, 224, 224, 3)`` uint8, nothing face-like."""
    rng = np.random.default_rng(seed)
    frames = np.empty((n_frames, SIZE, SIZE, 3), dtype=np.uint8)
    for t in range(n_frames):
        base = np.stack([_GRID_X + 2 * t, _GRID_Y, (_GRID_X + _GRID_Y) / 2 - t], axis=-1) % 256
        frames[t] = np.clip(base + rng.normal(0, 12, base.shape), 0, 255).astype(np.uint8)
    return frames


# Defects whose file is a normal clip; what is odd is its length, name or folder.
PLAIN_VARIANTS = ("one_frame", "very_long", "race_spelling")


def write_clip(spec: ClipSpec, root: str | Path) -> str:
    """Render ``spec`` and write it under ``root``; returns ``spec.rel_path``.

    Runs in a worker process. Defect variants bend one property of the file
    (streams, size, rate, bytes) and otherwise reuse the normal rendering.
    """
    out = Path(root).absolute() / spec.rel_path
    out.parent.mkdir(parents=True, exist_ok=True)
    kind = spec.variant
    if kind == "zero_byte":
        out.write_bytes(b"")
        return spec.rel_path
    if kind == "not_a_video":
        out.write_text("This is a text file with a video file name.\n")
        return spec.rel_path
    frames, audio = render_clip(spec)
    if kind is None or kind in PLAIN_VARIANTS or kind.startswith("name_"):
        encode(out, frames, audio)
    elif kind == "no_audio":
        encode(out, frames, None)
    elif kind == "no_video":
        encode(out, None, audio)
    elif kind == "no_face":
        encode(out, _no_face_frames(spec.n_frames, spec.seed), audio)
    elif kind == "fps_30":
        # Same content on a 30 fps timeline: each output frame shows the 25 fps
        # frame current at its time, so audio and video keep the same length.
        n30 = spec.n_frames * 30 // FPS
        encode(out, frames[np.arange(n30) * FPS // 30], audio, fps=30)
    elif kind == "vfr":
        # Keep the first 30 frames, then every third: timestamps stay those of
        # the input, so frame durations change mid-stream.
        select = ("-vf", "select='lt(n,30)+not(mod(n,3))'", "-vsync", "vfr")
        encode(out, frames, audio, video_args=select)
    elif kind == "rotated":
        # Stored sideways, displayed upright: a phone-style clip. The frames are
        # turned 90° clockwise and the metadata asks players to turn them
        # back. ffmpeg 5.1 writes the display matrix from ``rotate`` only on stream copy.
        encode(out, np.ascontiguousarray(np.rot90(frames, k=-1, axes=(1, 2))), audio)
        remux(out, ("-metadata:s:v:0", "rotate=90"))
    elif kind == "odd_size":
        # 4:4:4 because 4:2:0 cannot hold odd dimensions.
        encode(out, frames[:, 20:191, :223], audio, pix_fmt="yuv444p")
    elif kind == "audio_48k_stereo":
        encode(out, frames, audio, audio_rate=48000, audio_channels=2)
    elif kind == "truncated":
        encode(out, frames, audio)
        data = out.read_bytes()
        out.write_bytes(data[: len(data) // 2])
    else:
        raise ValueError(f"unknown defect kind {kind!r}")
    return spec.rel_path
