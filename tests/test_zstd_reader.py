"""The trainer's own zstd decoding (trainer.data.zstd_rows) against zarr's, on real stores.

Stores are written through ``schemas.write_clip`` (no media): clips of 137 frames
(chunks of 50, 50 and a padded 37), exactly one chunk (50) and less than one (7), with
face crops, mouth crops and audio. Every window is compared byte for byte with zarr's
decode of the same array, and with the same clips in a raw store.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
import zarr
from zarr.codecs import BloscCodec, ZstdCodec

import schemas
from schemas.clips import ZSTD_CHUNK_FRAMES
from trainer.data.dataset import ClipInfo, WindowDataset
from trainer.data.reader import ClipReader, ZarrRows
from trainer.data.zstd_rows import ChunkDecoder, ZstdArray, ZstdRows

LENGTHS = {"long": 137, "whole": 50, "short": 7}
CROP = 16
ARRAYS = ("video", "mouth", "audio")
# (start, stop) of a 137-frame clip: boundaries at 50 and 100, a padded last chunk.
WINDOWS = [
    (0, 16),  # the first rows of the first chunk
    (34, 50),  # ending at a chunk boundary
    (50, 66),  # starting at one
    (55, 71),  # inside one chunk
    (40, 56),  # across two
    (49, 100),  # across two, ending at the second's end
    (90, 137),  # into the padded last chunk, to the clip's end
    (130, 137),  # the clip's last frames only
    (0, 137),  # the whole clip
    (60, 60),  # no rows
]


def _recipe(**changes: object) -> schemas.Recipe:
    settings: dict[str, object] = {"layout": "zstd", "landmarks": True} | changes
    return schemas.Recipe(crop_size=CROP, streams=("face", "mouth"), **settings)  # type: ignore[arg-type]


def _write(store: Path, recipe: schemas.Recipe, seed: int = 0) -> list[ClipInfo]:
    schemas.create_store(store, recipe)
    rng = np.random.default_rng(seed)
    infos = []
    for number, (clip_id, frames) in enumerate(LENGTHS.items()):
        # Smooth content with noise: compressible, and every row differs.
        base = np.linspace(0, 200, frames * CROP * CROP * 3).reshape(frames, CROP, CROP, 3)
        video = (base + rng.integers(0, 40, base.shape)).astype(np.uint8)
        lips = np.linspace(30, 220, frames * 96 * 96).reshape(frames, 96, 96)
        mouth = (lips + rng.integers(0, 30, lips.shape)).astype(np.uint8)  # several zstd blocks
        audio = rng.normal(size=(frames, schemas.AUDIO_CHANNELS)).astype(np.float32)
        landmarks = rng.uniform(0, CROP, (frames, 68, 2)).astype(np.float16)
        extra: dict[str, np.ndarray] = {
            "mouth": mouth,
            "landmarks": landmarks,
        }  # the mouth stream needs landmarks
        schemas.write_clip(store, clip_id, video, audio, {"clip_id": clip_id}, recipe, extra=extra)
        infos.append(ClipInfo(clip_id, "RARV", f"id{number}", 0, 0, 0, frames))
    return infos


@pytest.fixture(scope="module")
def stores(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, list[ClipInfo]]:
    """A zstd store and a raw store of the same clips."""
    base = tmp_path_factory.mktemp("zstd_reader")
    clips = _write(base / "zstd", _recipe())
    _write(base / "raw", _recipe(layout="raw"))
    return base / "zstd", base / "raw", clips


def _array(store: Path, clip_id: str, name: str) -> ZstdArray:
    spec = schemas.array_spec(store, clip_id, name)
    meta = json.loads((spec.path / "zarr.json").read_text())
    array = ZstdArray.from_metadata(
        meta, str(spec.path), name=name, clip_id=clip_id, store=str(store)
    )
    assert array is not None, meta["codecs"]
    return array


def _zarr_rows(store: Path, clip_id: str, name: str, start: int, stop: int) -> np.ndarray:
    path = schemas.array_spec(store, clip_id, name).path
    return np.asarray(zarr.open_array(str(path), mode="r")[start:stop])


def _same_bytes(ours: np.ndarray, theirs: np.ndarray) -> bool:
    return (
        ours.dtype == theirs.dtype
        and ours.shape == theirs.shape
        and ours.tobytes() == theirs.tobytes()
    )


def _rechunk(store: Path, clip_id: str, name: str, rows: int, **codecs: object) -> None:
    """Rewrite one array of a committed clip with ``rows`` frames per chunk and the
    given zarr codec settings, as another writer (or an older one) would have."""
    path = schemas.array_spec(store, clip_id, name).path
    data = np.asarray(zarr.open_array(str(path), mode="r")[...])
    shutil.rmtree(path)
    settings: dict[str, object] = {"compressors": ZstdCodec(level=3), "filters": None} | codecs
    array = zarr.create_array(
        str(path),
        shape=data.shape,
        chunks=(rows, *data.shape[1:]),
        dtype=data.dtype,
        fill_value=0,
        **settings,  # type: ignore[arg-type]
    )
    array[...] = data


def test_new_stores_chunk_along_t_so_windows_touch_at_most_two_chunks(
    stores: tuple[Path, Path, list[ClipInfo]],
) -> None:
    zstd, _, _ = stores
    video = _array(zstd, "long", "video")
    assert video.chunk_rows == ZSTD_CHUNK_FRAMES == 50
    assert _array(zstd, "short", "audio").chunk_rows == 7  # never more rows than the clip
    # The presets' windows (tiny 16, paper 50) and the longest that fits (51): at most two.
    for window in (16, 50, 51):
        decoder = ChunkDecoder()
        rows = ZstdRows(video, decoder)
        for start in range(LENGTHS["long"] - window + 1):
            before = decoder.decompressions
            rows.rows(start, start + window)
            touched = decoder.decompressions - before
            assert touched <= 2, (window, start, touched)
            if start % 50 + window <= 50:
                assert touched == 1, (window, start)  # inside one chunk: one decode
    decoder = ChunkDecoder()
    ZstdRows(video, decoder).rows(49, 101)  # 52 frames: the bound is tight
    assert decoder.decompressions == 3


@pytest.mark.parametrize("name", ARRAYS)
def test_rows_are_the_bytes_zarr_decodes(
    stores: tuple[Path, Path, list[ClipInfo]], name: str
) -> None:
    zstd, _, _ = stores
    rows = ZstdRows(_array(zstd, "long", name), ChunkDecoder())
    for start, stop in WINDOWS:
        assert _same_bytes(rows.rows(start, stop), _zarr_rows(zstd, "long", name, start, stop))
    for clip_id in ("whole", "short"):
        rows = ZstdRows(_array(zstd, clip_id, name), ChunkDecoder())
        frames = LENGTHS[clip_id]
        for start, stop in ((0, frames), (1, frames), (frames - 3, frames)):
            expected = _zarr_rows(zstd, clip_id, name, start, stop)
            assert _same_bytes(rows.rows(start, stop), expected)
    with pytest.raises(ValueError, match="outside"):
        rows.rows(0, LENGTHS["short"] + 1)  # never the zeros of the padded chunk


def test_the_reader_decodes_zstd_itself_and_matches_the_raw_store(
    stores: tuple[Path, Path, list[ClipInfo]],
) -> None:
    zstd, raw, _ = stores
    ours = ClipReader(zstd, _recipe(), ("video", "mouth"))
    reference = ClipReader(raw, _recipe(layout="raw"), ("video", "mouth"))
    for start, stop in WINDOWS:
        frames, audio = ours.window("long", 137, start, stop)
        raw_frames, raw_audio = reference.window("long", 137, start, stop)
        for name in ("video", "mouth"):
            assert _same_bytes(frames[name], raw_frames[name])
        assert _same_bytes(audio, raw_audio)  # normalised alike: same statistics
    opened = ours.open_clips["long"]
    assert all(isinstance(rows, ZstdRows) for rows in (*opened.visual, opened.audio))
    ours.open_clips.clear()  # reopened from what was seen: no metadata read again
    os.rename(zstd / "clips", zstd / "moved")
    try:
        with pytest.raises(schemas.StoreError, match="its audio chunk file c/0/0 is missing"):
            ours.window("long", 137, 0, 16)
    finally:
        os.rename(zstd / "moved", zstd / "clips")
    frames, _ = ours.window("long", 137, 3, 19)
    assert _same_bytes(frames["video"], reference.window("long", 137, 3, 19)[0]["video"])


def test_padded_eval_windows_match_the_raw_store(
    stores: tuple[Path, Path, list[ClipInfo]],
) -> None:
    zstd, raw, clips = stores
    for window in (16, 50):  # tiny's and paper's
        ours = WindowDataset(zstd, clips, window, train=False, streams=("face", "mouth"))
        theirs = WindowDataset(raw, clips, window, train=False, streams=("face", "mouth"))
        assert len(ours) == len(theirs)
        padded = 0
        for i in range(len(ours)):
            a, b = ours[i], theirs[i]
            for key in ("video", "mouth", "audio", "mask"):
                assert torch.equal(a[key], b[key]), (window, i, key)
            padded += int(not bool(a["mask"].all()))
        assert padded > 0  # the clips' ends were padded


def test_an_old_store_of_one_second_chunks_reads_right(tmp_path: Path) -> None:
    store = tmp_path / "old"
    recipe = _recipe(audio_dtype="float16")
    _write(store, recipe, seed=1)
    for name in ARRAYS:
        _rechunk(store, "long", name, 25)  # the layout's chunks before two-second ones
    reader = ClipReader(store, recipe, ("video", "mouth"))
    for start, stop in WINDOWS:
        frames, _ = reader.window("long", 137, start, stop)
        for name in ("video", "mouth"):
            assert _same_bytes(frames[name], _zarr_rows(store, "long", name, start, stop))
    audio = _array(store, "long", "audio")
    assert audio.chunk_rows == 25 and audio.dtype == np.dtype("<f2")
    decoder = ChunkDecoder()
    rows = ZstdRows(audio, decoder)
    assert _same_bytes(rows.rows(20, 36), _zarr_rows(store, "long", "audio", 20, 36))
    assert decoder.decompressions == 2  # a 16-frame window still touches two chunks


@pytest.mark.parametrize(
    "codecs",
    [
        {"compressors": BloscCodec(cname="zstd", clevel=3, shuffle="shuffle")},
        {"compressors": ZstdCodec(level=3, checksum=True), "filters": None},
        {"compressors": None, "filters": None},  # chunked, uncompressed
    ],
    ids=["blosc-shuffle", "zstd-checksum", "chunked-uncompressed"],
)
def test_other_zarr_configurations_read_through_zarr_or_here(
    tmp_path: Path, codecs: dict[str, object]
) -> None:
    store = tmp_path / "other"
    recipe = _recipe()
    _write(store, recipe, seed=2)
    _rechunk(store, "long", "video", 20, **codecs)
    meta = json.loads((schemas.array_spec(store, "long", "video").path / "zarr.json").read_text())
    ours = ZstdArray.from_metadata(meta, "x", name="video", clip_id="long", store=str(store))
    plain_zstd = [c["name"] for c in meta["codecs"]] == ["bytes", "zstd"]
    assert (ours is not None) == plain_zstd  # a checksum is part of the zstd frame
    reader = ClipReader(store, recipe, ("video",))
    for start, stop in WINDOWS:
        frames, _ = reader.window("long", 137, start, stop)
        assert _same_bytes(frames["video"], _zarr_rows(store, "long", "video", start, stop))
    video = reader.open_clips["long"].visual[0]
    assert isinstance(video, ZstdRows if plain_zstd else ZarrRows)


def test_metadata_this_module_cannot_decode_is_left_to_zarr(
    stores: tuple[Path, Path, list[ClipInfo]],
) -> None:
    zstd, _, _ = stores
    path = schemas.array_spec(zstd, "long", "audio").path
    meta = json.loads((path / "zarr.json").read_text())

    def refused(**changes: object) -> bool:
        changed = json.loads(json.dumps(meta)) | changes
        return ZstdArray.from_metadata(changed, str(path), name="a", clip_id="c", store="s") is None

    assert not refused()
    big_endian = [{"name": "bytes", "configuration": {"endian": "big"}}, meta["codecs"][1]]
    assert refused(codecs=big_endian)
    assert refused(codecs=[meta["codecs"][0], {"name": "gzip", "configuration": {"level": 1}}])
    assert refused(
        codecs=[{"name": "transpose", "configuration": {"order": [1, 0]}}, *meta["codecs"]]
    )
    inner = {"name": "regular", "configuration": {"chunk_shape": [50, 52]}}
    assert refused(chunk_grid=inner)  # chunked along channels too
    assert refused(chunk_key_encoding={"name": "v2", "configuration": {"separator": "."}})
    assert refused(data_type="complex64")
    dotted = {"name": "default", "configuration": {"separator": "."}}
    array = ZstdArray.from_metadata(
        meta | {"chunk_key_encoding": dotted}, "d", name="a", clip_id="c", store="s"
    )
    assert array is not None and array.chunk_key(2) == "c.2.0"


def _cut(chunk: Path) -> None:
    chunk.write_bytes(chunk.read_bytes()[:-7])  # the window's rows are still all there


def _padded(chunk: Path) -> None:
    chunk.write_bytes(chunk.read_bytes() + b"\0" * 16)


def _corrupted(chunk: Path) -> None:
    data = bytearray(chunk.read_bytes())
    data[12:60] = bytes(range(48))  # inside the first block, past the frame header
    chunk.write_bytes(bytes(data))


def _linked(chunk: Path) -> None:
    moved = chunk.with_name("moved")
    os.rename(chunk, moved)
    os.symlink(moved, chunk)


@pytest.mark.parametrize("name", ["video", "mouth"])  # one zstd block per chunk; several
@pytest.mark.parametrize(
    ("damage", "expected"),
    [
        (lambda chunk: chunk.unlink(), "chunk file c/1/0/0/0 is missing"),
        (_cut, "chunk c/1/0/0/0 cannot be decoded"),
        (_padded, "chunk c/1/0/0/0 cannot be decoded"),
        (_corrupted, "chunk c/1/0/0/0 cannot be decoded"),
        (_linked, "chunk file c/1/0/0/0 cannot be opened"),
    ],
    ids=["missing", "cut-short", "stray-bytes", "corrupted", "link"],
)
def test_a_damaged_chunk_is_an_error_naming_the_clip(
    stores: tuple[Path, Path, list[ClipInfo]],
    tmp_path: Path,
    damage: object,
    expected: str,
    name: str,
) -> None:
    store = shutil.copytree(stores[0], tmp_path / "store")
    spec = schemas.array_spec(store, "long", name)
    key = ("c", "1", *["0"] * (len(spec.shape) - 1))  # video c/1/0/0/0, mouth c/1/0/0
    damage(spec.path.joinpath(*key))  # type: ignore[operator]
    reader = ClipReader(store, _recipe(), (name,))
    reader.window("long", 137, 0, 16)  # the first chunk still reads
    with pytest.raises(schemas.StoreError) as error:
        reader.window("long", 137, 50, 52)  # only the first rows of the damaged chunk
    message = str(error.value)
    expected = f"its {name} {expected}".replace("c/1/0/0/0", "/".join(key))
    assert message.startswith(f"clip long of store {store} is damaged: {expected}"), message
    assert "rerun `mscct-pipeline ingest`" in message


def test_metadata_that_disagrees_with_the_chunks_is_an_error(
    stores: tuple[Path, Path, list[ClipInfo]], tmp_path: Path
) -> None:
    store = shutil.copytree(stores[0], tmp_path / "store")
    meta_path = schemas.array_spec(store, "long", "video").path / "zarr.json"
    meta = json.loads(meta_path.read_text())
    meta["chunk_grid"]["configuration"]["chunk_shape"][0] = 40  # the chunks hold 50
    meta_path.write_text(json.dumps(meta))
    reader = ClipReader(store, _recipe(), ("video",))
    with pytest.raises(schemas.StoreError, match="chunk c/0/0/0/0 cannot be decoded .* 40 rows"):
        reader.window("long", 137, 0, 16)


def test_through_zarr_the_same_windows_and_the_same_damage_errors(
    stores: tuple[Path, Path, list[ClipInfo]], tmp_path: Path
) -> None:
    zstd, _, _ = stores
    ours = ClipReader(zstd, _recipe(), ("video", "mouth"))
    through_zarr = ClipReader(zstd, _recipe(), ("video", "mouth"), decode_zstd=False)
    for start, stop in WINDOWS:
        (frames, audio), (zarr_frames, zarr_audio) = (
            reader.window("long", 137, start, stop) for reader in (ours, through_zarr)
        )
        assert all(_same_bytes(frames[n], zarr_frames[n]) for n in ("video", "mouth"))
        assert _same_bytes(audio, zarr_audio)
    assert isinstance(through_zarr.open_clips["long"].visual[0], ZarrRows)
    # An array left to zarr (blosc) with a missing chunk: an error too, never zeros.
    store = shutil.copytree(zstd, tmp_path / "store")
    _rechunk(store, "long", "video", 50, compressors=BloscCodec(cname="zstd", clevel=3))
    (schemas.array_spec(store, "long", "video").path / "c" / "1" / "0" / "0" / "0").unlink()
    reader = ClipReader(store, _recipe(), ("video",))
    with pytest.raises(schemas.StoreError, match="its video chunk file c/1/0/0/0 is missing"):
        reader.window("long", 137, 45, 61)


def _silent_flip(data: bytes) -> int:
    """A byte of the zstd frame ``data`` that, flipped in a frame without a checksum,
    decodes to other values with no error; searched from the frame's end, so the rows
    it changes lie after a window of the chunk's first rows."""
    import zstandard

    plain = bytearray(data[:-4] if data[4] & 0x04 else data)
    plain[4] &= ~0x04  # the same frame, without its Content_Checksum_flag
    truth = zstandard.ZstdDecompressor().decompress(bytes(plain))
    for position in range(len(plain) - 1, zstandard.frame_header_size(data), -1):
        trial = bytearray(plain)
        trial[position] ^= 0x10
        try:
            if zstandard.ZstdDecompressor().decompress(bytes(trial)) != truth:
                return position
        except zstandard.ZstdError:
            continue
    raise AssertionError("no byte of the frame flips silently")


