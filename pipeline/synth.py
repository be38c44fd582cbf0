"""A synthetic FakeAVCeleb: real mp4 media in the exact v1.2 layout and ``meta_data.csv``.

``make_dataset(OUT)`` writes ``OUT/FakeAVCeleb_v1.2/<type>/<race>/<gender>/<idNNNNN>/<file>.mp4``
and ``OUT/FakeAVCeleb_v1.2/meta_data.csv``. Clips are H.264 + AAC, 224×224, 25 fps,
2.2-3.8 s, 16 kHz mono audio, showing the face of ``skimage.data.astronaut()``
and speech from ffmpeg's ``flite`` source. Rendering lives in ``pipeline.synth_media``;
this module plans the dataset (all random choices, from one seeded generator),
runs the encodes in a process pool and writes the CSV.

Choices, and why:

- Identities. ``identities`` defaults to ``per_category``, which gives every identity
  exactly one clip of each category. Real clips are one per identity as in the
  release, so ``per_category`` cannot exceed ``identities`` (refused with a
  ``ValueError`` that says so). The first ``per_category`` identities are the
  sources of all clips (A, B, C, D); fakes live in the folder of their *source*
  identity. Extra identities (``identities > per_category``) have no clips of their
  own and serve only as swap / voice donors. ``target1`` of a C or D clip is
  another identity (the swapped-in face, or the donor in the file name) and, for
  the two-stage methods (``fsgan-wav2lip``, ``faceswap-wav2lip``), ``target2`` a
  third one when there are enough identities. With a single identity the target
  is a donor that has no clips of its own.
- Looks and voices. Every identity gets its own colour grade, mirror, size and
  position of the same face (the face stays 90-110 px wide, which dlib's HOG
  frontal detector finds reliably), and its own flite voice, pitch and sentence.
  Gender is a label only; men speak with ``awb``, ``rms`` or ``kal16``, women with
  ``slt``.
- Motion. The head drifts smoothly (a few pixels, a few per cent of scale) so that
  face tracking has something to do; the mouth region stretches vertically with
  the loudness of the speech of each frame.
- Real video (A, B): the mouth follows the clip's real speech.
- Fake video (C, D), a visible manipulation of the face region in every method:
  ``faceswap`` / ``fsgan`` paste the target identity's face (its colour grade, a
  skin-tone mismatch, blurred as a face generated at low resolution; fsgan
  blurrier) with a feathered elliptical seam, and its mouth moves with the
  *target's* speech, i.e. out of sync with the clip's audio; ``wav2lip`` regenerates
  the lower face at low resolution with the mouth in sync with the clip's audio
  (for ``*-wav2lip`` on top of the swapped face). The face region's fine detail
  (e.g. Laplacian variance around the mouth) is therefore much lower than in the
  same identity's real clips; the rest of the frame is untouched.
- Fake audio (B, D), ``rtvc`` style voice conversion: the same sentence by the same
  voice, pitch-shifted by 0.68-0.78 or 1.30-1.45 (tempo kept, so the timing and
  thus the lip sync of a real mouth is unchanged) and band-limited to about 2.8 kHz
  like a low-rate vocoder; the energy above 3.5 kHz drops by orders of magnitude.
- Leading silence. Like the release, every fake clip (B, C, D) starts with 0.1-0.3 s
  of silence and real clips (A) do not. It delays the speech and the real mouth
  together, so it is a pure onset shortcut (ingest's ``--trim-silence`` removes it).
- Difficulty. ``difficulty="easy"`` (the default) is everything above; its output
  never changes for a given seed. ``"hard"`` keeps the layout and labels but makes
  every cue subtle, so that a small model no longer separates the classes
  perfectly (see ``HARD``): real clips get leading silence from the same 0.1-0.3 s
  range as the fakes, so the onset says nothing; the voice conversion shifts the pitch by
  only 6-10 % and band-limits gently (``SUBTLE_AUDIO_FILTER``: the band above
  3.5 kHz keeps about a third of its energy instead of losing orders of
  magnitude); a fake video's face swap / regenerated mouth is pasted in
  8-12 consecutive frames only, less blurred and with a closer skin tone, a
  swapped face keeps the source's mouth motion; and the whole mouth track of a
  fake video lags its audio by 2-3 frames (lip-sync offset). These choices come
  from a second generator (``[seed, 4]``) and are written, per clip, to
  ``hard.json`` beside ``meta_data.csv``.
- Determinism. The plan depends only on the arguments; workers render pure
  functions of their clip spec; libx264 runs single-threaded with bitexact flags.
  Same seed → same CSV and same decoded frames and samples (bytes are not promised).
- Refusal. ``OUT`` must not exist or be an empty directory; the dataset is built in
  a hidden folder inside ``OUT`` and renamed into place when complete, so a failed
  run leaves no half dataset that looks finished.
- Defects (``with_defects``): one identity folder per broken file, ids ``id90001``
  and up, all under ``RealVideo-RealAudio`` (race ``Asian (East)`` for the spelling
  case). ``SynthSummary.defects`` and ``defects.json`` map each path, relative to the
  dataset root (for CSV-only rows: the CSV directory without its ``FakeAVCeleb/``
  prefix, joined with the file name), to its kind; see ``DEFECT_KINDS``.
  The playlist and script defects (HLS, ``concat``, ``ffconcat``) name a file one
  level above the dataset root, by a relative path that climbs out of it
  (``OUTSIDE_NAME``); synth never writes that file, so it names nothing.
"""

