"""ffmpeg for the synthetic dataset: run it, encode frames and samples to mp4, remux in place.

Encodes are deterministic: libx264 runs single-threaded and every muxer and
encoder gets the ``BITEXACT`` flags, so the same input gives the same streams.
Files appear under their final name only when complete (``schemas.atomic_write``,
not fsync'ed: a dataset is only trusted once its whole folder is renamed into place).
"""

from __future__ import annotations

import subprocess
import tempfile
from pathlib import Path

import numpy as np

from pipeline.synth.spec import FPS, SAMPLE_RATE
from schemas import atomic_write

# Flags that make libx264 / aac / the mp4 muxer produce the same stream for the
# same input on every run (no encoder version strings, no timestamps, one thread).
BITEXACT = ["-fflags", "+bitexact", "-flags:v", "+bitexact", "-flags:a", "+bitexact"]


def run_ffmpeg(cmd: list[str], stdin: bytes | None = None) -> bytes:
    """Run ffmpeg with an argument list; raise with its own message on failure."""
    proc = subprocess.run(cmd, input=stdin, capture_output=True, check=False)
    if proc.returncode != 0:
        tail = proc.stderr.decode(errors="replace").strip()[-800:]
        raise RuntimeError(f"ffmpeg failed ({proc.returncode}): {tail}")
    return proc.stdout


def encode(
    out: Path,
    frames: np.ndarray | None,
    audio: np.ndarray | None,
    *,
    fps: int = FPS,
    audio_rate: int = SAMPLE_RATE,
    audio_channels: int = 1,
    pix_fmt: str = "yuv420p",
    video_args: tuple[str, ...] = (),
) -> None:
    """Encode ``frames`` ``(T, H, W, 3)`` uint8 and ``audio`` ``(n,)`` int16 16 kHz to mp4.

    Either may be ``None`` for a single-stream file. The file appears under its
    final name only when complete (written beside it, then renamed).
    """
    cmd = ["ffmpeg", "-nostdin", "-hide_banner", "-loglevel", "error", "-y"]
    with tempfile.TemporaryDirectory(prefix="mscct-synth-") as tmp:
        stdin = None
        if frames is not None:
            h, w = frames.shape[1:3]
            cmd += ["-f", "rawvideo", "-pix_fmt", "rgb24", "-s", f"{w}x{h}", "-r", str(fps)]
            cmd += ["-i", "-"]
            stdin = np.ascontiguousarray(frames).tobytes()
        if audio is not None:
            pcm = Path(tmp) / "audio.s16"
            pcm.write_bytes(np.ascontiguousarray(audio, dtype="<i2").tobytes())
            cmd += ["-f", "s16le", "-ar", str(SAMPLE_RATE), "-ac", "1", "-i", str(pcm)]
        if frames is not None:
            cmd += ["-map", "0:v"]
            cmd += ["-c:v", "libx264", "-preset", "veryfast", "-crf", "18", "-g", str(2 * fps)]
            cmd += ["-threads", "1", "-pix_fmt", pix_fmt, *video_args]
        if audio is not None:
            cmd += ["-map", f"{0 if frames is None else 1}:a"]
            cmd += ["-c:a", "aac", "-b:a", "64k", "-ar", str(audio_rate)]
            cmd += ["-ac", str(audio_channels)]
        cmd += [*BITEXACT, "-map_metadata", "-1", "-f", "mp4"]
        with atomic_write(out, durable=False) as tmp_out:
            run_ffmpeg([*cmd, str(tmp_out)], stdin)


def remux(path: Path, args: tuple[str, ...]) -> None:
    """Copy the streams of ``path`` into a new file with extra output ``args``, in place."""
    cmd = ["ffmpeg", "-nostdin", "-hide_banner", "-loglevel", "error", "-y", "-i", str(path)]
    cmd += ["-map", "0", "-c", "copy", *args, *BITEXACT, "-f", "mp4"]
    with atomic_write(path, durable=False) as tmp_out:
        run_ffmpeg([*cmd, str(tmp_out)])
