"""Head pose per frame from dlib's 68 landmarks, and the frontal-view measures it gives.

``landmark_rate`` (:mod:`pipeline.clip.landmarks`) only checks that the points fall inside
the crop: on a three-quarter or downward view dlib still puts all 68 inside, but they
drift off the face and the mouth crop shows a cheek or the nose. The pose of a rigid
3-D face fitted to the points says how far the head is turned, and how badly the points
fit any face.

**Model.** :data:`MODEL_POINTS` holds 18 of the 68 points (the rigid ones: eye corners,
nose bridge and base, mouth corners, lip midpoints, chin; not the jaw contour, which is
a silhouette that slides with the view, nor the brows and eyelids, which move with
expression), in millimetres, ``x`` to the image right, ``y`` down, ``z`` away from the
camera (right-handed, as a camera's axes), on a face looking into the camera. The
coordinates are rounded adult averages written for this module from the
anthropometric tables of Farkas (*Anthropometry of the Head and Face*, 1994):
outer eye corners 90 mm apart, inner 32 mm, mouth 50 mm wide, nose base 28 mm wide,
eye line to nose base 47 mm, to the mouth line 68 mm, to the chin 115 mm; depths behind
the nose tip: inner eye corners 27 mm, outer 38 mm, mouth corners 30 mm, chin 22 mm.

**Solve.** Scaled orthographic (weak perspective) camera: the points, centred, are
``s · R[:2] · X`` of the centred model ``X``. The affine camera ``M`` (2×3) that fits best
in least squares is ``P Xᵀ (X Xᵀ)⁻¹``; its nearest pair of orthonormal rows (SVD ``M = U
Σ Vᵀ`` → ``U [I 0] Vᵀ``) gives ``R[:2]``, their cross product ``R[2]``, and ``s`` the mean
singular value. All of a clip's frames are solved at once (batched SVD, no iteration).
Weak perspective is what a face filling a crop shot from a metre or more looks like;
it cannot tell depth from size and is blind to the sign of an ambiguity only for a
flat model, which this one is not.

**Angles** (degrees, ``R = Rz(roll) · Ry(−yaw) · Rx(pitch)``): ``yaw`` > 0 when the nose
points to the image right, ``pitch`` > 0 when it points down, ``roll`` > 0 when the
head tilts clockwise in the image. ``residual``: RMS distance between the points and the
reprojected model, over the fitted model's inter-ocular distance (``s`` × 90 mm, which
does not shrink as the head turns). A frame without landmarks (NaN: no face) has NaN
pose.

**Measures** (manifest columns, :func:`frontal_measures`): ``frontal_rate``, the share of
the frames with a face whose ``|yaw| ≤`` :data:`MAX_FRONTAL_YAW`, ``|pitch| ≤``
:data:`MAX_FRONTAL_PITCH` and ``residual ≤`` :data:`MAX_FIT_RESIDUAL`;
``median_abs_yaw``; ``low_frontal_rate`` when ``frontal_rate <`` :data:`MIN_FRONTAL_RATE`.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

#: The 68-point indices the model holds (dlib's numbering, 0-based).
MODEL_INDEX = np.array([8, 27, 28, 29, 30, 31, 32, 33, 34, 35, 36, 39, 42, 45, 48, 51, 54, 57])
#: ``(18, 3)`` millimetres, ``x`` right, ``y`` down, ``z`` away from the camera; rows in
#: :data:`MODEL_INDEX` order. See the module docstring for where they come from.
MODEL_POINTS = np.array(
    [
        [0.0, 115.0, 22.0],  # 8 chin (menton)
        [0.0, -2.0, 20.0],  # 27 nose bridge, between the eyes (nasion)
        [0.0, 10.0, 13.0],  # 28
        [0.0, 22.0, 6.0],  # 29
        [0.0, 34.0, 0.0],  # 30 nose tip (pronasale)
        [-14.0, 44.0, 18.0],  # 31 nose base, image left (alare)
        [-7.0, 46.0, 13.0],  # 32
        [0.0, 47.0, 10.0],  # 33 nose base, middle (subnasale)
        [7.0, 46.0, 13.0],  # 34
        [14.0, 44.0, 18.0],  # 35 nose base, image right
        [-45.0, 0.0, 38.0],  # 36 outer corner of the image-left eye (exocanthion)
        [-16.0, 0.0, 27.0],  # 39 its inner corner (endocanthion)
        [16.0, 0.0, 27.0],  # 42 inner corner of the image-right eye
        [45.0, 0.0, 38.0],  # 45 its outer corner
        [-25.0, 68.0, 30.0],  # 48 mouth corner, image left (cheilion)
        [0.0, 61.0, 14.0],  # 51 upper lip, middle (labrale superius)
        [25.0, 68.0, 30.0],  # 54 mouth corner, image right
        [0.0, 77.0, 16.0],  # 57 lower lip, middle (labrale inferius)
    ]
)
#: The model's inter-ocular distance (outer eye corners), the residual's unit.
MODEL_INTEROCULAR_MM = 90.0

#: A frame is frontal within these angles (degrees) and this residual: beyond about 30°
#: of yaw the far half of the face starts to hide behind the nose and dlib's points
#: (trained mostly on near-frontal faces) leave the far cheek; 25° of pitch keeps the
#: mouth below the nose in the crop. The residual bound is twice the largest seen on
#: the synthetic frontal clips (0.061: a broad smile against the neutral model, the
#: mouth corners 8 mm wider and higher); it refuses point sets that fit no rigid face.
#: A fit sliding off the face is mostly taken for a turn (a yaw), which the yaw limit
#: catches, and only in part for a residual.
MAX_FRONTAL_YAW = 30.0
MAX_FRONTAL_PITCH = 25.0
MAX_FIT_RESIDUAL = 0.12
#: A clip whose frames with a face are less than half frontal is flagged
#: ``low_frontal_rate`` (the same half as the recipe's default ``min_face_rate``).
MIN_FRONTAL_RATE = 0.5

_CENTRED = MODEL_POINTS - MODEL_POINTS.mean(axis=0)
#: ``(18, 3)``: the least-squares affine camera of centred points ``P`` (18, 2) is ``Pᵀ @ this``.
_SOLVE = _CENTRED @ np.linalg.inv(_CENTRED.T @ _CENTRED)


def rotation(yaw: float, pitch: float, roll: float) -> np.ndarray:
    """``(3, 3)`` rotation of the model for angles in degrees (the module's conventions)."""
    y, p, r = np.radians([yaw, pitch, roll])
    ry = np.array([[np.cos(y), 0, -np.sin(y)], [0, 1, 0], [np.sin(y), 0, np.cos(y)]])
    rx = np.array([[1, 0, 0], [0, np.cos(p), -np.sin(p)], [0, np.sin(p), np.cos(p)]])
    rz = np.array([[np.cos(r), -np.sin(r), 0], [np.sin(r), np.cos(r), 0], [0, 0, 1]])
    return rz @ ry @ rx


def project_model(yaw: float, pitch: float, roll: float, scale: float = 1.0) -> np.ndarray:
    """The 68 points ``(68, 2)`` of the model seen at these angles (NaN off the model).

    Scaled orthographic, ``scale`` pixels per millimetre, centred on the origin: the
    points :func:`head_pose` solves back to these angles.
    """
    points = np.full((68, 2), np.nan)
    points[MODEL_INDEX] = scale * (MODEL_POINTS @ rotation(yaw, pitch, roll).T)[:, :2]
    return points


def head_pose(landmarks: np.ndarray) -> np.ndarray:
    """``(T, 4)`` float32 yaw, pitch, roll (degrees) and residual of ``landmarks`` (T, 68, 2).

    Any pixel frame will do (frame or crop pixels: the angles do not depend on a
    translation or a scale). A frame with any NaN among the model's points is NaN.
    """
    points = np.asarray(landmarks, np.float64)[:, MODEL_INDEX]  # (T, 18, 2)
    out = np.full((len(points), 4), np.nan, np.float32)
    good = np.isfinite(points).all(axis=(1, 2))
    if not good.any():
        return out
    centred = points[good] - points[good].mean(axis=1, keepdims=True)
    affine = np.swapaxes(centred, 1, 2) @ _SOLVE  # (G, 2, 3)
    u, sigma, vt = np.linalg.svd(affine, full_matrices=False)  # (G,2,2) (G,2) (G,2,3)
    rows = u @ vt  # nearest orthonormal rows
    scale = sigma.mean(axis=1)
    rot = np.concatenate([rows, np.cross(rows[:, 0], rows[:, 1])[:, None]], axis=1)
    fitted = scale[:, None, None] * (_CENTRED @ np.swapaxes(rows, 1, 2))  # (G, 18, 2)
    rms = np.sqrt(np.mean(np.sum((fitted - centred) ** 2, axis=-1), axis=1))
    out[good, 0] = np.degrees(np.arcsin(np.clip(rot[:, 2, 0], -1.0, 1.0)))
    out[good, 1] = np.degrees(np.arctan2(rot[:, 2, 1], rot[:, 2, 2]))
    out[good, 2] = np.degrees(np.arctan2(rot[:, 1, 0], rot[:, 0, 0]))
    out[good, 3] = rms / np.maximum(scale * MODEL_INTEROCULAR_MM, 1e-9)
    return out


@dataclass(frozen=True)
class FrontalMeasures:
    """A clip's manifest measures of its pose (None: no frame with a pose)."""

    frontal_rate: float | None
    median_abs_yaw: float | None
    low_frontal_rate: bool | None


def frontal_frames(pose: np.ndarray) -> np.ndarray:
    """``(T,)`` bool: the frames of ``pose`` (T, 4) within the frontal limits (NaN: not)."""
    pose = np.asarray(pose, np.float64)
    with np.errstate(invalid="ignore"):
        return (
            (np.abs(pose[:, 0]) <= MAX_FRONTAL_YAW)
            & (np.abs(pose[:, 1]) <= MAX_FRONTAL_PITCH)
            & (pose[:, 3] <= MAX_FIT_RESIDUAL)
        )


def frontal_measures(pose: np.ndarray | None) -> FrontalMeasures:
    """``frontal_rate``, ``median_abs_yaw`` and ``low_frontal_rate`` of ``pose`` (T, 4).

    Only frames with a pose (a face, landmarks) count; None for all three where there
    is none (no landmarks in the recipe, or no frame with a face).
    """
    if pose is None:
        return FrontalMeasures(None, None, None)
    pose = np.asarray(pose, np.float64)
    known = np.isfinite(pose).all(axis=1)
    if not known.any():
        return FrontalMeasures(None, None, None)
    rate = float(frontal_frames(pose[known]).mean())
    yaw = float(np.median(np.abs(pose[known, 0])))
    return FrontalMeasures(rate, yaw, rate < MIN_FRONTAL_RATE)