from __future__ import annotations

import json
import multiprocessing
import os
import shutil
import subprocess
from collections.abc import Callable
from concurrent.futures import FIRST_EXCEPTION, ProcessPoolExecutor, wait
from dataclasses import dataclass, field, replace
from pathlib import Path, PurePosixPath
from typing import Any

import numpy as np

from pipeline.synth_media import (
    BITEXACT,
    SUBTLE_AUDIO_FILTER,
    ClipSpec,
    Look,
    Motion,
    Voice,
    encode,
    render_clip,
    write_clip,
)

ROOT_NAME = "FakeAVCeleb_v1.2"
CSV_NAME = "meta_data.csv"
DEFECTS_NAME = "defects.json"
CSV_HEADER = "source,target1,target2,method,category,type,race,gender,path,"
CSV_DIR_PREFIX = "FakeAVCeleb"
HARD_NAME = "hard.json"
DIFFICULTIES = ("easy", "hard")

TYPE_DIRS = {
    "A": "RealVideo-RealAudio",
    "B": "RealVideo-FakeAudio",
    "C": "FakeVideo-RealAudio",
    "D": "FakeVideo-FakeAudio",
}
METHODS = {
    "A": ("real",),
    "B": ("rtvc",),
    "C": ("faceswap", "fsgan", "wav2lip"),
    "D": ("wav2lip", "fsgan-wav2lip", "faceswap-wav2lip"),
}
RACES = ("African", "Asian_East", "Asian_South", "Caucasian_American", "Caucasian_European")
GENDERS = ("men", "women")
VOICES = {"men": ("awb", "rms", "kal16"), "women": ("slt",)}

DEFECT_ID_START = 90001
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

# Sentences are drawn from these words; plain letters keep flite's filter arguments safe.
_VOCABULARY = (
    "the quick brown fox jumps over a lazy dog while seven bright stars shine above "
    "calm water under morning light people speak about science music travel and food "
    "every small garden needs patience rain sunshine and careful hands our team will "
    "meet again next week to discuss plans for the new library"
)
_WORDS = tuple(_VOCABULARY.split())


@dataclass(frozen=True)
class HardSetting:
    """The ranges of the hard setting's cues (inclusive; frames at 25 fps)."""

    pitch_up: tuple[float, float] = (1.06, 1.10)
    pitch_down: tuple[float, float] = (0.90, 0.94)
    manip_len: tuple[int, int] = (8, 12)
    av_offset: tuple[int, int] = (2, 3)
    blur_scale: float = 0.6
    tone: tuple[float, float, float] = (1.03, 0.99, 0.96)
    lead_silence: tuple[float, float] = (0.1, 0.3)  # seconds, real clips as the fakes


HARD = HardSetting()


@dataclass(frozen=True)
class Identity:
    """One synthetic person: id, labels of the folder tree, and how they look and sound."""

    id: str
    race: str
    gender: str
    number: int  # base clip number, e.g. 109 -> 00109.mp4, 00109_fake.mp4 ...
    look: Look
    voice: Voice


