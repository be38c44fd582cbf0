"""Reading a store from object storage: a real S3 server (moto) on 127.0.0.1.

Small stores written through the store contract (``tests/trainer_fixtures.py``), one raw
and one zstd copy, are uploaded with s3fs as a lab syncs a finished store, then read by
URL: the tables and clips must equal the local reads, the trainer's windows must equal
the local windows byte for byte and cost one ranged GET per array once a clip is known,
and ``mscct-train run`` / ``eval`` from the bucket must give the local run's metrics.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from cli_helpers import call_main
from s3_server import S3Server, s3_server
from store_copies import copy_store
from trainer_fixtures import build_store

import schemas
from schemas.remote import OPTIONS_ENV, RemoteStore, check_key, remote_store, use_storage_options
from trainer.cli import main
from trainer.config.settings import load_config
from trainer.data.dataset import split_clips
from trainer.data.reader import ClipReader
from trainer.train.run import train

COUNTS = {"train": 2, "val": 1, "test": 1}  # clips per category and part: 16 / 4 / 4
RAW_URL, ZSTD_URL = "s3://bucket/raw", "s3://bucket/stores/zstd"
QUICK = ["epochs=1", "window=16", "windows_per_clip=1", "batch_size=4", "precise_bn=1"]
QUICK += ["num_workers=0", "device=cpu", "seed=3"]


def _quiet(*_: object) -> None:
    pass


@pytest.fixture(scope="module")
def server() -> Iterator[S3Server]:
    """moto's S3 server, and the storage options that reach it in force in this process."""
    before = os.environ.get(OPTIONS_ENV)
    with s3_server() as running:
        use_storage_options(running.options)
        yield running
    if before is None:
        os.environ.pop(OPTIONS_ENV, None)
    else:
        os.environ[OPTIONS_ENV] = before


