"""Find, track and crop the face of a clip with dlib's HOG detector.

The detector runs only on every ``stride``-th frame, on a grey frame whose short
side is brought near :data:`DETECT_SIDE` by integer area downscaling, and on the
last frame of each shot and the first of the next (:mod:`pipeline.clip.shots` finds the
cuts). Each shot is tracked on its own: boxes of the frames in between detections
are interpolated linearly (held constant before the shot's first and after its last
detection), then smoothed with centred moving averages (the size over a longer
window than the centre), so the crop neither jumps nor jitters within a shot and
never slides across a cut. A frame further than :data:`FACE_TOLERANCE` detector
strides from every detection of its shot has no face (:meth:`StrideDetector.with_face`).
Each crop is a square of ``(1 + margin)`` times the box side around the box centre,
zero-padded where it leaves the frame, and resized to ``size × size`` RGB.

The margin and the two smoothing windows shape the stored crops, so they are
settings of the store's recipe (``face_margin``, ``face_smooth``,
``face_size_smooth`` of :class:`schemas.recipe.Recipe`); the functions here take
them as plain numbers, and their defaults are the recipe's defaults.

Boxes are ``(x0, y0, x1, y1)`` float pixel coordinates of the decoded frame (the
store's ``face_boxes`` are in the source's pixels: :mod:`pipeline.clip.transform`).
"""

from __future__ import annotations

import functools
import time
from collections.abc import Sequence
from dataclasses import dataclass, field

import dlib
import numpy as np
from PIL import Image

from pipeline.clip.shots import shot_bounds
from schemas.recipe import Recipe

# HOG's window finds faces of about 80 px and up without upsampling. Face-centred
# 224² clips (FakeAVCeleb, VoxCeleb2) have faces of 100-150 px, which half resolution
# would push below that floor, so frames are only shrunk while the short side stays
# at or above this many pixels.
DETECT_SIDE = 224
# The recipe's defaults are the one source of these numbers (see schemas.recipe.Recipe).
# 0.3: crop side = 1.3 x the detector's box, which is tight (brows to chin).
DEFAULT_MARGIN = Recipe.face_margin
DEFAULT_SMOOTH = Recipe.face_smooth  # 5: frames averaged for the box centres (0.2 s at 25 fps)
SIZE_SMOOTH = Recipe.face_size_smooth  # 25: frames averaged for the box sizes (1 s at 25 fps)
# Two candidates of successive detections are "the same face" above this overlap.
SAME_FACE_IOU = 0.3
#: A frame more than this many strides from every detection of its shot has no face:
#: one missed detection (motion blur, a turned head) is bridged, two in a row are not.
FACE_TOLERANCE = 1


@functools.cache
def face_detector() -> dlib.fhog_object_detector:
    """dlib's frontal HOG face detector (built in; no model file). One per process."""
    return dlib.get_frontal_face_detector()


