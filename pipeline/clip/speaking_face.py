"""The speaking face of a clip whose frames were streamed, not kept: more decodes where needed.

:func:`pipeline.clip.speaker.choose_from_fits` scores each face track of a shot with
several by its mouth's landmark fits on every frame of its span. Which shots have
several tracks is known only once the clip has been seen. A clip of small frames
(224²) is still held whole then, and is fitted and cropped again from its frames. A
:class:`~pipeline.clip.clip_stream.ClipStream` of large frames holds none past its
look-ahead, so such a clip with such a shot (and the 68-point model installed) is
decoded again to fit them (one pass over its frames, the fits of every track at
once), and once more, when the choice changed the face track, to crop along the kept
detections. A clip without such a shot (one face, or none large enough) costs
nothing more: most clips.
:func:`source_boxes` turns boxes into the source's pixels.
"""

from __future__ import annotations

import time

import numpy as np

from pipeline import media
from pipeline.clip.clip_stream import ClipStream, Replay, StreamResult, charge
from pipeline.clip.landmarks import fit_shape, landmarks_available
from pipeline.clip.speaker import SpeakerChoice, choose_from_fits, plan_speaker, voice_envelope
from pipeline.clip.stage_cpu import StageCpu
from pipeline.clip.transform_decode import SourceFacts
from schemas.recipe import Recipe


def speaking_face(
    stream: ClipStream,
    replay: Replay,
    signal: np.ndarray,
    decoded_by: str,
    recipe: Recipe,
    timings: dict[str, float],
    cpu: StageCpu,
) -> tuple[StreamResult, SpeakerChoice]:
    """The clip stream's outputs, after the choice of the speaking face (:mod:`pipeline.clip.speaker`).

    Only a clip with a shot of several face tracks (and the 68-point model) needs more:
    the tracks' landmark fits on every frame of their spans, and, when the choice
    changed the track, crops along the kept detections: from the frames themselves
    when the stream held the clip whole (small frames), else from a second and a
    third decode (``replay``). Adds 'speaker' (the fits, a decode included, and the
    scoring) to ``cpu``; the crops count as a decode with their stages.
    """
    faces, detector = stream.result(), stream.detector
    kept = stream.kept_replay()
    try:
        num_frames = len(faces.track)
        plan = plan_speaker(detector, faces.cuts, num_frames, min(stream.shape))
        if not plan.shots or not landmarks_available():
            return faces, SpeakerChoice(correlation=None, face_tracks=plan.most)
        frames = replay if kept is None else kept
        processes = 1.0 if decoded_by == "ffmpeg" and kept is None else 0.0
        with cpu.stage("speaker"):
            cpu.add("processes", processes)
            fitted = _fits(frames, plan.fits())
            voice = voice_envelope(signal, recipe.sample_rate, float(recipe.fps), num_frames)
            choice = choose_from_fits(plan, fitted, detector, voice)
            smooth, size_smooth = recipe.face_smooth, recipe.face_size_smooth
            track = detector.track(num_frames, smooth, size_smooth, faces.cuts)
        if np.array_equal(track, faces.track):
            return faces, choice
        again = ClipStream(recipe, detector=detector, cuts=faces.cuts, num_frames=num_frames)
        clock = time.perf_counter()
        with cpu.stage("decode"):
            cpu.add("processes", processes)
            frames(again)
            again.end()
            again.finish()
        took = charge(again, {}, {}, timings, cpu)
        timings["decode"] = timings.get("decode", 0.0) + time.perf_counter() - clock - took
        again.release()
        return again.result(), choice
    finally:
        stream.release()


def _fits(
    frames: Replay, needed: dict[int, list[tuple[int, np.ndarray]]]
) -> dict[tuple[int, int], np.ndarray]:
    """The landmark fits ``{(track, frame): (68, 2)}`` of ``needed`` (:meth:`SpeakerPlan.fits`),
    in one pass over the frames ``frames`` gives."""
    fitted: dict[tuple[int, int], np.ndarray] = {}

    def fit_at(t: int, frame: np.ndarray) -> None:
        for k, box in needed.get(t, ()):
            fitted[(k, t)] = fit_shape(frame, box)

    frames(fit_at)
    return fitted


def source_boxes(
    boxes: np.ndarray, decoded: tuple[int, int], source: SourceFacts | media.MediaInfo
) -> np.ndarray:
    """``boxes`` (T, 4) in the decoded frame's pixels → the source's displayed pixels
    (float32): x by source width / decoded width ``(W, H)``, y by the heights'."""
    width, height = decoded
    sx = source.width / width if width else 1.0
    sy = source.height / height if height else 1.0
    return (boxes * np.array([sx, sy, sx, sy])).astype(np.float32)
