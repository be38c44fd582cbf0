"""Arrow schemas of the store's tables and their validation.

The manifest has one row per clip of the dataset, committed or failed. The
split table maps clip ids to ``train`` / ``val`` / ``test``. Extra columns are
allowed (readers ignore them); missing columns or wrong types are refused.

A manifest row may be unlabelled (``labelled`` false: a source whose labels are
not public, e.g. AV-Deepfake1M's test set): its ``category`` is ``""`` and its
three labels are null, and only then (:func:`validate_manifest`).
"""

from __future__ import annotations

import pyarrow as pa
import pyarrow.compute as pc

from schemas.cli_errors import UserError

STATUS_OK = "ok"
STATUS_FAILED = "failed"

#: A list of ``[start_s, end_s]`` segments.
SEGMENTS_TYPE = pa.list_(pa.list_(pa.float64(), 2))

MANIFEST_SCHEMA = pa.schema(
    [
        pa.field("clip_id", pa.string(), nullable=False),
        pa.field("path", pa.string(), nullable=False),  # relative to the dataset root, POSIX
        pa.field("category", pa.string(), nullable=False),  # RARV | FARV | RAFV | FAFV | ""
        pa.field("source_type", pa.string()),  # FakeAVCeleb folder, e.g. RealVideo-FakeAudio
        pa.field("audio_label", pa.int8()),  # 1 = fake; null exactly when not labelled
        pa.field("video_label", pa.int8()),
        pa.field("label", pa.int8()),  # 1 unless RARV
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
        # Landmark and track flags (pipeline.clip.landmarks); null where the recipe has no landmarks.
        pa.field("landmark_rate", pa.float32()),  # confident landmark fits / landmark fits
        pa.field("landmark_jitter", pa.float32()),  # mean per-frame point motion, crop px
        pa.field("shot_cuts", pa.int32()),  # cuts found in the frames (pipeline.clip.shots)
        pa.field("faceless_frames", pa.int32()),  # stored frames without a face (face_valid 0)
        # The speaking face (pipeline.clip.speaker): the kept face's mouth-voice correlation,
        # the most face tracks of a shot, and the flag of a clip whose faces none follow
        # the voice; correlation and flag null where no shot had two faces, all three
        # null in an older store.
        pa.field("speaker_correlation", pa.float32()),
        pa.field("face_tracks", pa.int16()),
        pa.field("no_speaker", pa.bool_()),
        # Head pose (pipeline.clip.head_pose): share of the frames with a face seen near
        # frontal, median |yaw| in degrees, and the flag of a clip below the documented
        # rate; null without landmarks and in an older store.
        pa.field("frontal_rate", pa.float32()),
        pa.field("median_abs_yaw", pa.float32()),
        pa.field("low_frontal_rate", pa.bool_()),
        # Share of the stored frames that sound like speech (pipeline.clip.speech), and the
        # flag of a clip below the documented threshold; null in an older store.
        pa.field("speech_fraction", pa.float32()),
        pa.field("little_speech", pa.bool_()),
        # The decoder that gave the clip's frames and samples: pyav (in the worker) or
        # ffmpeg (a process); null for a failed clip, and in an older store.
        pa.field("decoded_by", pa.string()),
        # The decoded frames' size and decoded width / source width: frames are decoded
        # at the source's displayed size up to 1080p's pixels, larger ones scaled to that
        # many (a fixed rule, never the duration); face_boxes are in source pixels. Null
        # for a failed clip, and in an older store.
        pa.field("decoded_width", pa.int32()),
        pa.field("decoded_height", pa.int32()),
        pa.field("decode_scale", pa.float32()),
        pa.field("source_fingerprint", pa.string(), nullable=False),
        # The source's size and mtime when it was decoded: what a rerun compares (format 3).
        pa.field("source_size", pa.int64()),
        pa.field("source_mtime_ns", pa.int64()),
        pa.field("recipe_hash", pa.string(), nullable=False),
        pa.field("status", pa.string(), nullable=False),  # ok | failed
        pa.field("error", pa.string()),  # reason when failed, else empty
        pa.field("node_id", pa.string()),  # Ray node that processed the clip
        pa.field("elapsed_s", pa.float32()),
        # Where the clip comes from and every label its dataset gives (pipeline.datasets).
        pa.field(
            "dataset", pa.string()
        ),  # fakeavceleb | lavdf | avdeepfake1m | csv (null: fakeavceleb)
        pa.field("labelled", pa.bool_()),  # false: labels unknown (null: an older store, true)
        pa.field("official_split", pa.string()),  # the dataset's own part: train | val | test | ""
        pa.field("source_split", pa.string()),  # that part as the dataset spells it (e.g. dev)
        pa.field("original", pa.string()),  # the real clip a fake was made from, "" if none
        # Fake segments, [[start_s, end_s], ...] in seconds of the source; null: none given.
        pa.field("fake_segments", SEGMENTS_TYPE),
        pa.field("audio_fake_segments", SEGMENTS_TYPE),
        pa.field("video_fake_segments", SEGMENTS_TYPE),
        # Where a packed store (format 4) keeps the clip: its shard's folder name below
        # shards/, the clip's first row in every array of the shard (its rows are
        # [shard_row, shard_row + num_frames)), and which arrays it holds, a bit per
        # name of schemas.packed_index.SHARD_ARRAYS. Null in other stores and failed rows.
        pa.field("shard", pa.string()),
        pa.field("shard_row", pa.int64()),
        pa.field("shard_arrays", pa.int32()),
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
        "faceless_frames",
        "speaker_correlation",
        "face_tracks",
        "no_speaker",
        "frontal_rate",
        "median_abs_yaw",
        "low_frontal_rate",
        "speech_fraction",
        "little_speech",
        "decoded_by",
        "decoded_width",
        "decoded_height",
        "decode_scale",
        "dataset",
        "labelled",
        "official_split",
        "source_split",
        "original",
        "fake_segments",
        "audio_fake_segments",
        "video_fake_segments",
        "source_size",
        "source_mtime_ns",
        "shard",
        "shard_row",
        "shard_arrays",
    }
)