@dataclass(frozen=True)
class Row:
    """One ``meta_data.csv`` row; ``directory`` is the unnamed 10th field."""

    source: str
    target1: str
    target2: str
    method: str
    category: str
    type: str
    race: str
    gender: str
    path: str
    directory: str

    def csv_line(self) -> str:
        fields = (self.source, self.target1, self.target2, self.method, self.category,
                  self.type, self.race, self.gender, self.path, self.directory)  # fmt: skip
        # The official file is written without quoting; keep every field quote-free.
        bad = [f for f in fields if any(c in f for c in ',"\n\r')]
        if bad:
            raise ValueError(f"meta_data.csv fields cannot hold commas, quotes or newlines: {bad}")
        return ",".join(fields)


@dataclass
class SynthSummary:
    """What ``make_dataset`` wrote. ``counts`` by FakeAVCeleb letter A-D (defects excluded)."""

    root: Path
    counts: dict[str, int]
    n_files: int
    identities: list[str]
    seed: int
    defects: dict[str, str] = field(default_factory=dict)
    difficulty: str = "easy"

    @property
    def csv_path(self) -> Path:
        return self.root / CSV_NAME

    def to_dict(self) -> dict[str, Any]:
        return {
            "root": str(self.root),
            "counts": dict(self.counts),
            "n_files": self.n_files,
            "identities": list(self.identities),
            "seed": self.seed,
            "defects": dict(self.defects),
            "difficulty": self.difficulty,
        }


# --------------------------------------------------------------------------- planning


def _uniform(rng: np.random.Generator, lo: float, hi: float) -> float:
    return round(float(rng.uniform(lo, hi)), 4)


def _make_look(rng: np.random.Generator) -> Look:
    gains = tuple(_uniform(rng, 0.85, 1.15) for _ in range(3))
    return Look(
        gains=(gains[0], gains[1], gains[2]),
        gamma=_uniform(rng, 0.85, 1.15),
        mirror=bool(rng.integers(2)),
        zoom=_uniform(rng, 1.0, 1.15),
        offset=(_uniform(rng, -10, 10), _uniform(rng, -8, 8)),
    )


def _make_motion(rng: np.random.Generator) -> Motion:
    def wave(amp: tuple[float, float], freq: tuple[float, float]) -> tuple[float, float, float]:
        return (_uniform(rng, *amp), _uniform(rng, *freq), _uniform(rng, 0, 2 * np.pi))

    # At least ~0.8 of a cycle in the shortest clip, so that every clip really moves.
    return Motion(
        x=wave((4.0, 8.0), (0.35, 0.7)),
        y=wave((3.0, 6.0), (0.35, 0.7)),
        scale=wave((0.02, 0.045), (0.3, 0.6)),
    )


def _sentence(rng: np.random.Generator) -> str:
    # Enough words for about 4 s of speech, so speech fills the longest clip.
    return " ".join(rng.choice(_WORDS, size=int(rng.integers(12, 16))))


def _make_identities(rng: np.random.Generator, k: int) -> list[Identity]:
    ids = rng.choice(np.arange(1, DEFECT_ID_START - 1), size=k, replace=False)
    numbers = rng.choice(np.arange(1, 20000), size=k, replace=False)
    races = [RACES[i % len(RACES)] for i in rng.permutation(k)]
    people = []
    for i in range(k):
        gender = GENDERS[int(rng.integers(2))]
        voice = Voice(
            name=str(rng.choice(VOICES[gender])),
            text=_sentence(rng),
            pitch=_uniform(rng, 0.9, 1.1),
        )
        people.append(
            Identity(
                id=f"id{int(ids[i]):05d}",
                race=races[i],
                gender=gender,
                number=int(numbers[i]),
                look=_make_look(rng),
                voice=voice,
            )
        )
    return people


def _fake_pitch(rng: np.random.Generator) -> float:
    return _uniform(rng, 1.30, 1.45) if rng.integers(2) else _uniform(rng, 0.68, 0.78)


def _row(person: Identity, letter: str, method: str, name: str, t1: str, t2: str) -> Row:
    rel_dir = f"{TYPE_DIRS[letter]}/{person.race}/{person.gender}/{person.id}"
    return Row(
        source=person.id,
        target1=t1,
        target2=t2,
        method=method,
        category=letter,
        type=TYPE_DIRS[letter],
        race=person.race,
        gender=person.gender,
        path=name,
        directory=f"{CSV_DIR_PREFIX}/{rel_dir}",
    )


def _rel_path(row: Row) -> str:
    return f"{row.directory.removeprefix(CSV_DIR_PREFIX + '/')}/{row.path}"


