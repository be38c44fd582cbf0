"""CPU seconds per clip and per stage, process decode against in-process decode, same clips.

    python -m benchmarks.ingest_profile CLIPS_JSON STORE_DIR [--repeats 3] [--recipe JSON]

Run by ``benchmarks.bench_ingest`` in a fresh process. Both paths of
``preprocess_clip`` (``in_process=False``: one ffmpeg process per clip, today's path;
``in_process=True``: PyAV) are timed alternately on the same clips, ``--repeats``
times, and each figure is the median over the repeats of the per-clip mean. CPU
seconds, not wall: the machine may be busy, and ffmpeg runs beside the worker.
``--recipe`` is a recipe's ``to_dict`` as JSON; default: the one ``mscct-pipeline
ingest`` uses by default (:func:`pipeline.ingest.recipe.ingest_recipe`).

Stages (CPU seconds per clip, child processes included): ``probe`` (ffprobe, when it
runs), ``process_start`` (ffmpeg processes started per clip times the CPU of starting
a bare ``ffmpeg -version``), ``video_decode``, ``audio_decode`` (for the process path:
an audio-only ffmpeg run of the same clip minus one start-up), ``face_detection``
(the detections at shot cuts included), ``shots`` (the cuts found in the decoded
frames, :mod:`pipeline.clip.shots`), ``speaker`` (the speaking face's choice,
:mod:`pipeline.clip.speaker`: landmarks on every frame of each track where a shot has 2+
faces, else nearly free), ``tracking_smoothing`` (the track and which frames have a
face), ``cropping``, ``landmarks`` (the 68 points of every frame), ``mouth`` (the mouth
crops), ``head_pose`` (:mod:`pipeline.clip.head_pose`, from the stored landmarks; ingest
computes it per clip, outside ``preprocess_clip``), ``audio_features``, ``speech``
(speech presence, :mod:`pipeline.clip.speech`) and ``commit`` (``write_clip``, durable, with
every stored array). A stage the recipe leaves out (landmarks, mouth, head pose) counts
0. ``total`` is ``preprocess_clip`` plus the head pose, the commit apart. Also the
face-box jitter and detection rate on static-face clips.
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import subprocess
import tempfile
import time
from pathlib import Path

import numpy as np

import schemas
from pipeline.clip.stage_cpu import children_cpu_s
from pipeline.media.ffmpeg_args import AUDIO_TIMELINE, ffmpeg_url, input_guard

STAGES = ("probe", "process_start", "video_decode", "audio_decode", "face_detection", "shots",
          "speaker", "tracking_smoothing", "cropping", "landmarks", "mouth", "head_pose",
          "audio_features", "speech", "commit")  # fmt: skip


def cpu_now() -> float:
    """This process's CPU seconds plus those of its finished children."""
    own = resource.getrusage(resource.RUSAGE_SELF)
    return own.ru_utime + own.ru_stime + children_cpu_s()


def startup_cpu_s(runs: int = 7) -> float:
    """Median CPU seconds of starting (and ending) one ffmpeg process that does nothing."""
    spent = []
    for _ in range(runs):
        before = children_cpu_s()
        subprocess.run(["ffmpeg", "-hide_banner", "-version"], capture_output=True, check=True)
        spent.append(children_cpu_s() - before)
    return statistics.median(spent)


def audio_only_cpu_s(path: Path) -> float:
    """CPU seconds of an ffmpeg decoding only the audio of ``path`` as the pipeline does."""
    before = children_cpu_s()
    subprocess.run(
        ["ffmpeg", "-hide_banner", "-nostdin", "-v", "error", "-threads", "1", *input_guard(path),
         "-i", ffmpeg_url(path), "-map", "0:a:0", "-af", AUDIO_TIMELINE, "-c:a", "pcm_s16le",
         "-ac", "1", "-ar", "16000", "-f", "s16le", "-"],
        capture_output=True, check=True,
    )  # fmt: skip
    return children_cpu_s() - before


def default_recipe() -> schemas.Recipe:
    """The recipe ``mscct-pipeline ingest`` uses by default (the CLI's own function)."""
    from pipeline.ingest.recipe import ingest_recipe

    return ingest_recipe()


def clip_stages(
    path: Path, in_process: bool, store: Path, startup: float, recipe: schemas.Recipe
) -> dict[str, float]:
    """One clip through one path: CPU seconds per stage, and the whole (``total``).

    ``store`` must have been made with ``recipe``.
    """
    from pipeline.clip.transform import preprocess_clip

    before = cpu_now()
    tensors = preprocess_clip(path, recipe, in_process=in_process)
    preprocess = cpu_now() - before
    before = cpu_now()
    extra = tensors.extra_arrays()  # the head pose is computed here, from the landmarks
    head_pose = cpu_now() - before if tensors.landmarks is not None else 0.0
    cpu = tensors.cpu_seconds
    before = cpu_now()
    schemas.write_clip(store, f"c{time.monotonic_ns()}", tensors.face, tensors.audio, {},
                       recipe, extra=extra, durable=True)  # fmt: skip
    commit = cpu_now() - before
    starts = cpu.get("processes", 0.0) * startup
    probes = 1.0 if "probe" in cpu else 0.0  # a probe is one process, not a decode
    decode = cpu.get("decode", 0.0) + cpu.get("decode_children", 0.0)
    decode_starts = (cpu.get("processes", 0.0) - probes) * startup
    if in_process and "processes" not in cpu:
        audio = cpu.get("audio_decode", 0.0)
    else:
        audio = max(0.0, audio_only_cpu_s(path) - startup)
    return {
        "probe": cpu.get("probe", 0.0) + cpu.get("probe_children", 0.0) - probes * startup,
        "process_start": starts,
        "video_decode": max(0.0, decode - decode_starts - audio),
        "audio_decode": audio,
        "face_detection": cpu.get("detect", 0.0),
        "shots": cpu.get("shots", 0.0),
        "speaker": cpu.get("speaker", 0.0),
        "tracking_smoothing": cpu.get("track", 0.0),
        "cropping": cpu.get("crop", 0.0),
        "landmarks": cpu.get("landmarks", 0.0),
        "mouth": cpu.get("mouth", 0.0),
        "head_pose": head_pose,
        "audio_features": cpu.get("features", 0.0),
        "speech": cpu.get("speech", 0.0),
        "commit": commit,
        "total": preprocess + head_pose,
        "processes": cpu.get("processes", 0.0),
    }


