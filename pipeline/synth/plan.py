"""The plan of a synthetic FakeAVCeleb: identities, clips, categories and cues, from one seed.

:func:`plan` draws every random choice of a dataset from one seeded generator
(``np.random.default_rng(seed)``; the hard settings' cues from ``[seed, 4]``, the
single donor identity from ``[seed, 1]``, the ``hard`` setting's within-group targets
from ``[seed, 5]``) and returns ``meta_data.csv`` rows with
the :class:`~pipeline.synth.spec.ClipSpec` of each clip. The plan depends only on
the arguments, so the same seed gives the same dataset; what the choices are and
why is in :mod:`pipeline.synth`'s docstring.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

import numpy as np

from pipeline.datasets.fakeavceleb_tree import CSV_DIR_PREFIX, TYPE_DIRS
from pipeline.synth.spec import SUBTLE_AUDIO_FILTER, ClipSpec, Look, Motion, Voice

DIFFICULTIES = ("easy", "hard", "hard-partial")

METHODS = {
    "A": ("real",),
    "B": ("rtvc",),
    "C": ("faceswap", "fsgan", "wav2lip"),
    "D": ("wav2lip", "fsgan-wav2lip", "faceswap-wav2lip"),
}
RACES = ("African", "Asian_East", "Asian_South", "Caucasian_American", "Caucasian_European")
GENDERS = ("men", "women")
VOICES = {"men": ("awb", "rms", "kal16"), "women": ("slt",)}

# Identity numbers from here up belong to the defect corpus (pipeline.synth.defects);
# the clips' identities are drawn below it.
DEFECT_ID_START = 90001

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
    """The ranges of a hard setting's cues (inclusive; frames at 25 fps).

    ``manip_len`` is the length of the one manipulated run of a fake video's frames,
    or ``None`` for whole-clip fakes (every frame manipulated); ``group_targets``
    draws a fake's targets within its source's race × gender group; ``shared_timeline``
    gives every fake its source's real clip's length and leading silence.
    """

    pitch_up: tuple[float, float] = (1.06, 1.10)
    pitch_down: tuple[float, float] = (0.90, 0.94)
    manip_len: tuple[int, int] | None = None
    av_offset: tuple[int, int] = (1, 3)
    blur_scale: float = 0.6
    tone: tuple[float, float, float] = (1.03, 0.99, 0.96)
    lead_silence: tuple[float, float] = (0.1, 0.3)  # seconds, real clips as the fakes
    group_targets: bool = True
    shared_timeline: bool = True


#: ``hard``: whole-clip fakes, targets within the source's race × gender group.
HARD = HardSetting()
#: ``hard-partial``: the hard setting as it was first made (8-12 manipulated frames,
#: targets from all identities); its plan for a seed never changes.
HARD_PARTIAL = HardSetting(
    manip_len=(8, 12), av_offset=(2, 3), group_targets=False, shared_timeline=False
)
HARD_SETTINGS = {"hard": HARD, "hard-partial": HARD_PARTIAL}


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


def make_motion(rng: np.random.Generator) -> Motion:
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


def make_identities(rng: np.random.Generator, k: int) -> list[Identity]:
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


def make_row(person: Identity, letter: str, method: str, name: str, t1: str, t2: str) -> Row:
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


def row_rel_path(row: Row) -> str:
    return f"{row.directory.removeprefix(CSV_DIR_PREFIX + '/')}/{row.path}"


def _harden(spec: ClipSpec, rng: np.random.Generator, setting: HardSetting) -> ClipSpec:
    """A hard setting's version of a planned clip: subtler cues, drawn from ``rng``."""
    changes: dict[str, Any] = {}
    if spec.lead_silence == 0.0:  # real clips: the onset shortcut is removed
        changes.update(lead_silence=_uniform(rng, *setting.lead_silence))
    if spec.fake_pitch is not None:
        pitch = setting.pitch_up if spec.fake_pitch > 1 else setting.pitch_down
        changes.update(fake_pitch=_uniform(rng, *pitch), audio_filter=SUBTLE_AUDIO_FILTER)
    if spec.swap is not None or spec.lipsync:
        if setting.manip_len is not None:  # one run of frames; None keeps every frame
            length = int(rng.integers(setting.manip_len[0], setting.manip_len[1] + 1))
            start = int(rng.integers(0, spec.n_frames - length + 1))
            changes.update(manip_frames=(start, start + length))
        changes.update(
            av_offset=int(rng.integers(setting.av_offset[0], setting.av_offset[1] + 1)),
            blur_scale=setting.blur_scale,
            tone=setting.tone,
            target_voice=None,  # a swapped face keeps the source's (delayed) mouth motion
        )
    return replace(spec, **changes)


