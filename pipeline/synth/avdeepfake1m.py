"""A synthetic AV-Deepfake1M: the release's tree, metadata lists and test file list.

Media sit under ``<subset>/<identity>/<video id>/<clip no>/<name>.mp4`` with subsets
``train``, ``val`` and ``test``; identities are VoxCeleb2-style ``idNNNNN``, video
ids 11 YouTube-id characters, clip numbers five digits. As in the release, one
clip folder holds the real clip and the fakes made from it, named by what is
fake (``NAMES``): ``real.mp4``, ``fake_video_fake_audio.mp4``,
``fake_video_real_audio.mp4``, ``real_video_fake_audio.mp4``.

``train_metadata.json`` and ``val_metadata.json`` are lists of records whose
``file`` is relative to the subset folder (``id00012/dGBIDj-zRuU/00130/real.mp4``)
with the release's fields: ``original`` (the real clip's ``file`` for a fake;
``None`` for a real clip, where the release names the clip's VoxCeleb2 source,
which does not exist here), ``split``, ``modify_type`` (``real``,
``visual_modified``, ``audio_modified``, ``both_modified``), ``audio_model``
(the voice model of fake audio, ``""`` where the audio is real),
``fake_segments`` / ``audio_fake_segments`` / ``visual_fake_segments`` in seconds,
``video_frames`` (25 fps) and ``audio_frames`` (16 kHz samples). The official SDK's
loader tests for the spelling ``both-modified``; the first both-modified record of
``val_metadata.json`` is written that way so readers are tested on both. The test
subset is unlabelled: its files are listed, relative to ``test/``, in
``test_files.txt`` and appear in no metadata file. The per-file JSON folders
(``<subset>_metadata/``) of the release are not written. Ids and numbers come from
their own generator (``[seed, 17]``).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from pipeline.synth.segmented import SegmentedSpec, seconds
from pipeline.synth.segmented_plan import SegmentedClip, Source, clips_of
from pipeline.synth.spec import SAMPLES_PER_FRAME

ROOT_NAME = "AV-Deepfake1M"
TEST_FILES_NAME = "test_files.txt"
LABELLED_SUBSETS = ("train", "val")
NAMES = {
    "RARV": "real.mp4",
    "FARV": "real_video_fake_audio.mp4",
    "RAFV": "fake_video_real_audio.mp4",
    "FAFV": "fake_video_fake_audio.mp4",
}
MODIFY_TYPES = {
    "RARV": "real",
    "FARV": "audio_modified",
    "RAFV": "visual_modified",
    "FAFV": "both_modified",
}
SDK_BOTH = "both-modified"  # the official SDK's spelling
AUDIO_MODELS = ("yourtts", "vits")
_ID_CHARS = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"


def metadata_name(subset: str) -> str:
    return f"{subset}_metadata.json"


def record(
    clip: SegmentedClip, file: str, original: str | None, audio_model: str
) -> dict[str, Any]:
    """The metadata record of one labelled clip."""
    audio = [seconds(clip.audio_segment)] if clip.audio_segment else []
    visual = [seconds(clip.video_segment)] if clip.video_segment else []
    n = clip.source.spec.n_frames
    return {
        "file": file,
        "original": original,
        "split": clip.source.split,
        "modify_type": MODIFY_TYPES[clip.category],
        "audio_model": audio_model if audio else "",
        "fake_segments": sorted({tuple(s): s for s in audio + visual}.values()),
        "audio_fake_segments": audio,
        "visual_fake_segments": visual,
        "video_frames": n,
        "audio_frames": n * SAMPLES_PER_FRAME,
    }


def _folder(rng: np.random.Generator, source: Source) -> str:
    video_id = "".join(_ID_CHARS[int(i)] for i in rng.integers(len(_ID_CHARS), size=11))
    return f"{source.identity.id}/{video_id}/{int(rng.integers(1, 1000)):05d}"


def lay_out(
    sources: list[Source], seed: int
) -> list[tuple[SegmentedSpec, SegmentedClip, dict[str, Any] | None]]:
    """Every clip's spec (path relative to ``AV-Deepfake1M/``), plan entry and record.

    The record is ``None`` for the unlabelled test subset.
    """
    rng = np.random.default_rng([seed, 17])
    out: list[tuple[SegmentedSpec, SegmentedClip, dict[str, Any] | None]] = []
    for source in sources:
        folder = _folder(rng, source)
        model = AUDIO_MODELS[int(rng.integers(len(AUDIO_MODELS)))]
        real = f"{folder}/{NAMES['RARV']}"
        for clip in clips_of(source):
            file = f"{folder}/{NAMES[clip.category]}"
            rec = None
            if source.split in LABELLED_SUBSETS:
                rec = record(clip, file, None if clip.category == "RARV" else real, model)
            out.append((clip.spec(f"{source.split}/{file}"), clip, rec))
    return out


def metadata_files(entries: list[tuple[str, dict[str, Any] | None]]) -> dict[str, Any]:
    """File name -> content: ``{train,val}_metadata.json`` lists and ``test_files.txt`` text.

    ``entries`` are ``(path relative to the dataset root, record or None)``.
    """
    lists: dict[str, list[dict[str, Any]]] = {s: [] for s in LABELLED_SUBSETS}
    test_files = []
    for rel_path, rec in entries:
        if rec is None:
            test_files.append(rel_path.removeprefix("test/"))
        else:
            lists[rec["split"]].append(rec)
    both = [r for r in lists["val"] if r["modify_type"] == MODIFY_TYPES["FAFV"]]
    if both:
        both[0]["modify_type"] = SDK_BOTH
    files: dict[str, Any] = {metadata_name(s): recs for s, recs in lists.items()}
    files[TEST_FILES_NAME] = "".join(f"{f}\n" for f in sorted(test_files))
    return files
