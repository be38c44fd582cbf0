"""The stream door: the table of per-frame arrays cannot drift from what a store holds.

Every array a clip's folder holds on disk is declared in ``schemas.streams`` with the
shape and dtype found there, and every declared array is known to the limits on stored
metadata, the store's file rules, the readers, the pipeline's per-clip tensors and the
trainer's stream settings.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from media_fixtures import face_frames, make_clip

import schemas
from pipeline.clip.transform import ClipTensors, preprocess_clip
from schemas.array_limits import check_shape, expected_rows
from schemas.clips import EXTRA_ARRAYS
from schemas.layout import LABELS_DIR, clip_dir
from schemas.store_files import CLIP_ENTRIES, LABEL_ARRAYS, foreign_entries
from schemas.streams import CLIP_ARRAY_TABLE, STREAM_PATHS, STREAMS, ClipArray, rows_of
from trainer.config import settings as trainer_config
from trainer.data.reader import VISUAL_ROWS
from trainer.data.streams import STREAM_ARRAYS
from trainer.model.config import VISUAL_INPUTS

RECIPE = schemas.Recipe(crop_size=32, landmarks=True, streams=("face", "mouth"))


def _stored_arrays(folder: Path) -> dict[str, tuple[tuple[int, ...], np.dtype]]:
    """Each Zarr array below a clip's folder -> (shape, dtype), read from its ``zarr.json``."""
    found = {}
    for meta in folder.rglob("zarr.json"):
        node = json.loads(meta.read_text())
        if node["node_type"] == "array":
            path = meta.parent.relative_to(folder).as_posix()
            found[path] = (tuple(node["shape"]), np.dtype(node["data_type"]))
    return found


def _table_clip(frames: int) -> tuple[np.ndarray, np.ndarray, dict[str, np.ndarray]]:
    """``(video, audio, extra)`` of a clip holding every array of the table, as declared."""
    arrays = {a.path: np.zeros((frames, *a.row(RECIPE)), a.dtype(RECIPE)) for a in CLIP_ARRAY_TABLE}
    extra = {path: arrays[path] for path in EXTRA_ARRAYS}
    return arrays["video"], arrays["audio"], extra


def test_every_array_on_disk_is_declared_with_its_shape(tmp_path: Path) -> None:
    """A clip with every array and label: the files hold exactly the table, as declared."""
    schemas.create_store(tmp_path / "s", RECIPE)
    video, audio, extra = _table_clip(frames=6)
    labels = {name: np.zeros(6, np.uint8) for name in schemas.FRAME_LABELS}
    schemas.write_clip(
        tmp_path / "s", "c", video, audio, {}, RECIPE, extra=extra, frame_labels=labels
    )
    stored = _stored_arrays(clip_dir(tmp_path / "s", "c"))
    declared = {a.path: ((6, *a.row(RECIPE)), a.dtype(RECIPE)) for a in CLIP_ARRAY_TABLE}
    assert stored == declared
    assert foreign_entries(tmp_path / "s") == []  # the file rules know every array
    for path in schemas.CLIP_ARRAYS:  # and the readers read each
        data = schemas.open_stream(tmp_path / "s", "c", path)
        assert data is not None and data.shape == declared[path][0]


def test_an_ingested_clip_holds_only_declared_arrays(tmp_path: Path) -> None:
    """The pipeline's tensors of a synthetic clip: each array it stores has the table's row."""
    tensors = preprocess_clip(make_clip(tmp_path / "a.mp4", face_frames(25)), schemas.Recipe())
    rows = rows_of(schemas.Recipe())
    arrays = {"video": tensors.face, "audio": tensors.audio, **tensors.extra_arrays()}
    assert set(arrays) <= set(rows) and {"face_boxes", "face_valid"} <= set(arrays)
    for path, data in arrays.items():
        assert (data.shape[1:], data.dtype) == rows[path], path


def test_every_declared_array_is_checked_everywhere() -> None:
    """The limits, file rules, readers, write_clip, the pipeline and the trainer know the table."""
    assert set(expected_rows(RECIPE)) == {a.path for a in CLIP_ARRAY_TABLE}
    assert CLIP_ENTRIES | {f"{LABELS_DIR}/{n}" for n in LABEL_ARRAYS} == set(expected_rows(RECIPE))
    assert set(schemas.CLIP_ARRAYS) | set(EXTRA_ARRAYS) <= CLIP_ENTRIES
    fields = set(ClipTensors.__dataclass_fields__) | {"pose"}
    assert {a.name for a in CLIP_ARRAY_TABLE if a.path in EXTRA_ARRAYS} <= fields
    assert STREAMS == schemas.STREAMS == trainer_config.STREAMS == ("face", "mouth")
    assert STREAM_ARRAYS == STREAM_PATHS == {"face": "video", "mouth": "mouth"}
    assert set(VISUAL_ROWS) == set(STREAM_PATHS.values())
    assert set(VISUAL_INPUTS) == set(STREAMS)  # a channel count for every visual stream


@pytest.mark.parametrize("array", CLIP_ARRAY_TABLE, ids=lambda a: a.path)
def test_the_limits_refuse_a_row_the_table_does_not_declare(
    tmp_path: Path, array: ClipArray
) -> None:
    """Metadata naming another row or dtype than the table's is refused, for every entry."""
    store = tmp_path / "s"
    schemas.create_store(store, RECIPE)
    row, dtype = array.row(RECIPE), array.dtype(RECIPE)
    check_shape(store, array.path, (5, *row), dtype, (5, *row))
    with pytest.raises(ValueError, match="the store's recipe makes"):
        check_shape(store, array.path, (5, *row, 2), dtype, (5, *row, 2))
    other = np.dtype(np.float64 if dtype != np.float64 else np.uint8)
    with pytest.raises(ValueError, match="the store's recipe makes"):
        check_shape(store, array.path, (5, *row), other, (5, *row))


def test_write_clip_refuses_what_the_recipe_does_not_call_for(tmp_path: Path) -> None:
    """The table's ``calls_for``: a recipe with mouth crops refuses a clip without them."""
    schemas.create_store(tmp_path / "s", RECIPE)
    video, audio, extra = _table_clip(frames=3)
    del extra["mouth"]
    with pytest.raises(ValueError, match="calls for mouth"):
        schemas.write_clip(tmp_path / "s", "c", video, audio, {}, RECIPE, extra=extra)