def hard_record(spec: ClipSpec) -> dict[str, Any]:
    """What ``hard.json`` says about one clip of a hard setting.

    ``manip_frames`` is the ``[start, stop)`` of the manipulated video frames: the
    whole clip for a whole-clip fake, ``None`` for a real video.
    """
    manipulated = spec.swap is not None or spec.lipsync
    frames = spec.manip_frames or ((0, spec.n_frames) if manipulated else None)
    return {
        "lead_silence_s": spec.lead_silence,
        "fake_pitch": spec.fake_pitch,
        "audio_filter": spec.audio_filter if spec.fake_pitch is not None else None,
        "av_offset_frames": spec.av_offset,
        "manip_frames": list(frames) if frames else None,
    }


def share_timeline(planned: list[tuple[Row, ClipSpec]]) -> list[tuple[Row, ClipSpec]]:
    """Every clip with its source's real clip's length and leading silence.

    A fake is made from its source's recording, so it lasts as long and its speech
    starts as late: drawn per clip, both could separate the classes by chance (the first
    ``hard`` store's clip length did, AUC 0.65 for the audio label, ``ceiling_hard.json``).
    """
    real = {row.source: spec for row, spec in planned if row.category == "A"}
    return [
        (row, replace(spec, n_frames=real[row.source].n_frames,
                      lead_silence=real[row.source].lead_silence))
        for row, spec in planned
    ]  # fmt: skip


def group_of(person: Identity) -> tuple[str, str]:
    """The race × gender group of an identity (FakeAVCeleb's folders)."""
    return person.race, person.gender


@dataclass(frozen=True)
class _Draws:
    """What :func:`plan`'s clips draw from, so that the helpers below draw in its order.

    ``rng`` is the easy plan's generator: every draw of the easy dataset comes from it,
    in the order :func:`plan` makes them. ``group_rng`` (``[seed, 5]``) draws the targets
    of a setting with ``group_targets``; ``donor`` (``[seed, 1]``) is an identity with no
    clips, the target of a source with no one else to take a face or voice from.
    """

    rng: np.random.Generator
    group_rng: np.random.Generator
    people: list[Identity]
    donor: Identity
    setting: HardSetting | None

    def others(self, src: Identity, n: int) -> list[Identity]:
        """Up to ``n`` distinct targets for a fake of ``src``, never ``src`` itself.

        The easy draw from everyone else is always made, so the easy plan's draws stay
        as they were; a setting with ``group_targets`` then draws within the source's
        group from ``group_rng`` instead.
        """
        anyone = _draw(self.rng, [p for p in self.people if p.id != src.id] or [self.donor], n)
        if self.setting is None or not self.setting.group_targets:
            return anyone
        # As in the release: a source alone in its group gets the donor, who has no clips.
        group = [p for p in self.people if p.id != src.id and group_of(p) == group_of(src)]
        return _draw(self.group_rng, group or [self.donor], n)

    def base_spec(self, person: Identity, row: Row, lead: float) -> ClipSpec:
        """A clip of ``person`` as recorded: length, motion and render seed drawn here."""
        return ClipSpec(
            rel_path=row_rel_path(row),
            n_frames=int(self.rng.integers(55, 96)),
            look=person.look,
            motion=make_motion(self.rng),
            voice=person.voice,
            lead_silence=lead,
            seed=int(self.rng.integers(2**31)),
        )


def _draw(gen: np.random.Generator, pool: list[Identity], n: int) -> list[Identity]:
    """Up to ``n`` distinct identities of ``pool``, drawn from ``gen`` (one draw)."""
    idx = gen.choice(len(pool), size=min(n, len(pool)), replace=False)
    return [pool[int(i)] for i in idx]