def detection_factor(height: int, width: int, side: int = DETECT_SIDE) -> int:
    """Integer downscale factor for detection: the largest that keeps the short side >= ``side``."""
    return max(1, min(height, width) // side)


def detection_gray(frame: np.ndarray, factor: int) -> np.ndarray:
    """``(H, W, 3)`` uint8 RGB → ``(H // factor, W // factor)`` uint8 luma, area-averaged."""
    rgb = frame.astype(np.uint16)
    # BT.601 luma in 8-bit fixed point: exact enough for HOG, and no float temporaries.
    gray = (rgb[..., 0] * 77 + rgb[..., 1] * 150 + rgb[..., 2] * 29) >> 8
    if factor > 1:
        h, w = gray.shape[0] // factor * factor, gray.shape[1] // factor * factor
        gray = gray[:h, :w].reshape(h // factor, factor, w // factor, factor).mean(axis=(1, 3))
    return np.ascontiguousarray(gray, dtype=np.uint8)


def iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Intersection over union of boxes ``a`` (K, 4) and one box ``b`` (4,): shape (K,)."""
    x0, y0 = np.maximum(a[:, 0], b[0]), np.maximum(a[:, 1], b[1])
    x1, y1 = np.minimum(a[:, 2], b[2]), np.minimum(a[:, 3], b[3])
    inter = np.clip(x1 - x0, 0, None) * np.clip(y1 - y0, 0, None)
    area_a = (a[:, 2] - a[:, 0]) * (a[:, 3] - a[:, 1])
    area_b = (b[2] - b[0]) * (b[3] - b[1])
    return inter / np.maximum(area_a + area_b - inter, 1e-9)


def select_face(candidates: np.ndarray, previous: np.ndarray | None) -> np.ndarray:
    """Pick one box of ``candidates`` (K, 4), K >= 1: the one continuing ``previous``, else the largest.

    Following the previous detection keeps the crop on one person when a second,
    larger face passes by; the largest face is the speaker in face-centred clips.
    """
    if previous is not None:
        overlap = iou(candidates, previous)
        if overlap.max() >= SAME_FACE_IOU:
            return candidates[int(overlap.argmax())]
    areas = (candidates[:, 2] - candidates[:, 0]) * (candidates[:, 3] - candidates[:, 1])
    return candidates[int(areas.argmax())]


@dataclass
class StrideDetector:
    """Feed it every frame in order; it runs dlib on frames ``0, stride, 2·stride, ...``.

    A detector call at the working scale that finds nothing is retried once with
    dlib's 2× upsampling, which reaches faces down to ~40 px at that scale.
    """

    stride: int
    factor: int | None = None  # detection downscale; None: from the first frame's size
    calls: int = 0
    hits: int = 0
    keyframes: list[int] = field(default_factory=list)  # frames with a face, as detected
    boxes: list[np.ndarray] = field(default_factory=list)  # the box chosen on each, (4,)
    candidates: list[np.ndarray] = field(default_factory=list)  # every face found on each, (K, 4)
    called: list[int] = field(default_factory=list)  # frames the detector ran on
    seconds: float = 0.0  # time spent in detection, for the per-stage breakdown
    cpu_seconds: float = 0.0  # CPU time of the calling thread spent in detection

    def __call__(self, t: int, frame: np.ndarray) -> None:
        if t % self.stride == 0:
            self._timed_detect(t, frame)

    def finish(self, t: int, frame: np.ndarray) -> None:
        """Also detect on the last frame ``t``, so the track ends on a detection, not a hold."""
        if t % self.stride:
            self._timed_detect(t, frame)

    def detect_at(self, frames: np.ndarray, at: np.ndarray) -> None:
        """Also detect on the frames ``at`` of ``frames`` (T, H, W, 3) not yet detected on."""
        for t in sorted({int(t) for t in at if 0 <= t < len(frames)}):
            self.detect_frame(t, frames[t])

    def detect_frame(self, t: int, frame: np.ndarray) -> None:
        """Also detect on frame ``t`` (H, W, 3), unless the detector ran on it already."""
        if t not in self.called:
            self._timed_detect(t, frame)

    def _timed_detect(self, t: int, frame: np.ndarray) -> None:
        clock, cpu = time.perf_counter(), time.thread_time()
        try:
            self._detect(t, frame)
        finally:
            self.seconds += time.perf_counter() - clock
            self.cpu_seconds += time.thread_time() - cpu

    def _detect(self, t: int, frame: np.ndarray) -> None:
        self.calls += 1
        self.called.append(t)
        if self.factor is None:
            self.factor = detection_factor(*frame.shape[:2])
        gray = detection_gray(frame, self.factor)
        detector = face_detector()
        found = detector(gray, 0) or detector(gray, 1)
        if not found:
            return
        candidates = np.array(
            [[r.left(), r.top(), r.right() + 1, r.bottom() + 1] for r in found], np.float64
        )
        box = select_face(candidates * self.factor, self._previous(t))
        self.hits += 1
        self.keyframes.append(t)
        self.boxes.append(box)
        self.candidates.append(candidates * self.factor)

    def _previous(self, t: int) -> np.ndarray | None:
        """The box chosen on the last stride frame before ``t`` with a face (None: none):
        what a detection continues, whatever order the extra detections came in."""
        earlier = [(k, i) for i, k in enumerate(self.keyframes) if k < t and k % self.stride == 0]
        return self.boxes[max(earlier)[1]] if earlier else None

    @property
    def detection_rate(self) -> float:
        """Detector calls that found a face / detector calls (0.0 before any call)."""
        return self.hits / self.calls if self.calls else 0.0

    def track(
        self,
        num_frames: int,
        smooth: int = DEFAULT_SMOOTH,
        size_smooth: int = SIZE_SMOOTH,
        cuts: np.ndarray | tuple[int, ...] = (),
    ) -> np.ndarray:
        """Per-frame boxes ``(num_frames, 4)``; needs at least one detection.

        ``cuts`` are the first frames of the shots after the first
        (:func:`pipeline.clip.shots.find_cuts`); each shot is tracked on its own, its face
        chosen afresh on its first detection (:func:`select_face` with no previous box).
        A shot without a detection holds the median of the clip's boxes (its frames
        have no face: :meth:`with_face`). HOG boxes come from a coarse scale pyramid
        and a 8 px cell grid, so successive detections of a still face jump by
        several pixels and their size by up to ~20 %. The centre is smoothed over
        ``max(smooth, 2·stride + 1)`` frames, so that the average always spans more
        than one detection, and the size, which changes slowly, over
        ``max(smooth, size_smooth)`` frames; neither average crosses a cut.
        """
        if not self.boxes:
            raise ValueError("no face was detected")
        order = np.argsort(self.keyframes, kind="stable")
        keyframes = np.array(self.keyframes)[order]
        out = np.empty((num_frames, 4), np.float64)
        for start, stop in shot_bounds(num_frames, cuts):
            inside = np.flatnonzero((keyframes >= start) & (keyframes < stop))
            if not inside.size:
                out[start:stop] = np.median(np.stack(self.boxes), axis=0)
                continue
            boxes = follow_face([self.candidates[order[i]] for i in inside])
            shot = interpolate_boxes(keyframes[inside] - start, boxes, stop - start)
            out[start:stop] = smooth_track(
                shot, max(smooth, 2 * self.stride + 1), max(smooth, size_smooth)
            )
        return out

    def with_face(
        self, num_frames: int, cuts: np.ndarray | tuple[int, ...] = (), tolerance: int | None = None
    ) -> np.ndarray:
        """``(num_frames,)`` bool: True where a detection of the same shot lies within
        ``tolerance`` frames (default :data:`FACE_TOLERANCE` strides)."""
        limit = FACE_TOLERANCE * self.stride if tolerance is None else tolerance
        hits = np.unique(np.array(self.keyframes, np.int64))
        valid = np.zeros(num_frames, np.bool_)
        for start, stop in shot_bounds(num_frames, cuts):
            near = hits[(hits >= start) & (hits < stop)]
            if not near.size:
                continue
            t = np.arange(start, stop)
            right = np.clip(np.searchsorted(near, t), 0, near.size - 1)
            left = np.clip(right - 1, 0, near.size - 1)
            gap = np.minimum(np.abs(near[right] - t), np.abs(t - near[left]))
            valid[start:stop] = gap <= limit
        return valid


def follow_face(candidates: list[np.ndarray]) -> np.ndarray:
    """One box per detection of a shot, from each one's faces ``(K_i, 4)``: ``(N, 4)``.

    The first is the largest face; each next one continues the previous (:func:`select_face`).
    """
    chosen: list[np.ndarray] = []
    for faces in candidates:
        chosen.append(select_face(faces, chosen[-1] if chosen else None))
    return np.stack(chosen)


def smooth_track(boxes: np.ndarray, centre_window: int, size_window: int) -> np.ndarray:
    """Smooth box centres and sizes of ``boxes`` (T, 4) over different windows: (T, 4)."""
    centre = smooth_boxes((boxes[:, :2] + boxes[:, 2:]) / 2, centre_window)
    half = smooth_boxes(boxes[:, 2:] - boxes[:, :2], size_window) / 2
    return np.concatenate([centre - half, centre + half], axis=1)


def interpolate_boxes(keyframes: np.ndarray, boxes: np.ndarray, num_frames: int) -> np.ndarray:
    """Linear interpolation of ``boxes`` (K, 4) at frames ``keyframes`` (K,) to ``(num_frames, 4)``.

    ``np.interp`` holds the first and last box constant outside the detected range.
    """
    t = np.arange(num_frames, dtype=np.float64)
    return np.stack([np.interp(t, keyframes, boxes[:, i]) for i in range(4)], axis=1)


def smooth_boxes(boxes: np.ndarray, window: int = DEFAULT_SMOOTH) -> np.ndarray:
    """Centred moving average of ``boxes`` (T, K) over ``window`` frames, edges replicated."""
    if window <= 1 or len(boxes) < 2:
        return boxes
    half = window // 2
    padded = np.pad(boxes, ((half, window - 1 - half), (0, 0)), mode="edge")
    csum = np.cumsum(np.pad(padded, ((1, 0), (0, 0))), axis=0)
    return (csum[window:] - csum[:-window]) / window


def square_regions(boxes: np.ndarray, margin: float = DEFAULT_MARGIN) -> np.ndarray:
    """Integer square regions ``(T, 3)`` = (x0, y0, side) around the centres of ``boxes`` (T, 4)."""
    cx = (boxes[:, 0] + boxes[:, 2]) / 2
    cy = (boxes[:, 1] + boxes[:, 3]) / 2
    side = np.maximum(boxes[:, 2] - boxes[:, 0], boxes[:, 3] - boxes[:, 1]) * (1.0 + margin)
    side = np.maximum(np.rint(side), 2)
    return np.stack([np.rint(cx - side / 2), np.rint(cy - side / 2), side], axis=1).astype(np.int64)


def crop_boxes(boxes: np.ndarray, margin: float = DEFAULT_MARGIN) -> np.ndarray:
    """The squares :func:`crop_faces` cuts from ``boxes`` (T, 4): ``(T, 4)`` float32 (x0, y0, x1, y1).

    A face-crop pixel ``(x, y)`` of an ``S``-pixel crop lies at frame pixel
    ``box[:2] + (x, y) * (box[2] - box[0]) / S``.
    """
    regions = square_regions(boxes, margin)
    corners = np.concatenate([regions[:, :2], regions[:, :2] + regions[:, 2:]], axis=1)
    return corners.astype(np.float32)


def crop_faces(
    frames: np.ndarray | Sequence[np.ndarray],
    boxes: np.ndarray,
    size: int,
    margin: float = DEFAULT_MARGIN,
) -> np.ndarray:
    """Square face crops: ``frames`` (T, H, W, 3) uint8 (an array, or T arrays
    ``(H, W, 3)``) + ``boxes`` (T, 4) → (T, size, size, 3)."""
    out = np.empty((len(frames), size, size, 3), np.uint8)
    if not len(frames):
        return out
    height, width = frames[0].shape[:2]
    for t, (x0, y0, side) in enumerate(square_regions(boxes, margin)):
        x1, y1 = x0 + side, y0 + side
        frame = frames[t]
        if x0 >= 0 and y0 >= 0 and x1 <= width and y1 <= height:
            patch = frame[y0:y1, x0:x1]
        else:  # the square leaves the frame: black borders keep the face centred
            patch = np.zeros((side, side, 3), np.uint8)
            sx0, sy0 = max(x0, 0), max(y0, 0)
            sx1, sy1 = min(x1, width), min(y1, height)
            if sx1 > sx0 and sy1 > sy0:
                patch[sy0 - y0 : sy1 - y0, sx0 - x0 : sx1 - x0] = frame[sy0:sy1, sx0:sx1]
        image = Image.fromarray(np.ascontiguousarray(patch))
        out[t] = np.asarray(image.resize((size, size), Image.Resampling.BILINEAR))
    return out
