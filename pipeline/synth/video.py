"""The synthetic clips' pictures: the astronaut's face placed, moved, its mouth opened, fakes pasted.

Geometry. The face is the one in ``skimage.data.astronaut()`` (512×512). In that
image the face centre is at about ``FACE_CENTRE`` and the mouth at
``MOUTH_CENTRE`` (pixels, x then y). A frame is rendered by mapping every output
pixel back to source coordinates (scale + translation that drift smoothly over
time, plus a local vertical stretch of the mouth that follows a loudness
envelope, from :mod:`pipeline.synth.audio`) and sampling bilinearly. Frames are
``(T, 224, 224, 3)`` uint8 RGB. Everything is a pure function of a
:class:`~pipeline.synth.spec.ClipSpec`; nothing here draws random numbers except
:func:`no_face_frames`, from the spec's own seed.
"""

from __future__ import annotations

import functools

import numpy as np
from scipy.ndimage import gaussian_filter

from pipeline.synth.audio import clip_audio, mouth_envelopes
from pipeline.synth.spec import FPS, SIZE, ClipSpec, Look, Motion

FACE_CENTRE = (224.0, 130.0)  # (x, y) in the 512x512 astronaut image
FACE_RADII = (44.0, 56.0)  # half-width, half-height of the face ellipse (source px)
MOUTH_CENTRE = (224.0, 145.0)
MOUTH_RADII = (28.0, 17.0)  # region that the mouth stretch moves (source px)
MOUTH_OPEN = 0.7  # vertical stretch of the mouth at full loudness (1 + MOUTH_OPEN)


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


def render_clip(spec: ClipSpec) -> tuple[np.ndarray, np.ndarray]:
    """Frames ``(T, 224, 224, 3)`` uint8 and audio ``(T * 640,)`` int16 of a normal clip."""
    audio, _ = clip_audio(spec)
    return render_video(spec, *mouth_envelopes(spec)), audio


def no_face_frames(n_frames: int, seed: int) -> np.ndarray:
    """A drifting colour gradient with noise: ``(T, 224, 224, 3)`` uint8, nothing face-like."""
    rng = np.random.default_rng(seed)
    frames = np.empty((n_frames, SIZE, SIZE, 3), dtype=np.uint8)
    for t in range(n_frames):
        base = np.stack([_GRID_X + 2 * t, _GRID_Y, (_GRID_X + _GRID_Y) / 2 - t], axis=-1) % 256
        frames[t] = np.clip(base + rng.normal(0, 12, base.shape), 0, 255).astype(np.uint8)
    return frames