def _harden(spec: ClipSpec, rng: np.random.Generator) -> ClipSpec:
    """The hard setting's version of a planned clip: subtler cues, drawn from ``rng``."""
    changes: dict[str, Any] = {}
    if spec.lead_silence == 0.0:  # real clips: the onset shortcut is removed
        changes.update(lead_silence=_uniform(rng, *HARD.lead_silence))
    if spec.fake_pitch is not None:
        pitch = HARD.pitch_up if spec.fake_pitch > 1 else HARD.pitch_down
        changes.update(fake_pitch=_uniform(rng, *pitch), audio_filter=SUBTLE_AUDIO_FILTER)
    if spec.swap is not None or spec.lipsync:
        length = int(rng.integers(HARD.manip_len[0], HARD.manip_len[1] + 1))
        start = int(rng.integers(0, spec.n_frames - length + 1))
        changes.update(
            manip_frames=(start, start + length),
            av_offset=int(rng.integers(HARD.av_offset[0], HARD.av_offset[1] + 1)),
            blur_scale=HARD.blur_scale,
            tone=HARD.tone,
            target_voice=None,  # a swapped face keeps the source's (delayed) mouth motion
        )
    return replace(spec, **changes)


def hard_record(spec: ClipSpec) -> dict[str, Any]:
    """What ``hard.json`` says about one clip of the hard setting."""
    return {
        "lead_silence_s": spec.lead_silence,
        "fake_pitch": spec.fake_pitch,
        "audio_filter": spec.audio_filter if spec.fake_pitch is not None else None,
        "av_offset_frames": spec.av_offset,
        "manip_frames": list(spec.manip_frames) if spec.manip_frames else None,
    }


def plan(
    per_category: int, identities: int, seed: int, difficulty: str = "easy"
) -> tuple[list[Identity], list[tuple[Row, ClipSpec]]]:
    """The whole dataset as rows and clip specs, from the arguments alone.

    ``difficulty="hard"`` plans the easy dataset and then hardens every clip with
    a generator of its own, so that the easy plan's draws stay exactly as they were.
    """
    rng = np.random.default_rng(seed)
    people = _make_identities(rng, identities)
    sources = people[:per_category]
    donor = _make_identities(np.random.default_rng([seed, 1]), 1)[0]
    out: list[tuple[Row, ClipSpec]] = []

    def others(src: Identity, n: int) -> list[Identity]:
        pool = [p for p in people if p.id != src.id] or [donor]
        idx = rng.choice(len(pool), size=min(n, len(pool)), replace=False)
        return [pool[int(i)] for i in idx]

    def base_spec(person: Identity, row: Row, lead: float) -> ClipSpec:
        return ClipSpec(
            rel_path=_rel_path(row),
            n_frames=int(rng.integers(55, 96)),
            look=person.look,
            motion=_make_motion(rng),
            voice=person.voice,
            lead_silence=lead,
            seed=int(rng.integers(2**31)),
        )

    for person in sources:
        row = _row(person, "A", "real", f"{person.number:05d}.mp4", "-", "-")
        out.append((row, base_spec(person, row, 0.0)))
    for person in sources:
        row = _row(person, "B", "rtvc", f"{person.number:05d}_fake.mp4", "-", "-")
        spec = base_spec(person, row, _uniform(rng, 0.1, 0.3))
        out.append((row, replace(spec, fake_pitch=_fake_pitch(rng))))

    serial = {p.id: 0 for p in sources}  # per-identity fake counter, as in 00109_1.mp4
    for letter in ("C", "D"):
        offset = int(rng.integers(3))  # which method the round-robin starts with
        for j, person in enumerate(sources):
            method = METHODS[letter][(j + offset) % 3]
            serial[person.id] += 1
            two_stage = method.endswith("-wav2lip")
            targets = others(person, 2 if two_stage else 1)
            t1 = targets[0].id
            t2 = targets[1].id if two_stage and len(targets) > 1 else "-"
            if "wav2lip" in method:
                name = f"{person.number:05d}_{serial[person.id]}_{t1}_wavtolip.mp4"
            else:
                name = f"{person.number:05d}_{serial[person.id]}.mp4"
            row = _row(person, letter, method, name, t1, t2)
            spec = base_spec(person, row, _uniform(rng, 0.1, 0.3))
            swap = method.split("-")[0] if method != "wav2lip" else None
            spec = replace(
                spec,
                swap=swap,
                target_look=targets[0].look if swap else None,
                target_voice=targets[0].voice if swap else None,
                lipsync="wav2lip" in method,
                fake_pitch=_fake_pitch(rng) if letter == "D" else None,
            )
            out.append((row, spec))
    if difficulty == "hard":
        hard_rng = np.random.default_rng([seed, 4])
        out = [(row, _harden(spec, hard_rng)) for row, spec in out]
    elif difficulty != "easy":
        raise ValueError(f"difficulty must be one of {DIFFICULTIES}, got {difficulty!r}")
    return people, out


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
        base = _make_identities(person_rng, 1)[0]
        race = "Asian (East)" if kind == "race_spelling" else base.race
        person = replace(base, id=f"id{DEFECT_ID_START + i:05d}", race=race)
        row = _row(person, "A", "real", names.get(kind, f"{person.number:05d}.mp4"), "-", "-")
        if kind == "path_escape":
            row = replace(row, directory=f"{CSV_DIR_PREFIX}/../../etc", path="hostname.mp4")
        rel = _rel_path(row)
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
            motion=_make_motion(rng),
            voice=person.voice,
            variant=kind,
            seed=int(rng.integers(2**31)),
        )
        out.append((row, spec))
    return out, defects


