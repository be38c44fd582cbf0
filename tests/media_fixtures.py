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
