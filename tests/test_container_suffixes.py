"""Every accepted container ingests, each only through the demuxer its suffix names; other
video containers are listed as ``unsupported``; clips where no one speaks are flagged.

One real ingest of a small FakeAVCeleb-layout tree (no CSV) holds: the same clip
remuxed as ``.mov``, ``.mkv``, ``.avi`` and re-encoded as ``.webm`` (VP8 + Opus),
a near-silent clip (its speech at -60 dB), a music-like clip (held tones instead of
the speech), a text file named ``x.mkv`` and an ``.flv``.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest
from cli_helpers import ingest_json
from media_fixtures import face_frames, make_clip

import schemas
from pipeline.cli.ingest import _unsupported_note
from pipeline.clip.transform import preprocess_clip
from pipeline.datasets.fakeavceleb import scan_dataset
from pipeline.errors import ClipError
from schemas.recipe import Recipe

FOLDER = "RealVideo-RealAudio/African/men/id00001"
# A C major chord that changes every half second: music-like, no syllables.
TONES = (
    "aevalsrc='0.2*sin(2*PI*(262+131*mod(floor(2*t),3))*t)+0.15*sin(2*PI*330*t)"
    "+0.1*sin(2*PI*392*t)':s=16000:d=2"
)


def _ffmpeg(*args: str | Path) -> None:
    subprocess.run(
        ["ffmpeg", "-nostdin", "-v", "error", "-y", *map(str, args)], check=True, timeout=60
    )


@pytest.fixture(scope="module")
def source(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 2 s face clip with flite speech (H.264 + AAC mp4)."""
    return make_clip(tmp_path_factory.mktemp("suffixes") / "src.mp4", face_frames(50))


def _tree(root: Path, src: Path) -> Path:
    """The mixed tree (see the module docstring) under ``root``."""
    folder = root / FOLDER
    folder.mkdir(parents=True)
    for suffix, codecs in {
        "mov": ["-c", "copy"],
        "mkv": ["-c", "copy"],
        "avi": ["-c:v", "copy", "-c:a", "pcm_s16le"],
        "webm": ["-c:v", "libvpx", "-deadline", "realtime", "-cpu-used", "8", "-c:a", "libopus"],
    }.items():
        _ffmpeg("-i", f"file:{src}", *codecs, f"file:{folder / f'clip.{suffix}'}")
    _ffmpeg("-i", f"file:{src}", "-c:v", "copy", "-af", "volume=-60dB", "-c:a", "aac",
            f"file:{folder / 'quiet.mp4'}")  # fmt: skip
    _ffmpeg("-i", f"file:{src}", "-f", "lavfi", "-i", TONES, "-map", "0:v", "-map", "1:a",
            "-c:v", "copy", "-c:a", "aac", "-shortest", f"file:{folder / 'music.mp4'}")  # fmt: skip
    (folder / "x.mkv").write_text("not a video\n")
    shutil.copy(src, folder / "old.flv")
    return root


def test_each_container_ingests_and_no_speech_is_flagged(source: Path, tmp_path: Path) -> None:
    root = _tree(tmp_path / "data", source)
    store = tmp_path / "store"
    _, result = ingest_json(root, "--store", store, check=False)
    assert result["unsupported"] == [
        f"{FOLDER}/old.flv: .flv is not a supported video container "
        "(accepted: .avi .m4v .mkv .mov .mp4 .webm); unsupported"
    ]
    assert result["unlisted"] == [] and result["refused"] == []
    rows = {Path(r["path"]).name: r for r in schemas.read_manifest(store).to_pylist()}
    assert sorted(rows) == sorted(
        ["clip.avi", "clip.mkv", "clip.mov", "clip.webm", "music.mp4", "quiet.mp4", "x.mkv"]
    )
    refused = rows.pop("x.mkv")
    assert refused["status"] == "failed"
    assert refused["error"] == (
        "cannot decode: the container is not a Matroska/WebM file (EBML header parsing failed)"
    )
    for name, row in rows.items():
        assert row["status"] == "ok", (name, row["error"])
        assert row["num_frames"] >= 50, name
        speech = name.startswith("clip.")
        assert row["little_speech"] is (not speech), (name, row["speech_fraction"])
        assert (row["speech_fraction"] > 0.5) if speech else (row["speech_fraction"] < 0.1)


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("mp4_named.avi", "an AVI (mov,mp4,m4a,3gp,3g2,mj2)"),
        ("mkv_named.mov", "an mp4 (matroska,webm)"),
        ("hls_named.mkv", "a Matroska/WebM file (hls)"),
    ],
)
def test_the_name_and_the_demuxer_must_agree(
    name: str, expected: str, source: Path, tmp_path: Path
) -> None:
    """Both decoders refuse a file whose content is another container than its name says."""
    path = tmp_path / name
    if name.startswith("mp4"):
        shutil.copy(source, path)
    elif name.startswith("mkv"):
        _ffmpeg("-i", f"file:{source}", "-c", "copy", "-f", "matroska", f"file:{path}")
    else:
        path.write_text(f"#EXTM3U\n#EXT-X-TARGETDURATION:10\n#EXTINF:10,\n{source}\n")
    for decoder in ("pyav", "ffmpeg"):
        with pytest.raises(
            ClipError, match=f"^cannot decode: the container is not {re.escape(expected)}$"
        ):
            preprocess_clip(path, Recipe(decoder=decoder))


def test_a_tree_of_unsupported_files_is_named(tmp_path: Path) -> None:
    folder = tmp_path / FOLDER
    folder.mkdir(parents=True)
    for name in ("a.flv", "b.WMV", "c.ts", "d.mpg", "notes.txt", "labels.json"):
        (folder / name).write_bytes(b"x")
    scan = scan_dataset(tmp_path)
    assert scan.clips == [] and scan.unlisted == [] and scan.refused == []
    assert [row.split(": ")[0] for row in scan.unsupported] == [
        f"{FOLDER}/{name}" for name in ("a.flv", "b.WMV", "c.ts", "d.mpg")
    ]
    assert _unsupported_note(scan) == (
        f": 4 files in an unsupported container ({FOLDER}/a.flv, {FOLDER}/b.WMV, "
        f"{FOLDER}/c.ts and 1 more); accepted: .avi .m4v .mkv .mov .mp4 .webm"
    )
    with pytest.raises(ClipError, match=r"unsupported container \(\.flv\); accepted: "):
        preprocess_clip(folder / "a.flv", Recipe())
