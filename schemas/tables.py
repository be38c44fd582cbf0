"""Arrow schemas of the store's tables and their validation.

The manifest has one row per clip of the dataset, committed or failed. The
split table maps clip ids to ``train`` / ``val`` / ``test``. Extra columns are
allowed (readers ignore them); missing columns or wrong types are refused.
"""

from __future__ import annotations

import pyarrow as pa

STATUS_OK = "ok"
STATUS_FAILED = "failed"

MANIFEST_SCHEMA = pa.schema(
    [
        pa.field("clip_id", pa.string(), nullable=False),
        pa.field("path", pa.string(), nullable=False),  # relative to the dataset root, POSIX
        pa.field("category", pa.string(), nullable=False),  # RARV | FARV | RAFV | FAFV
        pa.field("source_type", pa.string()),  # FakeAVCeleb folder, e.g. RealVideo-FakeAudio
        pa.field("audio_label", pa.int8(), nullable=False),  # 1 = fake
        pa.field("video_label", pa.int8(), nullable=False),
        pa.field("label", pa.int8(), nullable=False),  # 1 unless RARV
        pa.field("identity", pa.string(), nullable=False),  # `source` column: VoxCeleb2 id
        pa.field("target1", pa.string()),
        pa.field("target2", pa.string()),
        pa.field("method", pa.string(), nullable=False),
        pa.field("race", pa.string()),
        pa.field("gender", pa.string()),
        pa.field("num_frames", pa.int32(), nullable=False),  # T of the stored tensors (0 if failed)
        pa.field("source_fps", pa.float32()),
        pa.field("source_duration_s", pa.float32()),
        pa.field("source_width", pa.int32()),
        pa.field("source_height", pa.int32()),
        pa.field("face_detection_rate", pa.float32()),  # detections / detector calls
        pa.field("trimmed_frames", pa.int32()),  # leading-silence frames removed (0 = none)
        pa.field("audio_offset_s", pa.float32()),  # audio start - video start, as found
        pa.field("audio_coverage", pa.float32()),  # audio duration / video duration, <= 1
        pa.field("cut", pa.bool_()),  # the source was longer than the recipe's limit, cut there
        pa.field("low_face_rate", pa.bool_()),  # face_detection_rate below the recipe's threshold
        # Landmark and track flags (pipeline.landmarks); null where the recipe has no landmarks.
        pa.field("landmark_rate", pa.float32()),  # confident landmark fits / landmark fits
        pa.field("landmark_jitter", pa.float32()),  # mean per-frame point motion, crop px
        pa.field("shot_cuts", pa.int32()),  # jumps of the detected face box (cuts, track switches)
        pa.field("source_fingerprint", pa.string(), nullable=False),
        pa.field("recipe_hash", pa.string(), nullable=False),
        pa.field("status", pa.string(), nullable=False),  # ok | failed
        pa.field("error", pa.string()),  # reason when failed, else empty
        pa.field("node_id", pa.string()),  # Ray node that processed the clip
        pa.field("elapsed_s", pa.float32()),
    ]
)

SPLIT_SCHEMA = pa.schema(
    [
        pa.field("clip_id", pa.string(), nullable=False),
        pa.field("split", pa.string(), nullable=False),  # train | val | test
        pa.field("category", pa.string(), nullable=False),
        pa.field("identity", pa.string(), nullable=False),
        pa.field("label", pa.int8(), nullable=False),
    ]
)


#: Columns added after the first stores were written: a table without them (an older
#: store) reads with the column all null, never refused.
LATER_COLUMNS = frozenset(
    {
        "audio_offset_s",
        "audio_coverage",
        "cut",
        "low_face_rate",
        "landmark_rate",
        "landmark_jitter",
        "shot_cuts",
    }
)


class SchemaError(ValueError):
    """A table does not follow the store contract."""


def validate_table(table: pa.Table, schema: pa.Schema, what: str) -> pa.Table:
    """Check that ``table`` has every column of ``schema`` with the same type.

    Returns the table reduced to the schema's columns, in the schema's order,
    so that callers never depend on extra or reordered columns.
    """
    for field in schema:
        if field.name in LATER_COLUMNS and field.name not in table.column_names:
            table = table.append_column(field, pa.nulls(table.num_rows, field.type))
    missing = [f.name for f in schema if f.name not in table.column_names]
    if missing:
        raise SchemaError(f"{what}: missing column(s) {', '.join(missing)}")
    for field in schema:
        actual = table.schema.field(field.name).type
        if actual != field.type:
            raise SchemaError(
                f"{what}: column {field.name!r} has type {actual}, expected {field.type}"
            )
        if not field.nullable and table.column(field.name).null_count:
            raise SchemaError(f"{what}: column {field.name!r} has null values")
    return table.select(schema.names)


def rows_to_table(rows: list[dict], schema: pa.Schema) -> pa.Table:
    """Build a table of ``schema`` from dict rows (missing nullable keys become null)."""
    return pa.Table.from_pylist(rows, schema=schema)
