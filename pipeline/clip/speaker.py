"""The speaking face: every large face of a shot tracked, the one whose mouth moves with the voice kept.

A clip may show several faces (an interview, a two-person shot) or something the
detector takes for one (an on-screen caption, a logo). The crops must follow the
person who speaks, so each shot chooses its face by the audio. The rule, per shot
(:mod:`pipeline.clip.shots` gives the shots; constants below):

1. **Candidates.** A detection is a candidate when its box side is at least
   :data:`MIN_FACE_FRACTION` of the frame's short side and at least
   :data:`MIN_FACE_PX` pixels: a face in the background or a thumbnail is not the
   one to crop. Candidates of successive detection frames are linked into tracks by
   box overlap (IoU at least :data:`pipeline.clip.faces.SAME_FACE_IOU`, best overlaps
   first); a track not continued within :data:`MAX_GAP_STRIDES` detector strides
   ends, so a face that leaves and comes back starts a new track.
2. **One track.** A shot with at most one track keeps the tracker's own choice
   (:func:`pipeline.clip.faces.follow_face`), at no extra cost: nothing is fitted or scored.
3. **Several tracks.** The 68 dlib landmarks (:mod:`pipeline.clip.landmarks`) are fitted
   on *every* frame of each track's span, inside the box interpolated between its
   detections. The fits on the track's detection frames are checked for a face
   shape: the :func:`shape_distance` (Procrustes: similarity-aligned to
   :data:`pipeline.clip.mouth.REFERENCE_FACE`, both scaled to unit size) above
   :data:`MAX_SHAPE_DISTANCE` is no face (the predictor always returns 68 points,
   but on a caption or a logo they do not keep a face's proportions). A track with
   more than half of its detections rejected is dropped.
4. **Mouth against voice.** A track's mouth opening per frame is the mean of the
   three inner-lip gaps (points 61-67, 62-66, 63-65) over the outer eye-corner
   distance (36-45), which does not change as the mouth moves. The voice's envelope
   is the RMS of the 16 kHz audio under each 40 ms frame. Their Pearson correlation
   is taken over the track's frames of the shot at each lag of up to
   :data:`MAX_LAG` frames either way (lips lead or trail the sound by up to 80 ms)
   and the largest is the track's score. The track with the highest score is kept;
   the shot's other detections are dropped, so that frames where only the other
   faces were found have no face (``face_valid`` 0).
5. **Clip measures.** ``speaker_correlation``: the kept tracks' scores averaged
   over the scored shots, weighted by their frames (null when no shot had two
   tracks); ``face_tracks``: the most tracks of any shot; ``no_speaker``: the
   correlation is below :data:`NO_SPEAKER_CORRELATION` (no face moves its mouth
   with the voice: a voice-over, a dubbed clip, a lip-sync fake gone wrong).

Limits: a shot with one face is not scored, so a voice-over on a single face is
never flagged; two people speaking at once are told apart only by whose lips follow
the louder voice; a mouth hidden by a hand or a microphone scores low; landmarks
fitted on a profile are poor, and so is its score. Scoring needs the 68-point model
(``mscct[landmarks]``); without it every shot keeps the tracker's choice.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from pipeline.clip.faces import SAME_FACE_IOU, StrideDetector, interpolate_boxes, iou
from pipeline.clip.landmarks import fit_shape, landmarks_available
from pipeline.clip.mouth import REFERENCE_FACE
from pipeline.clip.shots import shot_bounds

#: A candidate face's box side is at least this fraction of the frame's short side ...
MIN_FACE_FRACTION = 0.15
#: ... and at least this many pixels (below it the landmarks cannot see the lips).
MIN_FACE_PX = 40
#: A track ends when no candidate continues it within this many detector strides.
MAX_GAP_STRIDES = 2
#: Largest lag, in frames either way, between mouth opening and voice envelope.
MAX_LAG = 2
#: A track needs this many frames in a shot to be scored (0.4 s at 25 fps).
MIN_SCORED_FRAMES = 10
#: Procrustes distance (unit-size shapes) above which a fit is no face.
MAX_SHAPE_DISTANCE = 0.1
#: A clip whose speaker_correlation is below this is flagged ``no_speaker``.
NO_SPEAKER_CORRELATION = 0.5
INNER_LIPS = ((61, 67), (62, 66), (63, 65))
EYE_CORNERS = (36, 45)


@dataclass
class FaceTrack:
    """One face followed through a shot: its detection frames and boxes (frame px)."""

    frames: list[int] = field(default_factory=list)
    boxes: list[np.ndarray] = field(default_factory=list)  # (4,) each


@dataclass(frozen=True)
class SpeakerChoice:
    """What the choice of the speaking face measured in a clip (module docstring, step 5)."""

    correlation: float | None  # frame-weighted kept score over scored shots; None: none scored
    face_tracks: int  # the most candidate tracks of any shot

    @property
    def no_speaker(self) -> bool | None:
        """True when no face's mouth follows the voice; None when nothing was scored."""
        if self.correlation is None:
            return None
        return self.correlation < NO_SPEAKER_CORRELATION


