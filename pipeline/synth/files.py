"""One planned file onto disk, in a worker process: a clip, a broken clip or a container defect.

:func:`write_file` is what the dataset writer's process pool runs for each
:class:`~pipeline.synth.spec.ClipSpec`; it returns the spec's path so the pool
can count what is done.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from pipeline.synth.defects import (
    PLAIN_VARIANTS,
    PLAYLISTS,
    RENAMED_CONTAINERS,
    outside_target,
    renamed_container,
)
from pipeline.synth.encode import encode, remux
from pipeline.synth.spec import FPS, ClipSpec
from pipeline.synth.video import no_face_frames, render_clip


def write_file(spec: ClipSpec, root: str | Path) -> str:
    """Write ``spec``'s file under ``root`` and return ``spec.rel_path``; runs in a worker.

    The container defects (``PLAYLISTS``, ``RENAMED_CONTAINERS``) are written here;
    every other clip, defect or not, by :func:`write_clip`.
    """
    out = Path(root).absolute() / spec.rel_path
    if spec.variant in PLAYLISTS:
        out.parent.mkdir(parents=True, exist_ok=True)
        target = outside_target(spec.rel_path)
        out.write_text(PLAYLISTS[spec.variant].format(target=target), encoding="utf-8")
    elif spec.variant in RENAMED_CONTAINERS:
        out.parent.mkdir(parents=True, exist_ok=True)
        renamed_container(spec, out, *RENAMED_CONTAINERS[spec.variant])
    else:
        write_clip(spec, root)
    return spec.rel_path


def write_clip(spec: ClipSpec, root: str | Path) -> str:
    """Render ``spec`` and write it under ``root``; returns ``spec.rel_path``.

    Runs in a worker process. Defect variants bend one property of the file
    (streams, size, rate, bytes) and otherwise reuse the normal rendering.
    """
    out = Path(root).absolute() / spec.rel_path
    out.parent.mkdir(parents=True, exist_ok=True)
    kind = spec.variant
    if kind == "zero_byte":
        out.write_bytes(b"")
        return spec.rel_path
    if kind == "not_a_video":
        out.write_text("This is a text file with a video file name.\n")
        return spec.rel_path
    frames, audio = render_clip(spec)
    if kind is None or kind in PLAIN_VARIANTS or kind.startswith("name_"):
        encode(out, frames, audio)
    elif kind == "no_audio":
        encode(out, frames, None)
    elif kind == "no_video":
        encode(out, None, audio)
    elif kind == "no_face":
        encode(out, no_face_frames(spec.n_frames, spec.seed), audio)
    elif kind == "fps_30":
        # Same content on a 30 fps timeline: each output frame shows the 25 fps
        # frame current at its time, so audio and video keep the same length.
        n30 = spec.n_frames * 30 // FPS
        encode(out, frames[np.arange(n30) * FPS // 30], audio, fps=30)
    elif kind == "vfr":
        # Keep the first 30 frames, then every third: timestamps stay those of
        # the input, so frame durations change mid-stream.
        select = ("-vf", "select='lt(n,30)+not(mod(n,3))'", "-vsync", "vfr")
        encode(out, frames, audio, video_args=select)
    elif kind == "rotated":
        # Stored sideways, displayed upright: a phone-style clip. The frames are
        # turned 90° clockwise and the metadata asks players to turn them
        # back. ffmpeg 5.1 writes the display matrix from ``rotate`` only on stream copy.
        encode(out, np.ascontiguousarray(np.rot90(frames, k=-1, axes=(1, 2))), audio)
        remux(out, ("-metadata:s:v:0", "rotate=90"))
    elif kind == "odd_size":
        # 4:4:4 because 4:2:0 cannot hold odd dimensions.
        encode(out, frames[:, 20:191, :223], audio, pix_fmt="yuv444p")
    elif kind == "audio_48k_stereo":
        encode(out, frames, audio, audio_rate=48000, audio_channels=2)
    elif kind == "truncated":
        encode(out, frames, audio)
        data = out.read_bytes()
        out.write_bytes(data[: len(data) // 2])
    else:
        raise ValueError(f"unknown defect kind {kind!r}")
    return spec.rel_path