#: The manifest's label columns: null exactly in the rows whose ``labelled`` is false.
LABEL_COLUMNS = ("audio_label", "video_label", "label")


class SchemaError(UserError):
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


def validate_manifest(table: pa.Table, what: str = "manifest") -> pa.Table:
    """:func:`validate_table` against ``MANIFEST_SCHEMA``, plus the labelled-row rule.

    A row whose ``labelled`` is false has ``category`` ``""`` and null labels; every
    other row (``labelled`` true, or null in an older store) has all three labels.
    """
    table = validate_table(table, MANIFEST_SCHEMA, what)
    # Vectorised: the manifest of a large dataset has a million rows, rewritten often.
    labelled = pc.fill_null(table.column("labelled"), True)
    unlabelled = pc.invert(labelled)
    no_category = pc.equal(table.column("category"), "")
    checks = [(pc.and_(labelled, no_category), "is labelled but has no category")]
    checks.append(
        (pc.and_(unlabelled, pc.invert(no_category)), "is not labelled but has a category")
    )
    for name in LABEL_COLUMNS:
        is_null = pc.is_null(table.column(name))
        checks.append((pc.and_(labelled, is_null), f"is labelled but its {name} is null"))
        checks.append(
            (pc.and_(unlabelled, pc.invert(is_null)), f"is not labelled but has a {name}")
        )
    for mask, problem in checks:
        if pc.any(mask).as_py():
            row = pc.index(mask, True).as_py()
            clip_id = table.column("clip_id")[row].as_py()
            raise SchemaError(f"{what}: clip {clip_id} {problem}")
    return table


def rows_to_table(rows: list[dict], schema: pa.Schema) -> pa.Table:
    """Build a table of ``schema`` from dict rows (missing nullable keys become null)."""
    return pa.Table.from_pylist(rows, schema=schema)