def large_enough(boxes: np.ndarray, short_side: int) -> np.ndarray:
    """``(K,)`` bool: the boxes ``(K, 4)`` big enough to be candidates (step 1)."""
    side = np.minimum(boxes[:, 2] - boxes[:, 0], boxes[:, 3] - boxes[:, 1])
    return np.asarray(side >= max(MIN_FACE_PX, MIN_FACE_FRACTION * short_side))


def link_tracks(
    keyframes: list[int], candidates: list[np.ndarray], max_gap: int
) -> list[FaceTrack]:
    """Tracks from detection frames ``keyframes`` (K,) increasing and their boxes ``(K_i, 4)``.

    Each detection joins the open track it overlaps most (IoU >= SAME_FACE_IOU, the best
    pairs first) whose last detection is at most ``max_gap`` frames back, else opens one.
    """
    tracks: list[FaceTrack] = []
    for t, boxes in zip(keyframes, candidates, strict=True):
        open_ = [k for k, tr in enumerate(tracks) if t - tr.frames[-1] <= max_gap]
        pairs = [
            (float(iou(boxes, tracks[k].boxes[-1])[i]), i, k)
            for k in open_
            for i in range(len(boxes))
        ]
        taken_boxes: set[int] = set()
        taken_tracks: set[int] = set()
        for overlap, i, k in sorted(pairs, reverse=True):
            if overlap < SAME_FACE_IOU or i in taken_boxes or k in taken_tracks:
                continue
            taken_boxes.add(i)
            taken_tracks.add(k)
            tracks[k].frames.append(t)
            tracks[k].boxes.append(boxes[i])
        for i in sorted(set(range(len(boxes))) - taken_boxes):
            tracks.append(FaceTrack([t], [boxes[i]]))
    return tracks


def shape_distance(points: np.ndarray, reference: np.ndarray = REFERENCE_FACE) -> float:
    """Procrustes distance in [0, 1] of ``points`` (68, 2) from ``reference`` (68, 2).

    Both are centred and scaled to unit norm, ``points`` rotated onto ``reference``
    (no reflection); the distance is the norm of what is left. Fits on the synthetic
    faces lie at 0.02-0.03; fits in boxes over a caption, noise or flat grey at 0.11-0.14.
    """
    a = points - points.mean(axis=0)
    b = reference - reference.mean(axis=0)
    a = a / max(float(np.linalg.norm(a)), 1e-9)
    b = b / max(float(np.linalg.norm(b)), 1e-9)
    u, s, vt = np.linalg.svd(a.T @ b)
    if np.linalg.det(u @ vt) < 0:  # the best rotation would be a reflection
        s[-1] = -s[-1]
    return float(np.sqrt(max(0.0, 1.0 - float(s.sum()) ** 2)))


def mouth_opening(points: np.ndarray) -> np.ndarray:
    """``(N,)`` inner-lip gap over outer eye-corner distance of landmarks ``(N, 68, 2)``."""
    gaps = [np.linalg.norm(points[:, a] - points[:, b], axis=-1) for a, b in INNER_LIPS]
    eyes = np.linalg.norm(points[:, EYE_CORNERS[0]] - points[:, EYE_CORNERS[1]], axis=-1)
    return np.asarray(np.mean(gaps, axis=0) / np.maximum(eyes, 1e-6))