# --------------------------------------------------------------------------- writing


def outside_target(rel_path: str) -> str:
    """Relative path from the file at ``rel_path`` to ``OUTSIDE_NAME`` above the root.

    ``RealVideo-RealAudio/r/g/id/x.mp4`` -> ``../../../../../outside.ts``: one ``..``
    per folder climbs to the dataset root, one more leaves it.
    """
    return "../" * len(PurePosixPath(rel_path).parts) + OUTSIDE_NAME


def _renamed_container(spec: ClipSpec, out: Path, fmt: str, codecs: tuple[str, ...]) -> None:
    """The normal rendering of ``spec`` in another container, written to ``out`` (``.mp4``)."""
    mp4 = out.with_name(f".{out.name}.{os.getpid()}.src.mp4")
    tmp_out = out.with_name(f".{out.name}.{os.getpid()}.{fmt}")
    try:
        encode(mp4, *render_clip(spec))
        cmd = ["ffmpeg", "-nostdin", "-hide_banner", "-loglevel", "error", "-y"]
        cmd += ["-i", f"file:{mp4}", "-map", "0", *codecs, *BITEXACT, "-map_metadata", "-1"]
        subprocess.run([*cmd, "-f", fmt, f"file:{tmp_out}"], check=True, capture_output=True)
        os.replace(tmp_out, out)
    finally:
        mp4.unlink(missing_ok=True)
        tmp_out.unlink(missing_ok=True)


def write_file(spec: ClipSpec, root: str | Path) -> str:
    """Write ``spec``'s file under ``root`` and return ``spec.rel_path``; runs in a worker.

    The container defects (``PLAYLISTS``, ``RENAMED_CONTAINERS``) are written here;
    every other clip, defect or not, by :func:`pipeline.synth_media.write_clip`.
    """
    out = Path(root).absolute() / spec.rel_path
    if spec.variant in PLAYLISTS:
        out.parent.mkdir(parents=True, exist_ok=True)
        target = outside_target(spec.rel_path)
        out.write_text(PLAYLISTS[spec.variant].format(target=target), encoding="utf-8")
    elif spec.variant in RENAMED_CONTAINERS:
        out.parent.mkdir(parents=True, exist_ok=True)
        _renamed_container(spec, out, *RENAMED_CONTAINERS[spec.variant])
    else:
        write_clip(spec, root)
    return spec.rel_path


def _check_args(
    out: Path, per_category: int, identities: int, workers: int, difficulty: str
) -> None:
    if difficulty not in DIFFICULTIES:
        raise ValueError(f"difficulty must be one of {', '.join(DIFFICULTIES)}, got {difficulty!r}")
    if per_category < 1:
        raise ValueError(f"per_category must be >= 1, got {per_category}")
    if identities < 1:
        raise ValueError(f"identities must be >= 1, got {identities}")
    if per_category > identities:
        raise ValueError(
            f"per_category ({per_category}) exceeds identities ({identities}): real clips "
            "(A) and their fake-audio twins (B) are one per identity, so there can be at most "
            "as many per category as identities"
        )
    if workers < 1:
        raise ValueError(f"workers must be >= 1, got {workers}")
    if out.exists():
        if not out.is_dir():
            raise ValueError(f"{out} exists and is not a directory")
        if any(out.iterdir()):
            what = "already holds a dataset" if (out / ROOT_NAME).exists() else "is not empty"
            raise ValueError(f"{out} {what}; synth only writes into a new or empty directory")
    if shutil.which("ffmpeg") is None:
        raise RuntimeError("ffmpeg is not on PATH; install ffmpeg (with flite) to make a dataset")


