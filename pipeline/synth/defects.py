"""The defect corpus (``with_defects``): one broken or odd file per kind of trouble.

Each kind of :data:`DEFECT_KINDS` gets one identity folder, ids ``id90001`` and up
(``DEFECT_ID_START``), all under ``RealVideo-RealAudio`` (race ``Asian (East)`` for
the spelling case). :func:`plan_defects` maps each path, relative to the dataset
root (for CSV-only rows: the CSV directory without its ``FakeAVCeleb/`` prefix,
joined with the file name), to its kind. The playlist and script defects (HLS,
``concat``, ``ffconcat``) name a file one level above the dataset root, by a
relative path that climbs out of it (``OUTSIDE_NAME``); synth never writes that
file, so it names nothing. :func:`pipeline.synth.files.write_file` writes every
file: the clips with one property bent (streams, size, rate, bytes) through
:func:`~pipeline.synth.files.write_clip`, the other containers renamed ``.mp4``
through :func:`renamed_container` here.
"""

from __future__ import annotations

import os
import subprocess
from dataclasses import replace
from pathlib import Path, PurePosixPath

import numpy as np

from pipeline.datasets.fakeavceleb_tree import CSV_DIR_PREFIX
from pipeline.synth.encode import BITEXACT, encode
from pipeline.synth.plan import (
    DEFECT_ID_START,
    Row,
    make_identities,
    make_motion,
    make_row,
    row_rel_path,
)
from pipeline.synth.spec import ClipSpec
from pipeline.synth.video import render_clip
from schemas import atomic_write

DEFECT_KINDS: dict[str, str] = {
    "zero_byte": "an empty file named .mp4",
    "truncated": "a valid clip cut to half its bytes (no moov atom)",
    "not_a_video": "a text file named .mp4",
    "no_audio": "video stream only",
    "no_video": "audio stream only",
    "no_face": "a drifting noisy gradient, no face in any frame",
    "one_frame": "a single video frame and 40 ms of audio",
    "fps_30": "30 fps instead of 25",
    "vfr": "variable frame rate (frames dropped after the first 30)",
    "rotated": "rotate=90 display metadata",
    "odd_size": "223x171 pixels (4:4:4)",
    "audio_48k_stereo": "48 kHz stereo AAC",
    "very_long": "20 s long",
    "name_space": "a file name with a space",
    "name_parens": "a file name with parentheses",
    "name_unicode": "a file name with non-ASCII letters",
    "name_dash": "a file name starting with '-'",
    "race_spelling": "race folder spelled 'Asian (East)' as in some copies",
    "missing_file": "a CSV row naming a file that does not exist",
    "path_escape": "a CSV row whose directory climbs out of the dataset root",
    "hls_playlist": "an HLS playlist named .mp4, naming a file outside the dataset root",
    "concat_script": "a concat demuxer script named .mp4, naming a file outside the root",
    "ffconcat_file": "an ffconcat file named .mp4, naming a file outside the root",
    "mkv_renamed": "a Matroska file (H.264 + AAC) renamed .mp4",
    "webm_renamed": "a WebM file (VP8 + Opus) renamed .mp4",
}
# The file the playlist and script defects name, one level above the dataset root.
OUTSIDE_NAME = "outside.ts"
# Text of each playlist / script defect; ``{target}`` is the path it names.
PLAYLISTS = {
    "hls_playlist": "#EXTM3U\n#EXT-X-TARGETDURATION:10\n#EXTINF:10,\n{target}\n#EXT-X-ENDLIST\n",
    "concat_script": "file '{target}'\n",
    "ffconcat_file": "ffconcat version 1.0\nfile '{target}'\n",
}
# Other containers renamed .mp4: ffmpeg muxer and codec arguments (single-threaded).
RENAMED_CONTAINERS = {
    "mkv_renamed": ("matroska", ("-c", "copy")),
    "webm_renamed": (
        "webm",
        ("-c:v", "libvpx", "-deadline", "realtime", "-threads", "1", "-c:a", "libopus"),
    ),
}

# Defects whose file is a normal clip; what is odd is its length, name or folder.
PLAIN_VARIANTS = ("one_frame", "very_long", "race_spelling")


def plan_defects(seed: int) -> tuple[list[tuple[Row, ClipSpec | None]], dict[str, str]]:
    """Rows (and specs, ``None`` for CSV-only rows) of every defect kind, and their mapping."""
    rng = np.random.default_rng([seed, 2])
    person_rng = np.random.default_rng([seed, 3])
    out: list[tuple[Row, ClipSpec | None]] = []
    defects: dict[str, str] = {}
    names = {
        "name_space": "00001 copy.mp4",
        "name_parens": "00001 (1).mp4",
        "name_unicode": "00001_éü_名.mp4",
        "name_dash": "-00001.mp4",
    }
    for i, kind in enumerate(DEFECT_KINDS):
        base = make_identities(person_rng, 1)[0]
        race = "Asian (East)" if kind == "race_spelling" else base.race
        person = replace(base, id=f"id{DEFECT_ID_START + i:05d}", race=race)
        row = make_row(person, "A", "real", names.get(kind, f"{person.number:05d}.mp4"), "-", "-")
        if kind == "path_escape":
            row = replace(row, directory=f"{CSV_DIR_PREFIX}/../../etc", path="hostname.mp4")
        rel = row_rel_path(row)
        defects[rel] = kind
        if kind in ("missing_file", "path_escape"):
            out.append((row, None))
            continue
        n_frames = {"one_frame": 1, "very_long": 500}.get(kind, int(rng.integers(55, 96)))
        n_frames -= n_frames % 5  # whole 30 fps frames for the fps_30 case
        spec = ClipSpec(
            rel_path=rel,
            n_frames=max(n_frames, 1),
            look=person.look,
            motion=make_motion(rng),
            voice=person.voice,
            variant=kind,
            seed=int(rng.integers(2**31)),
        )
        out.append((row, spec))
    return out, defects


def outside_target(rel_path: str) -> str:
    """Relative path from the file at ``rel_path`` to ``OUTSIDE_NAME`` above the root.

    ``RealVideo-RealAudio/r/g/id/x.mp4`` -> ``../../../../../outside.ts``: one ``..``
    per folder climbs to the dataset root, one more leaves it.
    """
    return "../" * len(PurePosixPath(rel_path).parts) + OUTSIDE_NAME


def renamed_container(spec: ClipSpec, out: Path, fmt: str, codecs: tuple[str, ...]) -> None:
    """The normal rendering of ``spec`` in another container, written to ``out`` (``.mp4``)."""
    mp4 = out.with_name(f".{out.name}.{os.getpid()}.src.mp4")
    try:
        encode(mp4, *render_clip(spec))
        cmd = ["ffmpeg", "-nostdin", "-hide_banner", "-loglevel", "error", "-y"]
        cmd += ["-i", f"file:{mp4}", "-map", "0", *codecs, *BITEXACT, "-map_metadata", "-1"]
        with atomic_write(out, durable=False) as tmp_out:
            subprocess.run([*cmd, "-f", fmt, f"file:{tmp_out}"], check=True, capture_output=True)
    finally:
        mp4.unlink(missing_ok=True)