def voice_envelope(signal: np.ndarray, sample_rate: int, fps: float, num_frames: int) -> np.ndarray:
    """RMS ``(num_frames,)`` of ``signal`` (N,) under each video frame (0 past its end)."""
    step = round(sample_rate / fps)
    covered = min(num_frames, len(signal) // step)
    out = np.zeros(num_frames, np.float64)
    chunks = np.asarray(signal[: covered * step], np.float64).reshape(covered, step)
    out[:covered] = np.sqrt((chunks**2).mean(axis=1))
    return out


def lagged_correlation(mouth: np.ndarray, voice: np.ndarray, max_lag: int = MAX_LAG) -> float:
    """The largest Pearson correlation of ``mouth`` (N,) and ``voice`` (N,) over lags
    ``-max_lag .. max_lag`` (0.0 where either is constant over the overlap)."""
    best = -1.0
    n = len(mouth)
    for lag in range(-max_lag, max_lag + 1):
        x = mouth[max(0, -lag) : n - max(0, lag)]
        y = voice[max(0, lag) : n - max(0, -lag)]
        if len(x) < 3 or x.std() < 1e-9 or y.std() < 1e-9:
            continue
        best = max(best, float(np.corrcoef(x, y)[0, 1]))
    return best if best > -1.0 else 0.0


def track_span(track: FaceTrack) -> tuple[np.ndarray, np.ndarray] | None:
    """The frames ``(N,)`` a track spans and its box ``(N, 4)`` on each (interpolated
    between its detections); None when it is too short to score."""
    first, last = track.frames[0], track.frames[-1]
    if last - first + 1 < MIN_SCORED_FRAMES:
        return None
    span = np.arange(first, last + 1)
    boxes = interpolate_boxes(np.array(track.frames) - first, np.stack(track.boxes), len(span))
    return span, boxes


def score_points(track: FaceTrack, points: np.ndarray, voice: np.ndarray) -> float | None:
    """The score of ``track`` from its fits ``points`` (N, 68, 2) on the frames of
    :func:`track_span` against ``voice`` (T,) (steps 3-4); None when mostly no face."""
    span = np.arange(track.frames[0], track.frames[-1] + 1)
    detected = np.array(track.frames) - track.frames[0]
    rejected = [shape_distance(points[i]) > MAX_SHAPE_DISTANCE for i in detected]
    if sum(rejected) * 2 > len(rejected):
        return None
    return lagged_correlation(mouth_opening(points), voice[span])


def score_track(frames: np.ndarray, track: FaceTrack, voice: np.ndarray) -> float | None:
    """The score of ``track`` on ``frames`` (T, H, W, 3) against ``voice`` (T,) (steps 3-4).

    None when it is too short to score or mostly no face.
    """
    spanned = track_span(track)
    if spanned is None:
        return None
    points = np.stack([fit_shape(frames[t], box) for t, box in zip(*spanned, strict=True)])
    return score_points(track, points, voice)


@dataclass
class SpeakerPlan:
    """A clip's shots with several face tracks (step 1), before any fit.

    ``shots`` holds ``(start, stop, tracks)`` of each such shot; ``most`` is the most
    tracks of any shot. :meth:`fits` says which frame each track needs fitted on, so
    that a clip streamed frame by frame fits them in one pass over its frames.
    """

    shots: list[tuple[int, int, list[FaceTrack]]]
    most: int

    def tracks(self) -> list[FaceTrack]:
        return [track for _, _, tracks in self.shots for track in tracks]

    def fits(self) -> dict[int, list[tuple[int, np.ndarray]]]:
        """``{frame: [(track index in tracks(), box (4,)), ...]}`` of every scored track."""
        out: dict[int, list[tuple[int, np.ndarray]]] = {}
        for k, track in enumerate(self.tracks()):
            spanned = track_span(track)
            if spanned is None:
                continue
            for t, box in zip(*spanned, strict=True):
                out.setdefault(int(t), []).append((k, box))
        return out


def plan_speaker(
    detector: StrideDetector, cuts: np.ndarray, num_frames: int, short_side: int
) -> SpeakerPlan:
    """The tracks of each shot of ``num_frames`` frames (frames' short side ``short_side``)
    from ``detector``'s candidates; only shots with several are kept."""
    order = np.argsort(detector.keyframes, kind="stable")
    keyframes = [detector.keyframes[i] for i in order]
    candidates = [detector.candidates[i] for i in order]
    shots, most = [], 0
    for start, stop in shot_bounds(num_frames, cuts):
        inside = [k for k, t in enumerate(keyframes) if start <= t < stop]
        big = [candidates[k][large_enough(candidates[k], short_side)] for k in inside]
        tracks = link_tracks([keyframes[k] for k in inside], big, MAX_GAP_STRIDES * detector.stride)
        most = max(most, len(tracks))
        if len(tracks) >= 2:
            shots.append((start, stop, tracks))
    return SpeakerPlan(shots, most)


def choose_from_fits(
    plan: SpeakerPlan,
    fitted: dict[tuple[int, int], np.ndarray],
    detector: StrideDetector,
    voice: np.ndarray,
) -> SpeakerChoice:
    """Steps 3-5 from the fits ``{(track index, frame): (68, 2)}`` of :meth:`SpeakerPlan.fits`
    and the voice envelope ``voice`` (T,): ``detector``'s detections of each scored shot
    are narrowed to the speaker's, in place."""
    kept: dict[int, np.ndarray] = {}  # keyframe -> the speaker's box, in rewritten shots
    rewritten: list[tuple[int, int]] = []
    scores = []
    index = 0
    for start, stop, tracks in plan.shots:
        scored = []
        for track in tracks:
            if track_span(track) is not None:
                span = range(track.frames[0], track.frames[-1] + 1)
                points = np.stack([fitted[(index, t)] for t in span])
                scored.append((score_points(track, points, voice), track))
            index += 1
        valid = [(s, tr) for s, tr in scored if s is not None]
        if not valid:
            continue
        score, best = max(valid, key=lambda pair: pair[0])
        scores.append((score, stop - start))
        rewritten.append((start, stop))
        kept.update(zip(best.frames, best.boxes, strict=True))
    if rewritten:
        _restrict(detector, rewritten, kept)
    correlation = None
    if scores:
        weights = np.array([w for _, w in scores], np.float64)
        correlation = float(np.dot([s for s, _ in scores], weights) / weights.sum())
    return SpeakerChoice(correlation=correlation, face_tracks=plan.most)


def choose_speaker(
    frames: np.ndarray,
    detector: StrideDetector,
    cuts: np.ndarray,
    signal: np.ndarray,
    sample_rate: int,
    fps: float,
) -> SpeakerChoice:
    """Keep, in each shot of ``frames`` (T, H, W, 3) with several face tracks, only the
    detections of the speaking face: ``detector``'s keyframes, boxes and candidates are
    rewritten in place. ``signal`` (N,) is the clip's mono audio from frame 0 on.
    """
    num_frames = len(frames)
    plan = plan_speaker(detector, cuts, num_frames, min(frames.shape[1:3]))
    if not plan.shots or not landmarks_available():
        return SpeakerChoice(correlation=None, face_tracks=plan.most)
    fitted = {
        (k, t): fit_shape(frames[t], box) for t, boxes in plan.fits().items() for k, box in boxes
    }
    voice = voice_envelope(signal, sample_rate, fps, num_frames)
    return choose_from_fits(plan, fitted, detector, voice)


def _restrict(
    detector: StrideDetector, shots: list[tuple[int, int]], kept: dict[int, np.ndarray]
) -> None:
    """Drop the detections of ``shots`` other than ``kept`` (keyframe -> box), in place."""
    frames, boxes, candidates = [], [], []
    for t, box, cands in zip(detector.keyframes, detector.boxes, detector.candidates, strict=True):
        if any(a <= t < b for a, b in shots):
            if t not in kept:
                continue
            box, cands = kept[t], kept[t][None]
        frames.append(t)
        boxes.append(box)
        candidates.append(cands)
    detector.keyframes, detector.boxes, detector.candidates = frames, boxes, candidates


def manifest_columns(choice: SpeakerChoice | None) -> dict[str, float | int | bool | None]:
    """The manifest's ``speaker_correlation``, ``face_tracks`` and ``no_speaker`` of a clip."""
    if choice is None:
        return {"speaker_correlation": None, "face_tracks": None, "no_speaker": None}
    return {
        "speaker_correlation": choice.correlation,
        "face_tracks": choice.face_tracks,
        "no_speaker": choice.no_speaker,
    }