def test_a_flipped_byte_is_an_error_not_other_values(
    stores: tuple[Path, Path, list[ClipInfo]], tmp_path: Path
) -> None:
    """New chunks carry zstd's content checksum, and both readers check it: a flipped
    byte anywhere in a chunk fails the read of any rows of that chunk."""
    store = shutil.copytree(stores[0], tmp_path / "store")
    chunk = schemas.array_spec(store, "long", "video").path / "c" / "1" / "0" / "0" / "0"
    data = bytearray(chunk.read_bytes())
    position = _silent_flip(bytes(data))
    data[position] ^= 0x10
    chunk.write_bytes(bytes(data))
    reader = ClipReader(store, _recipe(), ("video",))
    reader.window("long", 137, 0, 16)  # the first chunk still reads
    with pytest.raises(schemas.StoreError, match="its video chunk c/1/0/0/0 cannot be decoded"):
        reader.window("long", 137, 50, 52)  # rows before the flipped byte
    with pytest.raises(RuntimeError, match="checksum"):
        _zarr_rows(store, "long", "video", 50, 52)


def test_chunks_written_without_a_checksum_still_read(
    stores: tuple[Path, Path, list[ClipInfo]], tmp_path: Path
) -> None:
    """A store written before chunks carried checksums reads as it did."""
    store = shutil.copytree(stores[0], tmp_path / "store")
    _rechunk(store, "long", "video", ZSTD_CHUNK_FRAMES, compressors=ZstdCodec(level=3))
    meta = json.loads((schemas.array_spec(store, "long", "video").path / "zarr.json").read_text())
    assert meta["codecs"][1]["configuration"]["checksum"] is False
    for start, stop in WINDOWS:
        ours = ZstdRows(_array(store, "long", "video"), ChunkDecoder()).rows(start, stop)
        assert _same_bytes(ours, _zarr_rows(stores[0], "long", "video", start, stop))