def _real_clips(draws: _Draws, sources: list[Identity]) -> list[tuple[Row, ClipSpec]]:
    """Categories A (real video, real audio) then B (real video, rtvc-cloned voice) of
    every source, in that order."""
    out: list[tuple[Row, ClipSpec]] = []
    for person in sources:
        row = make_row(person, "A", "real", f"{person.number:05d}.mp4", "-", "-")
        out.append((row, draws.base_spec(person, row, 0.0)))
    for person in sources:
        row = make_row(person, "B", "rtvc", f"{person.number:05d}_fake.mp4", "-", "-")
        spec = draws.base_spec(person, row, _uniform(draws.rng, 0.1, 0.3))
        out.append((row, replace(spec, fake_pitch=_fake_pitch(draws.rng))))
    return out


def _face_fakes(draws: _Draws, sources: list[Identity]) -> list[tuple[Row, ClipSpec]]:
    """Categories C (fake video, real audio) then D (fake video, fake audio): one clip
    of each source per category, the methods taken round-robin from a drawn start."""
    out: list[tuple[Row, ClipSpec]] = []
    serial = {p.id: 0 for p in sources}  # per-identity fake counter, as in 00109_1.mp4
    for letter in ("C", "D"):
        offset = int(draws.rng.integers(3))  # which method the round-robin starts with
        for j, person in enumerate(sources):
            method = METHODS[letter][(j + offset) % 3]
            serial[person.id] += 1
            out.append(_face_fake(draws, person, letter, method, serial[person.id]))
    return out


def _face_fake(
    draws: _Draws, person: Identity, letter: str, method: str, serial: int
) -> tuple[Row, ClipSpec]:
    """One category C or D clip of ``person`` by ``method``: its targets (two for a
    two-stage method), its ``meta_data.csv`` row, and its spec (swapped face and
    voice, lip-sync, and for D a pitched voice)."""
    two_stage = method.endswith("-wav2lip")
    targets = draws.others(person, 2 if two_stage else 1)
    t1 = targets[0].id
    t2 = targets[1].id if two_stage and len(targets) > 1 else "-"
    if "wav2lip" in method:
        name = f"{person.number:05d}_{serial}_{t1}_wavtolip.mp4"
    else:
        name = f"{person.number:05d}_{serial}.mp4"
    row = make_row(person, letter, method, name, t1, t2)
    spec = draws.base_spec(person, row, _uniform(draws.rng, 0.1, 0.3))
    swap = method.split("-")[0] if method != "wav2lip" else None
    spec = replace(
        spec,
        swap=swap,
        target_look=targets[0].look if swap else None,
        target_voice=targets[0].voice if swap else None,
        lipsync="wav2lip" in method,
        fake_pitch=_fake_pitch(draws.rng) if letter == "D" else None,
    )
    return row, spec


def plan(
    per_category: int, identities: int, seed: int, difficulty: str = "easy"
) -> tuple[list[Identity], list[tuple[Row, ClipSpec]]]:
    """The whole dataset as rows and clip specs, from the arguments alone.

    A hard difficulty (``HARD_SETTINGS``) plans the easy dataset and then hardens
    every clip with a generator of its own, so that the easy plan's draws stay
    exactly as they were. Where the setting draws targets within the source's race ×
    gender group, they come from a third generator and the easy plan's own target
    draw is still made (and discarded), so that every other choice is the easy one.
    """
    if difficulty != "easy" and difficulty not in HARD_SETTINGS:
        raise ValueError(f"difficulty must be one of {DIFFICULTIES}, got {difficulty!r}")
    setting = HARD_SETTINGS.get(difficulty)
    rng = np.random.default_rng(seed)
    people = make_identities(rng, identities)
    sources = people[:per_category]
    donor = make_identities(np.random.default_rng([seed, 1]), 1)[0]
    draws = _Draws(rng, np.random.default_rng([seed, 5]), people, donor, setting)
    out = _real_clips(draws, sources) + _face_fakes(draws, sources)
    if setting is not None:
        hard_rng = np.random.default_rng([seed, 4])
        out = [(row, _harden(spec, hard_rng, setting)) for row, spec in out]
        if setting.shared_timeline:
            out = share_timeline(out)
    return people, out
