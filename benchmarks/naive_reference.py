"""Baselines for the ingest benchmark: the naive per-clip recipe, and the decode-only bound.

``naive_process`` does what the peer preparation scripts do: audio through a ``.wav``
file read back with scipy, dlib's HOG detector with one upsampling on every
full-resolution RGB frame, a per-frame crop of the first face found (no tracking,
no smoothing: the previous box is reused when a frame has none), and the same
MFCC+Δ features. ``decode_only`` is ffmpeg decoding the clip to raw RGB at 25 fps
into a pipe that is thrown away: no pipeline can be faster than that.

Run as a module to time one clip, stage by stage, next to both baselines::

    python -m benchmarks.naive_reference CLIP.mp4 [--repeat 5]
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import tempfile
import time
from pathlib import Path

import dlib
import numpy as np
from PIL import Image
from python_speech_features import delta, mfcc
from scipy.io import wavfile

CROP_SIZE = 112
FPS = 25
SAMPLE_RATE = 16000
MARGIN = 0.3


def _url(path: Path) -> str:
    return "file:" + str(Path(path).absolute())


def naive_process(path: Path, workdir: Path) -> tuple[np.ndarray, np.ndarray]:
    """The peer recipe: ``(T, 112, 112, 3)`` uint8 crops and ``(T, 104)`` float32 MFCC+Δ."""
    wav = Path(workdir) / (Path(path).stem + ".wav")
    subprocess.run(
        ["ffmpeg", "-nostdin", "-v", "error", "-y", "-i", _url(path), "-vn", "-ac", "1",
         "-ar", str(SAMPLE_RATE), "file:" + str(wav.absolute())],
        check=True, timeout=600,
    )  # fmt: skip
    rate, signal = wavfile.read(wav)

    probe = subprocess.run(
        ["ffprobe", "-v", "error", "-select_streams", "v:0", "-show_entries",
         "stream=width,height", "-of", "json", _url(path)],
        check=True, capture_output=True, timeout=60,
    )  # fmt: skip
    stream = json.loads(probe.stdout)["streams"][0]
    width, height = int(stream["width"]), int(stream["height"])
    raw = subprocess.run(
        ["ffmpeg", "-nostdin", "-v", "error", "-i", _url(path), "-map", "0:v:0",
         "-vf", f"fps={FPS},scale={width}:{height}", "-pix_fmt", "rgb24", "-f", "rawvideo",
         "pipe:"],
        check=True, capture_output=True, timeout=600,
    ).stdout  # fmt: skip
    frames = np.frombuffer(raw, np.uint8).reshape(-1, height, width, 3)

    detector = dlib.get_frontal_face_detector()
    crops = np.zeros((len(frames), CROP_SIZE, CROP_SIZE, 3), np.uint8)
    box = None
    for t, frame in enumerate(frames):
        found = detector(frame, 1)
        if found:
            r = found[0]
            box = (r.left(), r.top(), r.right(), r.bottom())
        if box is None:
            continue
        cx, cy = (box[0] + box[2]) / 2, (box[1] + box[3]) / 2
        half = max(box[2] - box[0], box[3] - box[1]) * (1 + MARGIN) / 2
        x0, y0 = max(0, int(cx - half)), max(0, int(cy - half))
        x1, y1 = min(width, int(cx + half)), min(height, int(cy + half))
        face = Image.fromarray(np.ascontiguousarray(frame[y0:y1, x0:x1]))
        crops[t] = np.asarray(face.resize((CROP_SIZE, CROP_SIZE), Image.Resampling.BILINEAR))

    cep = mfcc(signal.astype(np.float64), rate, winlen=0.025, winstep=0.01, numcep=13,
               nfilt=26, nfft=512, appendEnergy=True)  # fmt: skip
    hops = np.concatenate([cep, delta(cep, 2)], axis=1).astype(np.float32)
    want = 4 * len(frames)
    if len(hops) < want:
        hops = np.concatenate([hops, np.repeat(hops[-1:], want - len(hops), axis=0)])
    return crops, hops[:want].reshape(len(frames), 104)


def decode_only(path: Path) -> int:
    """Decode ``path`` to raw RGB at 25 fps into a discarded pipe; returns the frame count."""
    args = [
        "ffmpeg", "-nostdin", "-v", "error", "-nostats", "-progress", "pipe:2",
        "-threads", "1", "-i", _url(path), "-map", "0:v:0", "-vf", f"fps={FPS}",
        "-pix_fmt", "rgb24", "-f", "rawvideo", "pipe:1",
    ]  # fmt: skip
    proc = subprocess.Popen(
        args, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )
    assert proc.stdout is not None
    while proc.stdout.read(1 << 20):
        pass
    stderr = proc.stderr.read().decode("utf-8", "replace") if proc.stderr else ""
    if proc.wait() != 0:  # stdout is at its end: ffmpeg is exiting
        raise RuntimeError(f"ffmpeg failed on {path}: {stderr.strip()[-300:]}")
    counts = [line.split("=", 1)[1] for line in stderr.splitlines() if line.startswith("frame=")]
    return int(counts[-1]) if counts else 0


def decode_video(
    path: Path, size: tuple[int, int], fps: float, max_seconds: float, timeout_s: float
) -> np.ndarray:
    """Only the video of ``path``: ``(T, H, W, 3)`` uint8 RGB at ``fps``, ``size=(W, H)``.

    One ffmpeg for one stream, guarded and supervised as the pipeline's own runs are: the
    two-process decode that :func:`breakdown` times against ``decode_clip``.
    """
    from pipeline.media.ffmpeg_args import ffmpeg_url, input_guard
    from pipeline.media.process import run

    width, height = size
    args = [
        "ffmpeg", "-nostdin", "-v", "error", "-filter_threads", "1",
        *input_guard(path), "-threads", "1", "-i", ffmpeg_url(path),
        "-map", "0:v:0", "-vf", f"fps=fps={fps}:start_time=0,scale={width}:{height}",
        "-t", f"{max_seconds}", "-pix_fmt", "rgb24", "-f", "rawvideo", "pipe:",
    ]  # fmt: skip
    out = run(args, timeout_s, ffmpeg_url(path))
    frame_bytes = width * height * 3
    count = len(out) // frame_bytes
    return np.frombuffer(out, np.uint8, count=count * frame_bytes).reshape(count, height, width, 3)


def decode_audio(path: Path, sample_rate: int, max_seconds: float, timeout_s: float) -> np.ndarray:
    """Only the first audio stream of ``path``: mono int16 PCM at ``sample_rate``, ``(N,)``.

    ffmpeg resamples and downmixes (``-ac 1`` averages the channels) and places the
    samples on the container's timeline, as ``decode_clip`` does.
    """
    from pipeline.media.ffmpeg_args import AUDIO_TIMELINE, ffmpeg_url, input_guard
    from pipeline.media.process import run

    args = [
        "ffmpeg", "-nostdin", "-v", "error", *input_guard(path), "-threads", "1",
        "-i", ffmpeg_url(path), "-map", "0:a:0", "-af", AUDIO_TIMELINE, "-t", f"{max_seconds}",
        "-acodec", "pcm_s16le", "-ac", "1", "-ar", str(sample_rate), "-f", "s16le", "pipe:",
    ]  # fmt: skip
    out = run(args, timeout_s, ffmpeg_url(path))
    return np.frombuffer(out, dtype="<i2", count=len(out) // 2)


def _median_time(fn, repeat: int) -> float:  # type: ignore[no-untyped-def]
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def breakdown(path: Path, repeat: int = 5) -> dict[str, float]:
    """Median seconds of each stage of ``preprocess_clip`` on ``path``, and of the baselines."""
    from pipeline import media
    from pipeline.clip.audio_features import frame_features
    from pipeline.clip.faces import StrideDetector, crop_faces
    from pipeline.clip.transform import preprocess_clip
    from schemas.recipe import Recipe

    recipe = Recipe()
    info = media.probe(path)
    size = (info.width, info.height)
    frames = decode_video(path, size, FPS, 60, 600)
    samples = decode_audio(path, SAMPLE_RATE, 60, 600)

    def detect() -> StrideDetector:
        detector = StrideDetector(stride=recipe.face_stride)
        for t, frame in enumerate(frames):
            detector(t, frame)
        detector.finish(len(frames) - 1, frames[-1])
        return detector

    boxes = detect().track(len(frames))
    result = {
        "frames": float(len(frames)),
        "probe": _median_time(lambda: media.probe(path), repeat),
        "decode_video": _median_time(lambda: decode_video(path, size, FPS, 60, 600), repeat),
        "decode_audio": _median_time(lambda: decode_audio(path, SAMPLE_RATE, 60, 600), repeat),
        "decode_both_one_process": _median_time(
            lambda: media.decode_clip(path, size, FPS, SAMPLE_RATE, 60, 600), repeat
        ),
        "faces_detect": _median_time(detect, repeat),
        "faces_crop": _median_time(lambda: crop_faces(frames, boxes, recipe.crop_size), repeat),
        "features": _median_time(
            lambda: frame_features(samples, SAMPLE_RATE, len(frames), recipe.features), repeat
        ),
        "preprocess_clip": _median_time(lambda: preprocess_clip(path, recipe), repeat),
        "decode_only": _median_time(lambda: decode_only(path), repeat),
    }
    with tempfile.TemporaryDirectory() as workdir:
        result["naive_process"] = _median_time(
            lambda: naive_process(path, Path(workdir)), max(1, repeat // 2)
        )
    result["ratio_vs_decode_only"] = result["decode_only"] / result["preprocess_clip"]
    result["speedup_vs_naive"] = result["naive_process"] / result["preprocess_clip"]
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("clip", type=Path)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    print(json.dumps({k: round(v, 4) for k, v in breakdown(args.clip, args.repeat).items()},
                     indent=2))  # fmt: skip


if __name__ == "__main__":
    main()