def profile(paths: list[Path], store: Path, repeats: int, recipe: schemas.Recipe) -> dict:
    """Median over ``repeats`` of the per-clip mean of every stage, for both paths."""
    from pipeline.clip.transform import preprocess_clip

    schemas.create_store(store, recipe)
    for mode in (False, True):  # imports, the detector and the landmark model
        preprocess_clip(paths[0], recipe, in_process=mode).extra_arrays()
    startup = startup_cpu_s()
    runs: dict[str, list[dict[str, float]]] = {"process": [], "in_process": []}
    for _ in range(repeats):
        for name, mode in (("process", False), ("in_process", True)):
            per_clip = [clip_stages(p, mode, store, startup, recipe) for p in paths]
            runs[name].append({k: statistics.fmean(c[k] for c in per_clip) for k in per_clip[0]})
    out: dict = {"ffmpeg_start_cpu_s": round(startup, 4), "repeats": repeats,
                 "recipe": recipe.to_dict()}  # fmt: skip
    for name, reps in runs.items():
        stages = {k: round(statistics.median(r[k] for r in reps), 4) for k in reps[0]}
        stages["clips_per_cpu_s"] = round(1 / stages["total"], 3)
        out[name] = stages
    out["ratio_clips_per_cpu_s"] = round(out["in_process"]["clips_per_cpu_s"]
                                         / out["process"]["clips_per_cpu_s"], 3)  # fmt: skip
    out["ratios_per_repeat"] = [
        round(p["total"] / i["total"], 3)
        for p, i in zip(runs["process"], runs["in_process"], strict=True)
    ]
    return out


def static_face_clip(src: Path, dst: Path, seconds: float = 3.0) -> Path:
    """``src``'s first frame held for ``seconds`` at 25 fps (at most: no longer than the
    audio), with ``src``'s audio and fresh sensor-like noise on every frame: a face that
    does not move, so every change of its box is jitter."""
    subprocess.run(
        ["ffmpeg", "-nostdin", "-v", "error", "-y", "-i", ffmpeg_url(src),
         "-filter_complex", "[0:v]trim=end_frame=1,loop=loop=-1:size=1,setpts=N/25/TB,"
         "noise=alls=12:allf=t+u:all_seed=1[v]",
         "-map", "[v]", "-map", "0:a:0", "-t", f"{seconds}", "-shortest", "-r", "25",
         "-c:v", "libx264", "-preset", "ultrafast", "-pix_fmt", "yuv420p", "-c:a", "aac",
         ffmpeg_url(dst)],
        check=True, capture_output=True, timeout=120,
    )  # fmt: skip
    return dst


def box_jitter(boxes: np.ndarray) -> float:
    """Mean |frame-to-frame change of the box centre| over the box side, of ``(T, 4)`` boxes."""
    centre = (boxes[:, :2] + boxes[:, 2:]) / 2
    side = np.maximum(boxes[:, 2] - boxes[:, 0], 1e-9)
    step = np.linalg.norm(np.diff(centre, axis=0), axis=1)
    return float(np.mean(step / side[1:]))


def jitter_and_rate(paths: list[Path], recipe: schemas.Recipe) -> dict:
    """Face-box jitter on static-face versions of ``paths`` and detection rate on ``paths``."""
    from pipeline.clip.transform import preprocess_clip

    out: dict = {}
    with tempfile.TemporaryDirectory() as tmp:
        static = [static_face_clip(p, Path(tmp) / f"s{i}.mp4") for i, p in enumerate(paths)]
        for name, mode in (("process", False), ("in_process", True)):
            jitter = []
            for path in static:
                boxes = preprocess_clip(path, recipe, in_process=mode).face_boxes
                assert boxes is not None
                jitter.append(box_jitter(boxes))
            rate = [preprocess_clip(p, recipe, in_process=mode).face_detection_rate for p in paths]
            out[name] = {"static_face_box_jitter": round(statistics.fmean(jitter), 6),
                         "detection_rate": round(statistics.fmean(rate), 4)}  # fmt: skip
    return out


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("clips", help="JSON list of clip paths")
    parser.add_argument("store", type=Path)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--recipe", help="a recipe's to_dict as JSON (default: ingest's)")
    parser.add_argument("--no-faces", action="store_true", help="skip the jitter and rate")
    args = parser.parse_args(argv)
    paths = [Path(p) for p in json.loads(args.clips)]
    recipe = (
        default_recipe()
        if args.recipe is None
        else schemas.Recipe.from_dict(json.loads(args.recipe))
    )
    result = profile(paths, args.store, args.repeats, recipe)
    if not args.no_faces:
        result["faces"] = jitter_and_rate(paths, recipe)
    print(json.dumps(result))


if __name__ == "__main__":
    main()
