"""The plan shared by the segment-labelled formats (LAV-DF, AV-Deepfake1M): sources and fakes.

:func:`plan_sources` draws, from one seeded generator (``[seed, 15]``), the
identities, their split (identity ``i`` is in ``SPLITS[i % 3]``, so the parts are
identity-disjoint), and ``per_category`` real source clips per split, spread
round-robin over that split's identities. Each source clip gives four clips
(:func:`clips_of`): the real one (RARV) and three partial fakes made from it,
FARV (a fake audio segment), RAFV (a fake mouth segment) and FAFV (both, over the
same frames, as the releases manipulate one word in both modalities). Each fake
gets its own segment of 25-50 frames (1-2 s) with at least ``MARGIN`` real frames
on either side; the FAFV of the first training source is a whole-clip fake
(segment = the whole clip). A fake's voice comes from another identity
(``donor``). Clips are 50-75 frames (2-3 s) long.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np

from pipeline.synth.plan import Identity, make_identities, make_motion
from pipeline.synth.segmented import Frames, SegmentedSpec
from pipeline.synth.spec import ClipSpec
from schemas.cli_errors import UserError
from schemas.labels import CATEGORIES, SPLITS

FRAMES_RANGE = (50, 75)  # inclusive: clip lengths in frames (2-3 s at 25 fps)
SEGMENT_RANGE = (25, 50)  # inclusive: fake segment lengths in frames (1-2 s)
MARGIN = 5  # real frames kept before and after a partial segment


@dataclass(frozen=True)
class Source:
    """One real clip and what its fakes are made of."""

    identity: Identity
    split: str  # train / val / test
    number: int  # 0, 1, ... within its identity
    spec: ClipSpec  # the real clip (rel_path set per format)
    donor: Identity  # whose voice the fake audio segments speak with
    segments: dict[str, Frames]  # category (FARV, RAFV, FAFV) -> its fake frames


@dataclass(frozen=True)
class SegmentedClip:
    """One clip of a segment-labelled format: its source, category and fake segments (frames)."""

    source: Source
    category: str
    audio_segment: Frames | None
    video_segment: Frames | None

    def spec(self, rel_path: str) -> SegmentedSpec:
        donor = self.source.donor.voice if self.audio_segment is not None else None
        return SegmentedSpec(
            rel_path=rel_path,
            base=replace(self.source.spec, rel_path=rel_path),
            donor_voice=donor,
            audio_segment=self.audio_segment,
            video_segment=self.video_segment,
        )


def _segment(rng: np.random.Generator, n_frames: int) -> Frames:
    length = int(rng.integers(SEGMENT_RANGE[0], min(SEGMENT_RANGE[1], n_frames - 2 * MARGIN) + 1))
    start = int(rng.integers(MARGIN, n_frames - MARGIN - length + 1))
    return start, start + length


def check_sizes(per_category: int, identities: int) -> None:
    """Refuse sizes that cannot give every split and category a clip (``UserError``)."""
    if per_category < 1:
        raise UserError(f"per_category must be >= 1, got {per_category}")
    if identities < len(SPLITS):
        raise UserError(
            f"identities must be >= {len(SPLITS)} (one per split: train, val, test), "
            f"got {identities}"
        )


def plan_sources(
    per_category: int, identities: int, seed: int
) -> tuple[list[Identity], list[Source]]:
    """Identities and the real source clips of every split, from the arguments alone."""
    check_sizes(per_category, identities)
    rng = np.random.default_rng([seed, 15])
    people = make_identities(rng, identities)
    sources: list[Source] = []
    for s, split in enumerate(SPLITS):
        members = people[s :: len(SPLITS)]
        for j in range(per_category):
            person = members[j % len(members)]
            n_frames = int(rng.integers(FRAMES_RANGE[0], FRAMES_RANGE[1] + 1))
            spec = ClipSpec(
                rel_path="",
                n_frames=n_frames,
                look=person.look,
                motion=make_motion(rng),
                voice=person.voice,
                seed=int(rng.integers(2**31)),
            )
            others = [p for p in people if p.id != person.id]
            donor = others[int(rng.integers(len(others)))]
            segments = {c: _segment(rng, n_frames) for c in CATEGORIES[1:]}
            if split == "train" and j == 0:
                segments["FAFV"] = (0, n_frames)  # a whole-clip fake
            number = j // len(members)
            sources.append(Source(person, split, number, spec, donor, segments))
    return people, sources


def clips_of(source: Source) -> list[SegmentedClip]:
    """The four clips made from one source: RARV, FARV, RAFV, FAFV."""
    seg = source.segments
    return [
        SegmentedClip(source, "RARV", None, None),
        SegmentedClip(source, "FARV", seg["FARV"], None),
        SegmentedClip(source, "RAFV", None, seg["RAFV"]),
        SegmentedClip(source, "FAFV", seg["FAFV"], seg["FAFV"]),
    ]
