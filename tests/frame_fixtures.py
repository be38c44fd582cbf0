"""A small store of clips with fake segments and per-frame labels, for trainer tests.

As :mod:`trainer_fixtures`, no media: tensors go straight through the store contract
(``schemas.write_clip(..., frame_labels=...)``). Half the clips are real (fake
segments given, none: ``[]``), half are fake in one segment of frames, where both
modalities carry the fixture's cues (a bright square over the mouth, correlated audio
channels), so a per-frame head can learn where a clip is fake.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

import schemas


def _cue_audio(rng: np.random.Generator, frames: int, fake: np.ndarray) -> np.ndarray:
    audio = rng.standard_normal((frames, schemas.AUDIO_CHANNELS)).astype(np.float32)
    shared = rng.standard_normal((frames, 1)).astype(np.float32)
    audio[fake, :26] = 0.4 * audio[fake, :26] + 2.0 * shared[fake]
    return audio


def _cue_video(rng: np.random.Generator, size: int, fake: np.ndarray) -> np.ndarray:
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32) / size
    face = 90 + 60 * np.exp(-((yy - 0.45) ** 2 + (xx - 0.5) ** 2) / 0.08)
    video = face[None, :, :, None] + rng.normal(0, 12, (len(fake), size, size, 3))
    half, cy, cx = max(2, size // 8), int(size * 0.72), size // 2
    video[fake, cy - half : cy + half, cx - half : cx + half, :] = 235
    return np.clip(video, 0, 255).astype(np.uint8)


def _row(clip_id: str, index: int, frames: int, recipe: schemas.Recipe, **fields: object) -> dict:
    return {
        "clip_id": clip_id,
        "path": f"train/{index:06d}.mp4",
        "category": "RARV",
        "source_type": "",
        "audio_label": 0,
        "video_label": 0,
        "label": 0,
        "identity": f"id{index:05d}",
        "method": "real",
        "num_frames": frames,
        "source_fps": float(recipe.fps),
        "face_detection_rate": 1.0,
        "trimmed_frames": 0,
        "source_fingerprint": f"fp{index:05d}",
        "recipe_hash": recipe.hash(),
        "status": schemas.STATUS_OK,
        "error": "",
        "labelled": True,
        **fields,
    }


def segment_frames(index: int, frames: int) -> tuple[int, int]:
    """The fake frames ``[a, b)`` of fake clip ``index``: a third of the clip, placed by index."""
    length = frames // 3
    start = (index * 5) % (frames - length)
    return start, start + length


def build_segment_store(
    path: str | Path,
    *,
    crop_size: int = 24,
    frames: int = 24,
    counts: dict[str, int] | None = None,
    dataset: str = "lavdf",
    trimmed: int = 0,
    fps: int = 25,
    seed: int = 0,
    split: str | None = "default",
    labelled: bool = True,
) -> Path:
    """A store of ``counts[part]`` real and as many fake clips per part, with frame labels.

    A fake clip (FAFV) is fake in frames :func:`segment_frames`, its ``fake_segments``
    the seconds of the source those frames cover (the stored frames start ``trimmed``
    frames into the source). With ``labelled=False`` every clip is unlabelled (as
    AV-Deepfake1M's test set) and no split is written.
    """
    store = Path(path)
    counts = counts or {"train": 6, "val": 2, "test": 2}
    recipe = schemas.Recipe(crop_size=crop_size, fps=fps)
    schemas.create_store(store, recipe)
    rng = np.random.default_rng(seed)
    manifest, split_rows, index = [], [], 0
    for part in schemas.SPLITS:
        for fake_clip in [False] * counts[part] + [True] * counts[part]:
            a, b = segment_frames(index, frames) if fake_clip else (0, 0)
            fake = np.zeros(frames, dtype=bool)
            fake[a:b] = True
            segments = [[(a + trimmed) / fps, (b + trimmed) / fps]] if fake_clip else []
            fields: dict[str, object] = {
                "dataset": dataset,
                "trimmed_frames": trimmed,
                "official_split": part,
                "source_split": part,
                "fake_segments": segments,
                "audio_fake_segments": segments,
                "video_fake_segments": segments,
            }
            if fake_clip:
                fields |= {"category": "FAFV", "audio_label": 1, "video_label": 1, "label": 1}
                fields |= {"method": "synthetic"}
            if not labelled:
                fields |= {"category": "", "audio_label": None, "video_label": None}
                fields |= {"label": None, "labelled": False}
            clip_id = f"seg{index:05d}"
            row = _row(clip_id, index, frames, recipe, **fields)
            labels = {name: fake.astype(np.uint8) for name in schemas.FRAME_LABELS}
            audio, video = _cue_audio(rng, frames, fake), _cue_video(rng, crop_size, fake)
            schemas.write_clip(store, clip_id, video, audio, row, recipe, frame_labels=labels)
            manifest.append(row)
            if labelled:
                split_rows.append(
                    {
                        "clip_id": clip_id,
                        "split": part,
                        "category": row["category"],
                        "identity": row["identity"],
                        "label": row["label"],
                    }
                )
            index += 1
    schemas.write_manifest(store, schemas.rows_to_table(manifest, schemas.MANIFEST_SCHEMA))
    if split is not None and labelled:
        table = schemas.rows_to_table(split_rows, schemas.SPLIT_SCHEMA)
        schemas.write_split(store, split, table, {"seed": seed, "synthetic": True})
    return store
