"""Small real media files for the media tests, made with ffmpeg from a real face.

The face is scikit-image's astronaut, scaled so that it is about 110 px wide (as in
face-centred 224² clips). A 224² window slides over it ``SPEED`` px per frame to the
right, so the face moves left by the same amount in the clip: its centre in frame
``t`` is :func:`face_centre`. The speech is ffmpeg's ``flite`` source.
"""

from __future__ import annotations

import functools
import subprocess
from pathlib import Path

import dlib
import numpy as np
from PIL import Image
from skimage import data

SIZE = 224
SPEED = 1.5  # px per frame the face moves left
SCALE = 1.3  # astronaut upscaling: its 87 px face becomes ~113 px
TEXT = "hello world, this is a short test of the face and voice pipeline"


@functools.cache
def _scene() -> tuple[np.ndarray, float, float]:
    """The upscaled astronaut and the centre (x, y) of its face, as dlib sees it."""
    img = data.astronaut()
    big = np.asarray(
        Image.fromarray(img).resize(
            (round(img.shape[1] * SCALE), round(img.shape[0] * SCALE)), Image.Resampling.BILINEAR
        )
    )
    (rect,) = [r for r in dlib.get_frontal_face_detector()(big, 0) if r.top() < 300]
    return big, (rect.left() + rect.right()) / 2, (rect.top() + rect.bottom()) / 2


def _origin(t: int) -> tuple[int, int]:
    """Top-left corner (x, y) of the window in the scene at frame ``t``."""
    _, fx, fy = _scene()
    x0 = round(fx - SIZE / 2 - 35 + SPEED * t)
    y0 = round(fy - SIZE / 2)
    return max(0, x0), max(0, y0)


def face_centre(t: int) -> tuple[float, float]:
    """Centre (x, y) of the face in frame ``t`` of a made clip."""
    _, fx, fy = _scene()
    x0, y0 = _origin(t)
    return fx - x0, fy - y0


def face_frames(num_frames: int) -> np.ndarray:
    """``(num_frames, 224, 224, 3)`` uint8 frames of the sliding face."""
    big, _, _ = _scene()
    out = np.empty((num_frames, SIZE, SIZE, 3), np.uint8)
    for t in range(num_frames):
        x0, y0 = _origin(t)
        out[t] = big[y0 : y0 + SIZE, x0 : x0 + SIZE]
    return out


def make_clip(
    path: Path,
    frames: np.ndarray | None = None,
    *,
    fps: float = 25.0,
    audio: bool = True,
    video: bool = True,
    leading_silence_s: float = 0.0,
    sample_rate: int = 16000,
    channels: int = 1,
    extra: list[str] | None = None,
) -> Path:
    """Write an H.264/AAC mp4 of ``frames`` (default: 50 face frames) with flite speech."""
    frames = face_frames(50) if frames is None else frames
    duration = len(frames) / fps
    h, w = frames.shape[1:3]
    args = ["ffmpeg", "-nostdin", "-v", "error", "-y"]
    if video:
        args += ["-f", "rawvideo", "-pix_fmt", "rgb24", "-s", f"{w}x{h}", "-r", str(fps),
                 "-i", "pipe:"]  # fmt: skip
    if audio:
        speech = f"flite=text='{TEXT}':voice=kal"
        args += ["-f", "lavfi", "-i", speech]
        delay = round(leading_silence_s * 1000)
        layout = "mono" if channels == 1 else "stereo"
        args += ["-af", f"adelay={delay}:all=1,apad,aresample={sample_rate},"
                 f"aformat=channel_layouts={layout}"]  # fmt: skip
        args += ["-c:a", "aac", "-ar", str(sample_rate), "-ac", str(channels)]
    if video:
        args += ["-c:v", "libx264", "-preset", "ultrafast", "-pix_fmt", "yuv420p"]
    args += [*(extra or []), "-t", f"{duration:.3f}", "file:" + str(Path(path).absolute())]
    subprocess.run(args, input=frames.tobytes() if video else None, check=True, timeout=60)
    return path