@pytest.fixture(scope="module")
def stores(server: S3Server, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """URL -> local store: a raw store with its split, its zstd copy, both uploaded."""
    root = tmp_path_factory.mktemp("remote")
    raw = build_store(root / "raw", crop_size=24, frames=20, counts=COUNTS)
    zstd = copy_store(raw, root / "zstd", layout="zstd")
    server.upload(raw, RAW_URL)
    server.upload(zstd, ZSTD_URL)
    return {RAW_URL: raw, ZSTD_URL: zstd}


@pytest.mark.parametrize("url", [RAW_URL, ZSTD_URL])
def test_tables_and_clips_read_through_the_url_equal_the_local_reads(
    stores: dict[str, Path], url: str
) -> None:
    local = stores[url]
    assert schemas.open_store(url).recipe == schemas.open_store(local).recipe
    assert schemas.read_manifest(url).equals(schemas.read_manifest(local))
    assert schemas.read_split(url).equals(schemas.read_split(local))
    assert schemas.list_splits(url) == schemas.list_splits(local) == ["default"]
    assert schemas.split_params(url) == schemas.split_params(local)
    assert schemas.store_fingerprint(url) == schemas.store_fingerprint(local)
    assert split_clips(url) == split_clips(local)
    for clip_id in schemas.read_manifest(local).column("clip_id").to_pylist()[:4]:
        pairs = zip(schemas.open_clip(url, clip_id), schemas.open_clip(local, clip_id), strict=True)
        for there, here in pairs:
            assert there.dtype == here.dtype and np.array_equal(there, here)
        assert schemas.open_stream(url, clip_id, "mouth") is None
    with pytest.raises(schemas.StoreError, match="not in store"):
        schemas.open_clip(url, "no_such_clip")


@pytest.mark.parametrize("url", [RAW_URL, ZSTD_URL])
def test_windows_equal_the_local_windows_and_cost_one_get_per_array(
    server: S3Server, stores: dict[str, Path], url: str
) -> None:
    local = stores[url]
    recipe = schemas.open_store(local).recipe
    there, here = ClipReader(url, recipe), ClipReader(local, recipe)
    clips = split_clips(local)["train"][:4]
    gets: list[int] = []
    for start, stop in [(0, 16), (3, 19), (4, 20), (10, 11)]:
        for clip in clips:
            before = len(server.log.lines)
            frames, audio = there.window(clip.clip_id, clip.num_frames, start, stop)
            gets.append(len(server.log.lines) - before)
            expected_frames, expected_audio = here.window(
                clip.clip_id, clip.num_frames, start, stop
            )
            assert frames["video"].tobytes() == expected_frames["video"].tobytes()
            assert audio.tobytes() == expected_audio.tobytes()
            assert frames["video"].flags.writeable and audio.flags.writeable
    first, later = gets[: len(clips)], gets[len(clips) :]
    # Known clips: one request per array (video, audio), whatever the layout (a zstd
    # clip of 20 frames is one chunk); the first read also checks sizes or metadata.
    assert later == [2] * len(later), later
    assert all(n <= 6 for n in first), first
    print(f"\n{url}: requests per window, first read {first}, later {later[:4]}")


def test_keys_that_leave_the_prefix_and_oversize_objects_are_refused(
    server: S3Server, stores: dict[str, Path]
) -> None:
    for key in ("../raw/zarr.json", "clips/../../x", "/zarr.json", "a//b", "a\\b"):
        with pytest.raises(schemas.StoreError, match="leaves the store's prefix"):
            check_key(key)
    with pytest.raises(schemas.StoreError, match=r"'\.\.' component"):
        remote_store("s3://bucket/raw/../zstd")
    with pytest.raises(schemas.StoreError, match="Protocol not known"):
        schemas.open_store("nosuchproto://bucket/raw")  # one line, not a traceback
    store: RemoteStore = remote_store(RAW_URL)
    before = len(server.log.lines)
    with pytest.raises(schemas.StoreError, match="over the limit"):
        store.read("manifest.parquet", max_bytes=100)
    assert not any(line.startswith("GET ") for line in server.log.lines[before:])  # unread
    # Writers refuse a URL before making anything (stores are written locally).
    split = schemas.read_split(RAW_URL)
    for write in (
        lambda: schemas.check_store_target(RAW_URL),
        lambda: schemas.write_split(RAW_URL, "other", split, {}),
        lambda: schemas.store_lock(Path(RAW_URL)).__enter__(),
    ):
        with pytest.raises(schemas.StoreError, match="in object storage"):
            write()
    assert not Path("s3:").exists() and schemas.list_splits(RAW_URL) == ["default"]


def test_a_hostile_shape_in_the_bucket_is_refused_before_reading(
    server: S3Server, stores: dict[str, Path]
) -> None:
    # A store whose clip metadata names 10⁹ frames: only its root and that file are
    # needed to read the clip's metadata, so only they are uploaded.
    local = stores[RAW_URL]
    clip_id = schemas.read_manifest(local).column("clip_id")[0].as_py()
    spec = schemas.array_spec(local, clip_id, "video")
    meta = json.loads((spec.path / "zarr.json").read_text())
    meta["shape"][0] = meta["chunk_grid"]["configuration"]["chunk_shape"][0] = 10**9
    fs = server.filesystem()
    fs.pipe("bucket/hostile/zarr.json", (local / "zarr.json").read_bytes())
    key = spec.path.relative_to(local).as_posix()
    fs.pipe(f"bucket/hostile/{key}/zarr.json", json.dumps(meta).encode())
    with pytest.raises(schemas.StoreError, match="damaged.*frames"):
        schemas.open_clip("s3://bucket/hostile", clip_id)


def test_train_run_and_eval_from_the_bucket_match_the_local_run(
    server: S3Server,
    stores: dict[str, Path],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    # In this process (the commands' own code, no interpreter start-up): the storage
    # options come from --storage-option alone.
    sets = [arg for pair in QUICK for arg in ("--set", pair)]
    local = train(
        load_config("tiny", QUICK), stores[RAW_URL], "default", tmp_path / "local", log=_quiet
    )
    monkeypatch.delenv(OPTIONS_ENV)
    args = ["run", "--store", RAW_URL, "--config", "tiny", "--out", str(tmp_path / "bucket")]
    assert call_main(main, [*args, *sets, *server.cli_options()]) == 0
    bucket = json.loads((tmp_path / "bucket" / "report.json").read_text())
    assert bucket["test"] == local["test"] and bucket["val"] == local["val"]
    assert bucket["store_fingerprint"] == local["store_fingerprint"]
    monkeypatch.delenv(OPTIONS_ENV)
    capsys.readouterr()
    best = str(tmp_path / "bucket" / "checkpoints" / "best.pt")
    assert call_main(main, ["eval", best, "--store", RAW_URL, "--json", *server.cli_options()]) == 0
    scored = json.loads(capsys.readouterr().out)
    assert scored["auc"] == local["test"]["auc"] and scored["n"] == local["test"]["n"]
