"""A synthetic LAV-DF: the release's tree and ``metadata.json`` records for planned clips.

The release (ControlNet/LAV-DF) puts every clip at ``<split>/NNNNNN.mp4`` (``train``,
``dev``, ``test``; six-digit numbers over the whole dataset, not per split) and
describes it in ``metadata.json``, a list of records. Its loader reads
``metadata.min.json``, the same records without the two text fields
``transcript`` and ``timestamps`` (word timings); its dataclass takes exactly
``MIN_FIELDS``. A synthetic clip has no word alignment, so both files here carry
the ``MIN_FIELDS`` only (the same records in each).

Fields: ``fake_periods`` are ``[[start_s, end_s], ...]`` (the union of the audio and
visual segments; they coincide where both are fake), ``n_fakes`` their number,
``modify_audio`` / ``modify_video`` the per-modality labels, ``original`` the
``file`` of the real clip a fake was made from (``None`` for real clips),
``duration`` in seconds, ``video_frames`` at 25 fps, ``audio_frames`` samples at
16 kHz, ``audio_channels`` 1. Numbers are a seeded permutation (``[seed, 16]``) so
that a file's number says nothing about its label.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from pipeline.synth.segmented import SegmentedSpec, seconds
from pipeline.synth.segmented_plan import SegmentedClip, Source, clips_of
from pipeline.synth.spec import FPS, SAMPLES_PER_FRAME

ROOT_NAME = "LAV-DF"
METADATA_NAME = "metadata.json"
MIN_METADATA_NAME = "metadata.min.json"
SPLIT_NAMES = {"train": "train", "val": "dev", "test": "test"}  # ours -> the release's
MIN_FIELDS = (
    "file",
    "split",
    "modify_video",
    "modify_audio",
    "n_fakes",
    "fake_periods",
    "duration",
    "original",
    "video_frames",
    "audio_frames",
    "audio_channels",
)


def record(clip: SegmentedClip, file: str, original: str | None) -> dict[str, Any]:
    """The ``metadata.json`` record of one clip."""
    segment = clip.audio_segment or clip.video_segment
    periods = [seconds(segment)] if segment is not None else []
    n = clip.source.spec.n_frames
    return {
        "file": file,
        "split": SPLIT_NAMES[clip.source.split],
        "modify_video": clip.video_segment is not None,
        "modify_audio": clip.audio_segment is not None,
        "n_fakes": len(periods),
        "fake_periods": periods,
        "duration": round(n / FPS, 2),
        "original": original,
        "video_frames": n,
        "audio_frames": n * SAMPLES_PER_FRAME,
        "audio_channels": 1,
    }


def lay_out(
    sources: list[Source], seed: int
) -> list[tuple[SegmentedSpec, SegmentedClip, dict[str, Any]]]:
    """Every clip's spec (path relative to ``LAV-DF/``), plan entry and record, in file order."""
    clips = [(s, c) for s in sources for c in clips_of(s)]
    numbers = np.random.default_rng([seed, 16]).permutation(len(clips)) + 1
    files = [
        f"{SPLIT_NAMES[s.split]}/{int(num):06d}.mp4"
        for (s, _), num in zip(clips, numbers, strict=True)
    ]
    real_file = {id(s): f for (s, c), f in zip(clips, files, strict=True) if c.category == "RARV"}
    out = []
    for (source, clip), file in zip(clips, files, strict=True):
        original = None if clip.category == "RARV" else real_file[id(source)]
        out.append((clip.spec(file), clip, record(clip, file, original)))
    out.sort(key=lambda entry: entry[0].rel_path.rsplit("/", 1)[1])
    return out


def metadata_files(records: list[dict[str, Any]]) -> dict[str, list[dict[str, Any]]]:
    """File name -> its list of records: the full file and the min file."""
    minimal = [{k: r[k] for k in MIN_FIELDS} for r in records]
    return {METADATA_NAME: records, MIN_METADATA_NAME: minimal}