def make_rotated_clip(path: Path, upright: np.ndarray, scratch: Path) -> Path:
    """A clip whose stored frames lie on their side, with a display matrix that turns them
    upright (as phones record). ffmpeg 5.1 drops a ``rotate`` tag while encoding, so the
    tag is added by a stream-copy remux."""
    stored = np.ascontiguousarray(np.rot90(upright, k=-1, axes=(1, 2)))
    sideways = make_clip(scratch, stored)
    args = ["ffmpeg", "-nostdin", "-v", "error", "-y", "-i", "file:" + str(sideways.absolute()),
            "-c", "copy", "-metadata:s:v:0", "rotate=90", "file:" + str(Path(path).absolute())]  # fmt: skip
    subprocess.run(args, check=True, timeout=60)
    sideways.unlink()
    return path


def truncate(src: Path, dst: Path, fraction: float) -> Path:
    """Copy the first ``fraction`` of the bytes of ``src`` to ``dst``."""
    data = Path(src).read_bytes()
    Path(dst).write_bytes(data[: int(len(data) * fraction)])
    return dst


def _ffmpeg(*args: str) -> None:
    subprocess.run(["ffmpeg", "-nostdin", "-v", "error", "-y", *args], check=True, timeout=60)


def flash_beep_clip(
    path: Path, *, fps: int = 25, seconds: float = 3.0, at_s: float = 1.2, vfr: bool = False
) -> Path:
    """A face clip with a white flash (one frame at ``at_s``) and a 40 ms loud beep at the
    same instant over quiet noise: the A/V alignment probe.

    ``fps`` is the source rate; ``vfr`` keeps the first 30 frames and then every third,
    with the input's timestamps (frame durations change mid-stream), as a variable rate
    camera would; ``at_s`` must then fall on a kept frame.
    """
    num_frames = round(seconds * fps)
    flash = round(at_s * fps)
    frames = face_frames(round(num_frames * 25 / fps))[np.arange(num_frames) * 25 // fps]
    frames[flash] = 255
    rate = 16000
    noise = np.random.default_rng(0).normal(0, 30, round(seconds * rate))
    start = round(at_s * rate)
    beep = np.arange(round(0.04 * rate))
    noise[start : start + beep.size] += 20000 * np.sin(2 * np.pi * 1000 * beep / rate)
    pcm = path.with_suffix(".s16")
    pcm.write_bytes(np.clip(noise, -32768, 32767).astype("<i2").tobytes())
    select = ["-vf", "select='lt(n,30)+not(mod(n,3))'", "-vsync", "vfr"] if vfr else []
    subprocess.run(
        ["ffmpeg", "-nostdin", "-v", "error", "-y",
         "-f", "rawvideo", "-pix_fmt", "rgb24", "-s", f"{SIZE}x{SIZE}", "-r", str(fps), "-i", "pipe:",
         "-f", "s16le", "-ar", str(rate), "-ac", "1", "-i", "file:" + str(pcm.absolute()),
         "-map", "0:v", "-map", "1:a", *select, "-c:v", "libx264", "-preset", "ultrafast",
         "-pix_fmt", "yuv420p", "-c:a", "aac", "file:" + str(Path(path).absolute())],
        input=frames.tobytes(), check=True, timeout=60,
    )  # fmt: skip
    pcm.unlink()
    return path


def delay_stream(src: Path, dst: Path, stream: str, seconds: float = 0.2) -> Path:
    """Remux ``src`` (stream copy) with its ``stream`` ('a' or 'v') starting ``seconds`` late,
    as ``ffmpeg -itsoffset`` on that input writes it (an empty edit in the mp4)."""
    other = "v" if stream == "a" else "a"
    _ffmpeg("-i", "file:" + str(Path(src).absolute()),
            "-itsoffset", f"{seconds}", "-i", "file:" + str(Path(src).absolute()),
            "-map", f"0:{other}", "-map", f"1:{stream}", "-c", "copy",
            "file:" + str(Path(dst).absolute()))  # fmt: skip
    return dst