def write_csv(path: Path, rows: list[Row]) -> None:
    """``meta_data.csv`` with the official quirks: trailing-comma header, 10 fields per row."""
    lines = [CSV_HEADER, *(r.csv_line() for r in rows)]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")


def _render_all(
    root: Path,
    specs: list[ClipSpec],
    workers: int,
    progress: Callable[[int, int], None] | None,
) -> None:
    total = len(specs)
    if progress:
        progress(0, total)
    if workers == 1:
        for i, spec in enumerate(specs, 1):
            write_file(spec, root)
            if progress:
                progress(i, total)
        return
    # spawn, not fork: the caller may hold threads (Ray, a test runner) that a
    # forked child would inherit in an undefined state.
    ctx = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(max_workers=workers, mp_context=ctx) as pool:
        # Longest first, so that one long clip does not finish last on its own.
        order = sorted(specs, key=lambda s: -s.n_frames)
        futures = [pool.submit(write_file, spec, str(root)) for spec in order]
        done_count = 0
        pending = set(futures)
        try:
            while pending:
                done, pending = wait(pending, return_when=FIRST_EXCEPTION)
                for fut in done:
                    fut.result()  # re-raise a worker's error here
                    done_count += 1
                if progress:
                    progress(done_count, total)
        except BaseException:
            # Do not render the rest of a dataset that is going to be discarded.
            pool.shutdown(wait=True, cancel_futures=True)
            raise


def make_dataset(
    out: Path,
    *,
    per_category: int = 5,
    identities: int | None = None,
    seed: int = 0,
    with_defects: bool = False,
    workers: int | None = None,
    progress: Callable[[int, int], None] | None = None,
    difficulty: str = "easy",
) -> SynthSummary:
    """Write a synthetic FakeAVCeleb v1.2 tree under ``out`` and return what was made.

    ``per_category`` clips of each of A, B, C, D over ``identities`` identities
    (default ``per_category``); ``workers`` encoder processes (default: CPU count);
    ``progress(done, total)`` is called as clips finish. Raises ``ValueError`` on
    bad arguments or when ``out`` exists and is not an empty directory.
    ``difficulty="hard"`` makes the subtle-cue setting (module docstring) and
    writes ``hard.json`` (clip path -> its hard cues).
    """
    out = Path(out)
    k = per_category if identities is None else identities
    n_workers = workers if workers is not None else (os.cpu_count() or 1)
    _check_args(out, per_category, k, n_workers, difficulty)

    people, planned = plan(per_category, k, seed, difficulty)
    rows = [row for row, _ in planned]
    specs = [spec for _, spec in planned]
    defects: dict[str, str] = {}
    if with_defects:
        defect_plan, defects = plan_defects(seed)
        rows += [row for row, _ in defect_plan]
        specs += [spec for _, spec in defect_plan if spec is not None]

    out.mkdir(parents=True, exist_ok=True)
    building = out / f".{ROOT_NAME}.building"
    try:
        building.mkdir()
        _render_all(building, specs, min(n_workers, len(specs)), progress)
        write_csv(building / CSV_NAME, rows)
        if with_defects:
            text = json.dumps(defects, indent=2, sort_keys=True, ensure_ascii=False)
            (building / DEFECTS_NAME).write_text(text + "\n", encoding="utf-8")
        if difficulty == "hard":
            cues = {spec.rel_path: hard_record(spec) for _, spec in planned}
            text = json.dumps(cues, indent=2, sort_keys=True)
            (building / HARD_NAME).write_text(text + "\n", encoding="utf-8")
        os.rename(building, out / ROOT_NAME)
    finally:
        if building.exists():
            shutil.rmtree(building, ignore_errors=True)

    counts = {letter: sum(r.category == letter for r, _ in planned) for letter in TYPE_DIRS}
    return SynthSummary(
        root=out / ROOT_NAME,
        counts=counts,
        n_files=len(specs),
        identities=[p.id for p in people],  # sources first, then donor-only identities
        seed=seed,
        defects=defects,
        difficulty=difficulty,
    )
