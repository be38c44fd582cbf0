"""Mouth crops aligned by facial landmarks: AV-HuBERT's preparation, ``(T, 96, 96)`` grayscale.

Lip-reading and audio-visual synchrony models (the AV-HuBERT family) read a mouth
region that is aligned to a reference face, so that head pose, scale and position
do not move the lips around the crop. The steps, per clip, from the landmarks of
every frame (:mod:`pipeline.clip.landmarks`, frame pixels):

1. **Reference face.** :data:`REFERENCE_FACE`, 68 ``(x, y)`` points of a frontal
   face in a 256 × 256 frame (AV-HuBERT's working frame): the 68 points dlib fits to
   the frontal face of scikit-image's astronaut, made left-right symmetric
   (averaged with their mirror image), scaled so that the outer eye corners lie
   80 px apart and centred in the frame. The mouth (points 48-67) is then about
   59 px wide, so a 96 px crop holds the lips, the corners of the cheeks and the
   top of the chin.
2. **Smoothing.** The landmarks are averaged over a centred window of
   :data:`SMOOTH_WINDOW` = 12 frames (edges replicated), so that the alignment
   does not shake with the fits (AV-HuBERT averages the 12 frames starting at
   the current one).
3. **Alignment.** For each frame, the similarity transform (rotation, uniform
   scale, translation; least squares) that takes the smoothed frame's
   :data:`STABLE_POINTS` onto the reference's: the nose tip (33) and the four eye
   corners (36, 39, 42, 45), AV-HuBERT's stable points, which do not move with
   speech.
4. **Crop centre.** The mean of the frame's own (unsmoothed) mouth points 48-67,
   carried into the reference frame by that transform.
5. **Crop.** The 96 × 96 square of the reference frame around that centre,
   sampled bilinearly from the frame's BT.601 luma, as uint8; where it leaves the
   frame it is black (AV-HuBERT moves the crop back inside instead; black keeps
   the mouth centred). Training crops the centre 88 × 88 (a reader's job).

:func:`mouth_transforms` gives, per frame, the matrix that maps mouth-crop pixels
to frame pixels, so a crop can be traced back to its source.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from scipy.ndimage import affine_transform

from pipeline.clip.faces import smooth_boxes
from schemas.streams import MOUTH_SIZE  # the stored crop's side, as the table declares it

SMOOTH_WINDOW = 12
STABLE_POINTS = (33, 36, 39, 42, 45)  # nose tip, outer and inner eye corners
MOUTH_POINTS = slice(48, 68)  # outer and inner lip contours

# fmt: off
#: (68, 2) reference face, (x, y) pixels of a 256 × 256 frame (step 1 of the module docstring).
REFERENCE_FACE = np.array([
    [66.0, 91.3], [67.3, 107.3], [69.3, 122.7], [72.0, 138.7], [78.0, 153.3],  # jaw 0-16
    [86.7, 166.0], [99.3, 176.7], [112.7, 185.3], [128.0, 187.3], [143.3, 185.3],
    [156.7, 176.7], [169.3, 166.0], [178.0, 153.3], [184.0, 138.7], [186.7, 122.7],
    [188.7, 107.3], [190.0, 91.3],
    [75.3, 78.0], [82.7, 70.0], [93.3, 68.7], [104.0, 70.0], [114.7, 73.3],  # brows 17-26
    [141.3, 73.3], [152.0, 70.0], [162.7, 68.7], [173.3, 70.0], [180.7, 78.0],
    [128.0, 87.3], [128.0, 98.0], [128.0, 108.7], [128.0, 119.3],  # nose bridge 27-30
    [114.7, 125.3], [121.3, 126.7], [128.0, 128.7], [134.7, 126.7], [141.3, 125.3],  # 31-35
    [88.0, 86.7], [94.7, 82.7], [103.3, 82.7], [110.7, 89.3], [102.7, 90.0],  # eyes 36-47
    [94.0, 90.7], [145.3, 89.3], [152.7, 82.7], [161.3, 82.7], [168.0, 86.7],
    [162.0, 90.7], [153.3, 90.0],
    [98.7, 137.3], [109.3, 136.0], [120.7, 136.0], [128.0, 138.0], [135.3, 136.0],  # lips 48-59
    [146.7, 136.0], [157.3, 137.3], [147.3, 150.7], [136.7, 156.7], [128.0, 158.0],
    [119.3, 156.7], [108.7, 150.7],
    [102.0, 138.7], [120.0, 140.7], [128.0, 142.0], [136.0, 140.7], [154.0, 138.7],  # 60-67
    [136.0, 150.0], [128.0, 150.0], [120.0, 150.0],
])
# fmt: on


def similarity(src: np.ndarray, dst: np.ndarray) -> np.ndarray:
    """Least-squares similarity taking points ``src`` (N, 2) onto ``dst`` (N, 2): (3, 3) matrix.

    In complex numbers the transform is ``w = a·z + b``; with both point sets
    centred, ``a = Σ conj(z)·w / Σ |z|²`` (scale and rotation in one number).
    """
    z = src[:, 0] + 1j * src[:, 1]
    w = dst[:, 0] + 1j * dst[:, 1]
    zc, wc = z - z.mean(), w - w.mean()
    a = np.vdot(zc, wc) / max(float(np.vdot(zc, zc).real), 1e-12)
    b = w.mean() - a * z.mean()
    return np.array([[a.real, -a.imag, b.real], [a.imag, a.real, b.imag], [0.0, 0.0, 1.0]])


def mouth_transforms(points: np.ndarray) -> np.ndarray:
    """Per frame, the matrix mapping mouth-crop pixels to frame pixels: (T, 3, 3).

    ``points`` (T, 68, 2) are the landmarks in frame pixels. Crop pixel ``(u, v)``
    (``(x, y)`` order, homogeneous ``(u, v, 1)``) lies at ``M @ (u, v, 1)`` in the
    frame; the crop's centre ``(47.5, 47.5)`` is the mouth centre of step 4.
    """
    num_frames = len(points)
    smoothed = smooth_boxes(points.reshape(num_frames, -1), SMOOTH_WINDOW)
    smoothed = smoothed.reshape(num_frames, -1, 2)
    reference = REFERENCE_FACE[list(STABLE_POINTS)]
    half = (MOUTH_SIZE - 1) / 2
    out = np.empty((num_frames, 3, 3))
    for t in range(num_frames):
        to_reference = similarity(smoothed[t, list(STABLE_POINTS)], reference)
        mouth = np.append(points[t, MOUTH_POINTS].mean(axis=0), 1.0)
        cx, cy, _ = to_reference @ mouth
        crop_to_reference = np.array([[1.0, 0, cx - half], [0, 1.0, cy - half], [0, 0, 1.0]])
        out[t] = np.linalg.inv(to_reference) @ crop_to_reference
    return out


def crop_mouths(
    frames: np.ndarray | Sequence[np.ndarray],
    points: np.ndarray,
    runs: list[tuple[int, int]] | None = None,
    keep: tuple[int, int] | None = None,
) -> np.ndarray:
    """Aligned mouth crops: ``frames`` (T, H, W, 3) uint8 + ``points`` (T, 68, 2) → (T, 96, 96) uint8.

    ``runs`` ``[(start, stop), ...]`` are the frames with a face, none across a shot cut
    (:func:`pipeline.clip.shots.valid_runs`; default: every frame). Each run is aligned on
    its own, so the smoothing of step 2 never mixes two shots; frames outside every run
    (no face, NaN landmarks) are black. With ``keep`` ``(a, b)`` only the frames
    ``a <= t < b`` are cropped (the others stay black and ``frames[t]`` is not read),
    their runs still aligned and smoothed as a whole: a clip streamed frame by frame
    crops the frames it holds.
    """
    out = np.zeros((len(points), MOUTH_SIZE, MOUTH_SIZE), np.uint8)
    lo, hi = (0, len(points)) if keep is None else keep
    for start, stop in [(0, len(points))] if runs is None else runs:
        if stop <= lo or start >= hi:
            continue
        matrices = mouth_transforms(points[start:stop])
        for t, matrix in enumerate(matrices, start):
            if lo <= t < hi:
                out[t] = _mouth_crop(frames[t], matrix)
    return out


def _mouth_crop(frame: np.ndarray, matrix: np.ndarray) -> np.ndarray:
    """The 96 × 96 uint8 crop of ``frame`` (H, W, 3) whose pixels ``matrix`` (3, 3) maps to it."""
    rgb = frame.astype(np.float32)
    gray = rgb[..., 0] * 0.299 + rgb[..., 1] * 0.587 + rgb[..., 2] * 0.114
    # scipy indexes (row, col) = (y, x): swap the axes of the (x, y) matrix.
    rows_cols = matrix[[1, 0]][:, [1, 0, 2]]
    patch = affine_transform(
        gray, rows_cols[:, :2], offset=rows_cols[:, 2], output_shape=(MOUTH_SIZE,) * 2,
        order=1, mode="constant", cval=0.0,
    )  # fmt: skip
    return np.clip(patch + 0.5, 0, 255).astype(np.uint8)
