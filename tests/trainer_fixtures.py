"""A small feature store with learnable synthetic tensors, for trainer tests.

No media is involved: the tensors are written straight through the store contract
(``schemas.write_clip`` / ``write_manifest`` / ``write_split``), with a cue per
modality that survives any per-clip or per-channel normalisation:

* fake audio: channels 0-25 share one random time series (strongly correlated),
  real audio: every channel is independent noise;
* fake video: a bright square over the mouth region (lower centre) in every
  frame; real video: the same noisy face-like gradient without it.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

import schemas

SPLIT_COUNTS = {"train": 24, "val": 8, "test": 8}  # clips per category


def _audio(rng: np.random.Generator, frames: int, fake: bool) -> np.ndarray:
    audio = rng.standard_normal((frames, schemas.AUDIO_CHANNELS)).astype(np.float32)
    if fake:
        shared = rng.standard_normal((frames, 1)).astype(np.float32)
        audio[:, :26] = 0.4 * audio[:, :26] + 2.0 * shared
    return audio


def _video(rng: np.random.Generator, frames: int, size: int, fake: bool) -> np.ndarray:
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32) / size
    face = 90 + 60 * np.exp(-((yy - 0.45) ** 2 + (xx - 0.5) ** 2) / 0.08)
    video = face[None, :, :, None] + rng.normal(0, 12, (frames, size, size, 3))
    if fake:
        half = max(2, size // 8)
        cy = int(size * 0.72) + int(rng.integers(-1, 2))
        cx = size // 2 + int(rng.integers(-1, 2))
        video[:, cy - half : cy + half, cx - half : cx + half, :] = 235
    return np.clip(video, 0, 255).astype(np.uint8)


def build_store(
    path: str | Path,
    *,
    crop_size: int = 32,
    frames: int = 32,
    counts: dict[str, int] | None = None,
    seed: int = 0,
    split: str = "default",
    scramble_test_labels: bool = False,
    features: str = "mfcc",
) -> Path:
    """Write a store at ``path`` with ``counts[part]`` clips per category and part.

    Each clip has ``frames`` frames of ``(crop_size, crop_size)`` crops and its
    own identity, so the split is identity-disjoint. With
    ``scramble_test_labels`` the tensors are identical but every test clip is
    recorded under another category (RARV→FARV→RAFV→FAFV→RARV): a trainer that
    never looks at test data must select the same checkpoint on both stores.
    ``features`` is the recipe's audio features (``fbank`` for a detector that reads log
    filter banks); the tensors are the same synthetic ones either way.
    """
    store = Path(path)
    counts = counts or SPLIT_COUNTS
    recipe = schemas.Recipe(crop_size=crop_size, features=features)
    schemas.create_store(store, recipe)
    rng = np.random.default_rng(seed)
    manifest: list[dict] = []
    split_rows: list[dict] = []
    index = 0
    for part in schemas.SPLITS:
        for category in schemas.CATEGORIES:
            for _ in range(counts[part]):
                truth = schemas.labels_for(category)
                audio = _audio(rng, frames, bool(truth.audio))
                video = _video(rng, frames, crop_size, bool(truth.video))
                recorded = category
                if scramble_test_labels and part == "test":
                    cats = schemas.CATEGORIES
                    recorded = cats[(cats.index(category) + 1) % len(cats)]
                labels = schemas.labels_for(recorded)
                clip_id = f"clip{index:05d}"
                row = {
                    "clip_id": clip_id,
                    "path": f"{schemas.CATEGORY_TO_TYPE_DIR[recorded]}/x/men/id{index:05d}/0.mp4",
                    "category": recorded,
                    "source_type": schemas.CATEGORY_TO_TYPE_DIR[recorded],
                    "audio_label": labels.audio,
                    "video_label": labels.video,
                    "label": labels.overall,
                    "identity": f"id{index:05d}",
                    "method": "real" if recorded == "RARV" else "synthetic",
                    "num_frames": frames,
                    "source_fps": 25.0,
                    "face_detection_rate": 1.0,
                    "trimmed_frames": 0,
                    "source_fingerprint": f"fp{index:05d}",
                    "recipe_hash": recipe.hash(),
                    "status": schemas.STATUS_OK,
                    "error": "",
                }
                schemas.write_clip(store, clip_id, video, audio, row, recipe)
                manifest.append(row)
                split_rows.append(
                    {
                        "clip_id": clip_id,
                        "split": part,
                        "category": recorded,
                        "identity": row["identity"],
                        "label": labels.overall,
                    }
                )
                index += 1
    schemas.write_manifest(store, schemas.rows_to_table(manifest, schemas.MANIFEST_SCHEMA))
    schemas.write_split(
        store,
        split,
        schemas.rows_to_table(split_rows, schemas.SPLIT_SCHEMA),
        {"balance": True, "seed": seed, "synthetic": True},
    )
    return store
