"""A clip's per-frame work with a bounded look-ahead, so its memory does not grow with its length.

Frames arrive one at a time from the decoder (its ``on_frame``). Each is at once
reduced to what the whole clip needs of it: its signature for the shot cuts
(:func:`pipeline.clip.shots.signatures`, 3 KB; its point samples wait for the next
run of outputs, to be averaged together) and, on the detector's stride frames,
its faces. The frames themselves are held only until their outputs are final: the
face crops, landmarks and mouth crops of a run of ``core`` frames ``[a, a + core)``
are made once the frames up to ``a + core + LOOK_AHEAD - 1`` have arrived (or the
clip has ended), and those frames are then dropped, all but the last (a cut at the
next frame detects on it). ``core`` is as many frames as keep the frames held
(``core + LOOK_AHEAD + 1``) within :data:`HELD_BYTES`, and at least :data:`MIN_CORE`:
45 frames of 1080p (280 MB), the largest size the decode-size rule gives
(:data:`pipeline.media.MAX_DECODE_PIXELS`), whatever the clip's length; 224² frames
fit 1860 at once, more than the longest clip the recipe keeps, so such a clip is
processed whole at its end, as before, at no extra cost. What accumulates are the
small per-frame outputs (a 112² crop is 37 KB, a 96² mouth crop 9 KB) and summaries.

Why :data:`LOOK_AHEAD` is 28 frames (1.1 s at 25 fps): a frame's box is smoothed over
12 frames on each side (the size window, :data:`pipeline.clip.faces.SIZE_SMOOTH`), the
last of which is interpolated towards the next detection (a detector stride, 5 frames,
further), and a cut among those frames is settled ``WINDOW + HOLD`` = 15 frames after it
(:mod:`pipeline.clip.shots`, steps 3-4): 12 + 15 covers both at the default stride.
Every frame's outputs are thus those of the clip held whole, except where something
lies further away than the look-ahead:

- a frame whose shot has no detection within the look-ahead after it keeps the box
  its shot holds until then (its last detection's; in a shot with none yet, the
  median of the clip's boxes so far; before any detection, the frame's centre
  square) where the whole clip would interpolate towards a later detection. Such a
  frame is more than one stride from a detection, so it has no face (``face_valid``
  0) either way;
- a cut that a jump of the face track points at (shots, step 5) across a gap in the
  detections longer than the look-ahead is still found, but its frames may be gone
  by then, and the detector does not run on both sides of it;
- each landmark fit is made once, in the box its frame had when it was first fitted
  (at most the look-ahead before that box is final).

A replay (``detector`` and ``cuts`` given, with the clip's length) crops again
along detections already made, as :mod:`pipeline.clip.transform` does when the
choice of the speaking face changed a shot's track: it detects nothing and finds
no cuts, and its boxes are final from the first frame.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import numpy as np

from pipeline.clip.faces import StrideDetector, crop_boxes, crop_faces
from pipeline.clip.landmarks import fit_shape, track_landmarks
from pipeline.clip.mouth import crop_mouths
from pipeline.clip.shots import GRID, cell_means, find_cuts_in, samples, valid_runs
from pipeline.clip.stage_cpu import StageCpu
from pipeline.errors import ClipError
from schemas.recipe import Recipe

#: What a decode calls with each frame ``(t, (H, W, 3) uint8)``.
OnFrame = Callable[[int, np.ndarray], None]
#: Runs a clip's decode again, frame by frame, into the ``on_frame`` given.
Replay = Callable[[OnFrame], None]
#: Frames after a run that must have arrived before its outputs are made (module docstring).
LOOK_AHEAD = 28
#: The fewest frames whose outputs are made at once.
MIN_CORE = 16
#: The frames held at once stay within this many bytes where MIN_CORE allows: 45 frames
#: of 1080p, the largest the decode-size rule gives.
HELD_BYTES = (MIN_CORE + LOOK_AHEAD + 1) * 1920 * 1080 * 3


def core_frames(frame_bytes: int) -> int:
    """The frames whose outputs are made at once, for frames of ``frame_bytes`` each."""
    return max(MIN_CORE, HELD_BYTES // max(frame_bytes, 1) - LOOK_AHEAD - 1)


#: Stands in for a frame no longer held (never read: see :meth:`ClipStream._landmarks`).
_GONE = np.zeros((0, 0, 3), np.uint8)


@dataclass
class StreamResult:
    """The per-frame outputs of a clip, as :meth:`ClipStream.result` gives them."""

    crops: np.ndarray  # (T, S, S, 3) uint8 face crops
    track: np.ndarray  # (T, 4) float64: the smoothed face box of each frame, decoded px
    valid: np.ndarray  # (T,) bool: the frame has a face
    cuts: np.ndarray  # (C,) int64: the first frames of the shots after the first
    points: np.ndarray | None  # (T, 68, 2) float64 landmarks, decoded px (recipe.landmarks)
    mouth: np.ndarray | None  # (T, 96, 96) uint8 (the "mouth" stream)
    fits: int  # landmark fits made
    confident: int  # of those, the confident ones (pipeline.clip.landmarks)


class ClipStream:
    """The ``on_frame`` of a clip's decode: feed it every frame in order, then :meth:`end`
    and :meth:`finish`; :meth:`result` gives the outputs (module docstring)."""

    def __init__(
        self,
        recipe: Recipe,
        factor: int | None = None,
        *,
        detector: StrideDetector | None = None,
        cuts: np.ndarray | None = None,
        num_frames: int | None = None,
        capacity: int = 64,
    ) -> None:
        self.recipe = recipe
        self.detector = detector or StrideDetector(recipe.face_stride, factor)
        self.replay = cuts is not None
        self.cuts = np.zeros(0, np.int64) if cuts is None else np.asarray(cuts, np.int64)
        self.total = num_frames
        self.seen = 0  # frames received
        self.done = 0  # frames whose outputs are made
        self.core = MIN_CORE  # frames whose outputs are made at once (set by the first frame)
        self.shape: tuple[int, int] = (0, 0)  # (H, W) of the frames
        self.cpu: dict[str, float] = {}  # thread CPU seconds per stage (detection apart)
        self.wall: dict[str, float] = {}  # seconds per stage (detection apart)
        self._ended = False
        self._held: dict[int, np.ndarray] = {}
        self._kept: list[np.ndarray] | None = None  # a clip held whole (see kept_replay)
        self._sigs = np.empty((64, GRID, GRID, 3), np.float32)
        self._pending: list[np.ndarray] = []  # point samples of the frames not yet in _sigs
        self._fits: dict[int, np.ndarray] = {}  # frame -> its landmark fit (68, 2)
        self._track: np.ndarray | None = None  # a replay's track, final from the start
        # Outputs by name, rows [0, done): one array each, reserved for ``capacity``
        # frames (address space; pages are committed as rows land), so that no small
        # long-lived piece sits among the frames' freed buffers in the heap.
        self._rows: dict[str, np.ndarray] = {}
        self.capacity = capacity if num_frames is None else num_frames
        self.fits = self.confident = 0

    def __call__(self, t: int, frame: np.ndarray) -> None:
        if t != self.seen:
            raise ClipError(f"cannot decode: frame {t} arrived where {self.seen} was due")
        if not self.replay:
            self.detector(t, frame)
            self._add_signature(frame)
        self._held[t] = frame
        self.seen += 1
        self.shape = frame.shape[:2]
        if self.seen == 1:
            self.core = core_frames(frame.nbytes)
        if self.seen - self.done >= self.core + LOOK_AHEAD:
            self._finalise(self.done + self.core)

    def end(self) -> None:
        """The last frame has arrived: detect on it too (unless done), so every track ends
        on a detection."""
        self._ended = True
        if not self.replay and self.seen:
            last = self.seen - 1
            self.detector.finish(last, self._held[last])

    def finish(self) -> None:
        """Make the outputs of every frame left (after :meth:`end`)."""
        if self.total is not None and self.seen != self.total:
            raise ClipError(f"cannot decode: {self.seen} frames again where {self.total} came")
        if self.done == 0 and self.seen <= self.core:  # held whole to the end: keep them,
            # so that a second look (the speaker's fits) needs no second decode
            self._kept = [self._held[t] for t in range(self.seen)]
        while self.done < self.seen:
            self._finalise(min(self.done + self.core, self.seen))
        self._held.clear()

    def kept_replay(self) -> Replay | None:
        """A :data:`Replay` from the frames themselves when the clip fitted whole in
        what a stream holds (small frames), else None: it must be decoded again."""
        kept = self._kept
        if kept is None:
            return None

        def replay(on_frame: OnFrame) -> None:
            for t, frame in enumerate(kept):
                on_frame(t, frame)

        return replay

    def release(self) -> None:
        """Drop the frames :meth:`kept_replay` would give."""
        self._kept = None

    def result(self) -> StreamResult:
        """The outputs of all frames (after :meth:`finish`), in frame order."""
        parts = {name: rows[: self.done] for name, rows in self._rows.items()}
        return StreamResult(
            crops=parts["crops"],
            track=parts["track"],
            valid=parts["valid"],
            cuts=self.cuts,
            points=parts.get("points"),
            mouth=parts.get("mouth"),
            fits=self.fits,
            confident=self.confident,
        )

    def _add_signature(self, frame: np.ndarray) -> None:
        """Keep the frame's point samples (timed under 'shots' without a context
        manager: this runs on every frame)."""
        wall, cpu = time.perf_counter(), time.thread_time()
        self._pending.append(samples(frame))
        self.cpu["shots"] = self.cpu.get("shots", 0.0) + time.thread_time() - cpu
        self.wall["shots"] = self.wall.get("shots", 0.0) + time.perf_counter() - wall

    def _signatures(self) -> np.ndarray:
        """``(seen, GRID, GRID, 3)``: the pending samples averaged at once, then all."""
        known = self.seen - len(self._pending)
        while self.seen > len(self._sigs):  # doubling: a clip's 3 KB per frame, copied rarely
            self._sigs = np.concatenate([self._sigs, np.empty_like(self._sigs)])
        if self._pending:
            self._sigs[known : self.seen] = cell_means(np.stack(self._pending))
            self._pending = []
        return self._sigs[: self.seen]

    def _finalise(self, stop: int) -> None:
        """Make the outputs of frames ``[done, stop)`` and drop the frames before ``stop - 1``."""
        start, seen = self.done, self.seen
        if not self.replay:
            with self._stage("shots"):
                self.cuts = self._find_cuts()
            with self._stage("track"):
                for t in sorted({int(c) + d for c in self.cuts for d in (-1, 0)}):
                    if t in self._held:  # both sides of each cut, while they are held
                        self.detector.detect_frame(t, self._held[t])
        with self._stage("track"):
            track = self._track_of(seen)
            valid = self.detector.with_face(len(track), self.cuts)
        with self._stage("crop"):
            core = [self._held[t] for t in range(start, stop)]
            size, margin = self.recipe.crop_size, self.recipe.face_margin
            self._add("crops", crop_faces(core, track[start:stop], size, margin))
            self._add("track", track[start:stop])
            self._add("valid", valid[start:stop])
        if self.recipe.landmarks:
            self._landmarks(start, stop, track, valid)
        self.done = stop
        for t in range(start - 1, stop - 1):
            self._held.pop(t, None)

    def _find_cuts(self) -> np.ndarray:
        """The cuts of the frames so far, from their signatures and the stride detections
        (and the last frame's, once it is in), as :func:`pipeline.clip.shots.find_cuts`."""
        stride, last = self.detector.stride, self.seen - 1
        keys = [
            (k, box)
            for k, box in zip(self.detector.keyframes, self.detector.boxes, strict=True)
            if k % stride == 0 or (self._ended and k == last)
        ]
        boxes = np.array([box for _, box in keys]).reshape(-1, 4) if keys else None
        return find_cuts_in(self._signatures(), [k for k, _ in keys], boxes)

    def _track_of(self, seen: int) -> np.ndarray:
        """The smoothed box ``(T, 4)`` of every frame so far (of the clip, in a replay)."""
        if self._track is not None:
            return self._track
        count = self.total if self.replay and self.total is not None else seen
        if not self.detector.boxes:  # no face yet: the centre square (no face there either)
            height, width = self.shape
            side = min(height, width)
            box = np.array([width - side, height - side, width + side, height + side]) / 2
            return np.tile(box, (count, 1))
        recipe = self.recipe
        track = self.detector.track(count, recipe.face_smooth, recipe.face_size_smooth, self.cuts)
        if self.replay:
            self._track = track
        return track

    def _landmarks(self, start: int, stop: int, track: np.ndarray, valid: np.ndarray) -> None:
        """Landmarks (and mouth crops) of ``[start, stop)``, from the fits of the frames
        around them: each frame is fitted once, and a fit of a frame no longer held
        comes from the cache (one whose frame is gone and was never fitted is left out)."""
        lo, hi = max(0, start - LOOK_AHEAD), len(track)
        called = np.unique(np.array(self.detector.called, np.int64))
        called = called[(called >= lo) & (called < hi)]
        called = called[[int(t) in self._fits or int(t) in self._held for t in called]]
        cuts = self.cuts[(self.cuts > lo) & (self.cuts < hi)] - lo
        regions = crop_boxes(track[lo:hi], self.recipe.face_margin)
        frames = [self._held.get(t, _GONE) for t in range(lo, hi)]
        with self._stage("landmarks"):
            fitted = track_landmarks(
                frames, track[lo:hi], regions, called - lo,
                np.array(self.detector.keyframes, np.int64) - lo, valid[lo:hi], cuts,
                shape_at=lambda t: self._fit(lo + t, track[lo + t]),
            )  # fmt: skip
        assert fitted.at is not None and fitted.good is not None
        core = (fitted.at >= start - lo) & (fitted.at < stop - lo)
        self.fits += int(core.sum())
        self.confident += int((fitted.good & core).sum())
        self._add("points", fitted.points[start - lo : stop - lo])
        for t in [t for t in self._fits if t < lo]:
            del self._fits[t]
        if "mouth" in self.recipe.streams:
            with self._stage("mouth"):
                runs = valid_runs(valid[lo:hi], cuts)
                mouth = crop_mouths(frames, fitted.points, runs, keep=(start - lo, stop - lo))
            self._add("mouth", mouth[start - lo : stop - lo])

    def _fit(self, t: int, box: np.ndarray) -> np.ndarray:
        """The landmark fit of frame ``t`` in ``box`` (4,), made once."""
        if t not in self._fits:
            self._fits[t] = fit_shape(self._held[t], box)
        return self._fits[t]

    def _add(self, name: str, part: np.ndarray) -> None:
        """Store ``part``, the rows of frames ``[done, done + len(part))`` of ``name``."""
        rows = self._rows.get(name)
        stop = self.done + len(part)
        if rows is None or stop > len(rows):  # first rows, or more frames than reserved
            size = max(stop, self.capacity if rows is None else 2 * len(rows))
            grown = np.empty((size, *part.shape[1:]), part.dtype)
            if rows is not None:
                grown[: self.done] = rows[: self.done]
            self._rows[name] = rows = grown
        rows[self.done : stop] = part

    @contextlib.contextmanager
    def _stage(self, name: str) -> Iterator[None]:
        """Time the block under ``name``, less the detector's time within it."""
        wall, cpu = time.perf_counter(), time.thread_time()
        det_wall, det_cpu = self.detector.seconds, self.detector.cpu_seconds
        try:
            yield
        finally:
            spent = time.thread_time() - cpu - (self.detector.cpu_seconds - det_cpu)
            took = time.perf_counter() - wall - (self.detector.seconds - det_wall)
            self.cpu[name] = self.cpu.get(name, 0.0) + spent
            self.wall[name] = self.wall.get(name, 0.0) + took

    def spent(self) -> dict[str, float]:
        """CPU seconds so far per stage, detection (``detect``) included."""
        return {"detect": self.detector.cpu_seconds, **self.cpu}

    def walls(self) -> dict[str, float]:
        """Seconds so far per stage, detection (``detect``) included."""
        return {"detect": self.detector.seconds, **self.wall}


def charge(
    stream: ClipStream,
    before: dict[str, float],
    walls: dict[str, float],
    timings: dict[str, float],
    cpu: StageCpu,
    from_decode: bool = True,
) -> float:
    """Add what ``stream`` spent since ``before`` (CPU) and ``walls`` (seconds) to ``cpu``
    and ``timings`` (the stages of cuts, track and crops under 'crop'), taking its CPU
    off 'decode' when it ran inside the decode's frame callback. Returns its seconds."""
    took = 0.0
    for name, value in stream.spent().items():
        spent = value - before.get(name, 0.0)
        cpu.add(name, spent)
        if from_decode:
            cpu.add("decode", -spent)
    for name, value in stream.walls().items():
        seconds = value - walls.get(name, 0.0)
        key = name if name in ("detect", "landmarks", "mouth") else "crop"
        timings[key] = timings.get(key, 0.0) + seconds
        took += seconds
    return took
