"""A packed store (format 4) read from object storage: moto's S3 server on 127.0.0.1.

Packed stores of both layouts, made through the store contract, are uploaded as a lab
syncs a finished store, then read by URL: clips, streams and frame labels equal the
local reads, and the trainer's windows equal the local windows, a raw window costing
one ranged GET per array once its clip is known."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from s3_server import S3Server, s3_server
from test_packed_store import ZSTD, _long_clip, _packed

import schemas
from schemas import manifest_store as ms
from schemas.packed_write import ShardWriter
from schemas.remote import OPTIONS_ENV, use_storage_options
from trainer.data.dataset import assign_clips
from trainer.data.reader import ClipReader

RAW_URL, ZSTD_URL = "s3://packed/raw", "s3://packed/zstd"


@pytest.fixture(scope="module")
def stores(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[S3Server, dict[str, Path]]]:
    root = tmp_path_factory.mktemp("packed_remote")
    raw = root / "raw"
    _packed(raw, 8)
    zstd = root / "zstd"
    schemas.create_store(zstd, ZSTD, packed=True, shard_target_bytes=200_000)
    writer = ShardWriter(zstd, ZSTD, 1, 200_000, durable=False)
    records = [writer.append(*_long_clip(i)) for i in range(4)]
    writer.close()
    ms.write_fragment(zstd, schemas.rows_to_table(records, schemas.MANIFEST_SCHEMA), 1)
    before = os.environ.get(OPTIONS_ENV)
    with s3_server() as server:
        use_storage_options(server.options)
        server.upload(raw, RAW_URL)
        server.upload(zstd, ZSTD_URL)
        yield server, {RAW_URL: raw, ZSTD_URL: zstd}
    if before is None:
        os.environ.pop(OPTIONS_ENV, None)
    else:
        os.environ[OPTIONS_ENV] = before


@pytest.mark.parametrize("url", [RAW_URL, ZSTD_URL])
def test_packed_clips_read_by_url_equal_the_local_reads(
    stores: tuple[S3Server, dict[str, Path]], url: str
) -> None:
    server, local_of = stores
    local = local_of[url]
    assert schemas.is_packed(url) or schemas.open_store(url).format_version == 4
    manifest = schemas.read_manifest(local)
    assert schemas.read_manifest(url).equals(manifest)
    recipe = schemas.open_store(local).recipe
    there, here = ClipReader(url, recipe), ClipReader(local, recipe)
    ids = manifest.column("clip_id").to_pylist()
    _, problems = assign_clips(url, ids, ["train"] * len(ids))
    assert not any(problems.values())
    for row in manifest.to_pylist():
        clip_id, frames = row["clip_id"], row["num_frames"]
        for name in schemas.CLIP_ARRAYS:
            far, near = (
                schemas.open_stream(url, clip_id, name),
                schemas.open_stream(local, clip_id, name),
            )
            assert (far is None) == (near is None), name
            if near is not None:
                assert np.array_equal(np.asarray(far), np.asarray(near), equal_nan=True), name
        far_labels = schemas.read_frame_labels(url, clip_id)
        near_labels = schemas.read_frame_labels(local, clip_id)
        assert (far_labels is None) == (near_labels is None)
        start = max(0, frames - 55)
        got, audio = there.window(clip_id, frames, start, frames)
        want, want_audio = here.window(clip_id, frames, start, frames)
        assert got["video"].tobytes() == want["video"].tobytes()
        assert audio.tobytes() == want_audio.tobytes()
    if url == RAW_URL:  # a known clip's window: one ranged GET per array (video, audio)
        clip_id, frames = manifest["clip_id"][0].as_py(), manifest["num_frames"][0].as_py()
        before = len(server.log.lines)
        there.window(clip_id, frames, 1, 3)
        assert len(server.log.lines) - before == 2
