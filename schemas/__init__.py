"""The contract between the pipeline and the trainer: tables, labels, the feature store.

One module per job: :mod:`schemas.layout` (where things lie, names, ``StoreError``),
:mod:`schemas.recipe` (the settings behind the tensors), :mod:`schemas.lifecycle`
(create, open, check a store), :mod:`schemas.store_files` (what a store's own files are),
:mod:`schemas.lock` (one writer per store), :mod:`schemas.clips` (write and commit a clip),
:mod:`schemas.readers` (link-safe tensor and frame-label reads), :mod:`schemas.tables` (Arrow schemas)
and :mod:`schemas.table_io` (manifest and split files), :mod:`schemas.durable` (fsync,
atomic file replacement), :mod:`schemas.labels`. Callers import from ``schemas``.

Imports pyarrow and numpy only (zarr lazily, for writing and compressed reads).
"""

from schemas.cli_errors import UserError
from schemas.clips import (
    FRAME_LABELS,
    committed_records,
    read_clip_record,
    remove_clip,
    sweep_staging,
    write_clip,
)
from schemas.durable import atomic_write, fsync_path, fsync_tree
from schemas.labels import (
    CATEGORIES,
    CATEGORY_TO_LETTER,
    CATEGORY_TO_TYPE_DIR,
    LETTER_TO_CATEGORY,
    SPLITS,
    TYPE_DIR_TO_CATEGORY,
    Labels,
    labels_for,
)
from schemas.layout import AUDIO_CHANNELS, FORMAT_VERSION, StoreError, is_packed
from schemas.lifecycle import (
    StoreInfo,
    check_folders,
    check_store_target,
    create_store,
    default_store_path,
    is_store,
    open_store,
)
from schemas.lock import store_lock
from schemas.manifest_store import compact_manifest, manifest_mode
from schemas.packed_read import chunk_ranges, open_packed_chunk
from schemas.readers import (
    CLIP_ARRAYS,
    ArraySpec,
    array_spec,
    load_array,
    open_clip,
    open_raw_chunk,
    open_stream,
    read_face_valid,
    read_frame_labels,
    read_pose,
)
from schemas.recipe import PIPELINE_VERSION, STREAMS, Recipe
from schemas.table_io import (
    list_splits,
    read_manifest,
    read_split,
    split_params,
    store_fingerprint,
    write_manifest,
    write_split,
)
from schemas.tables import (
    LABEL_COLUMNS,
    MANIFEST_SCHEMA,
    SEGMENTS_TYPE,
    SPLIT_SCHEMA,
    STATUS_FAILED,
    STATUS_OK,
    SchemaError,
    rows_to_table,
    validate_manifest,
    validate_table,
)

__all__ = [
    "AUDIO_CHANNELS",
    "CATEGORIES",
    "CATEGORY_TO_LETTER",
    "CATEGORY_TO_TYPE_DIR",
    "CLIP_ARRAYS",
    "FORMAT_VERSION",
    "FRAME_LABELS",
    "LABEL_COLUMNS",
    "LETTER_TO_CATEGORY",
    "MANIFEST_SCHEMA",
    "PIPELINE_VERSION",
    "SEGMENTS_TYPE",
    "SPLITS",
    "SPLIT_SCHEMA",
    "STATUS_FAILED",
    "STATUS_OK",
    "STREAMS",
    "TYPE_DIR_TO_CATEGORY",
    "ArraySpec",
    "Labels",
    "Recipe",
    "SchemaError",
    "StoreError",
    "StoreInfo",
    "UserError",
    "array_spec",
    "atomic_write",
    "check_folders",
    "check_store_target",
    "chunk_ranges",
    "committed_records",
    "compact_manifest",
    "create_store",
    "default_store_path",
    "fsync_path",
    "fsync_tree",
    "is_packed",
    "is_store",
    "labels_for",
    "list_splits",
    "load_array",
    "manifest_mode",
    "open_clip",
    "open_packed_chunk",
    "open_raw_chunk",
    "open_store",
    "open_stream",
    "read_clip_record",
    "read_face_valid",
    "read_frame_labels",
    "read_manifest",
    "read_pose",
    "read_split",
    "remove_clip",
    "rows_to_table",
    "split_params",
    "store_fingerprint",
    "store_lock",
    "sweep_staging",
    "validate_manifest",
    "validate_table",
    "write_clip",
    "write_manifest",
    "write_split",
]
