"""Only mp4 files are decoded: playlists, scripts and other containers named ``.mp4`` are
failed clips, and nothing they name outside the dataset root is ever opened.

A FIFO outside the root stands for the outside file: a helper thread opens it for
writing, which returns only once some process opens it for reading, so the test
knows whether ffmpeg or ffprobe touched it, without ever blocking on it.
"""

from __future__ import annotations

import os
import subprocess
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from media_fixtures import face_frames, make_clip, truncate

from benchmarks.naive_reference import decode_audio, decode_video
from pipeline import media
from pipeline.clip.transform import preprocess_clip
from pipeline.errors import ClipError
from schemas.recipe import Recipe


class OpenWatch:
    """A FIFO that records whether any process opened it for reading."""

    def __init__(self, path: Path) -> None:
        os.mkfifo(path)
        self.path = path
        self.opened = threading.Event()
        self._done = False
        self._thread = threading.Thread(target=self._wait, daemon=True)
        self._thread.start()

    def _wait(self) -> None:
        fd = os.open(self.path, os.O_WRONLY)  # blocks until a reader opens the FIFO
        if not self._done:
            self.opened.set()
        os.close(fd)  # the reader sees end of file at once

    def close(self) -> None:
        """Release the waiting thread by opening the FIFO for reading ourselves."""
        self._done = True
        fd = os.open(self.path, os.O_RDONLY | os.O_NONBLOCK)
        self._thread.join(timeout=10)
        os.close(fd)


@pytest.fixture
def outside(tmp_path: Path) -> Iterator[OpenWatch]:
    (tmp_path / "elsewhere").mkdir()
    watch = OpenWatch(tmp_path / "elsewhere" / "secret.mp4")
    yield watch
    watch.close()


def _playlists(target: Path) -> dict[str, str]:
    return {
        "hls": f"#EXTM3U\n#EXT-X-TARGETDURATION:10\n#EXTINF:10,\n{target}\n#EXT-X-ENDLIST\n",
        "concat": f"file '{target}'\n",
        "ffconcat": f"ffconcat version 1.0\nfile '{target}'\n",
    }


@pytest.mark.timeout(120)
@pytest.mark.parametrize("kind", ["hls", "concat", "ffconcat"])
def test_playlist_named_mp4_fails_and_never_opens_the_outside_file(
    kind: str, tmp_path: Path, outside: OpenWatch
) -> None:
    root = tmp_path / "root"
    root.mkdir()
    innocent = root / "innocent.mp4"
    innocent.write_text(_playlists(outside.path)[kind])
    with pytest.raises(ClipError, match="the container is not an mp4"):
        preprocess_clip(innocent, Recipe())
    with pytest.raises(ClipError, match="the container is not an mp4"):
        media.probe(innocent)
    for decode in (
        lambda: decode_audio(innocent, 16000, 60, 30),
        lambda: decode_video(innocent, (224, 224), 25, 60, 30),
    ):
        with pytest.raises(ClipError, match="the container is not an mp4"):
            decode()
    assert not outside.opened.is_set(), "ffmpeg opened a file outside the root"


@pytest.fixture(scope="module")
def clip(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_clip(tmp_path_factory.mktemp("containers") / "clip.mp4", face_frames(25))


@pytest.mark.parametrize(("fmt", "codecs"), [
    ("matroska", ["-c", "copy"]),
    ("webm", ["-c:v", "libvpx", "-deadline", "realtime", "-c:a", "libopus"]),
])  # fmt: skip
def test_mkv_and_webm_renamed_mp4_are_refused(
    fmt: str, codecs: list[str], clip: Path, tmp_path: Path
) -> None:
    renamed = tmp_path / f"{fmt}.mp4"
    subprocess.run(
        ["ffmpeg", "-nostdin", "-v", "error", "-y", "-i", f"file:{clip}", *codecs, "-f", fmt,
         f"file:{renamed}"],
        check=True, timeout=60,
    )  # fmt: skip
    with pytest.raises(ClipError, match=r"the container is not an mp4 \(matroska,webm\)"):
        preprocess_clip(renamed, Recipe())


@pytest.fixture(scope="module")
def faststart(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An 84-frame clip with its index first, as web video is: a cut keeps it decodable."""
    out = tmp_path_factory.mktemp("faststart")
    plain = make_clip(out / "plain.mp4", face_frames(84))
    fast = out / "fast.mp4"
    subprocess.run(
        ["ffmpeg", "-nostdin", "-v", "error", "-y", "-i", f"file:{plain}", "-c", "copy",
         "-movflags", "+faststart", f"file:{fast}"],
        check=True, timeout=60,
    )  # fmt: skip
    return fast


@pytest.mark.parametrize("fraction", [0.93, 0.97])
def test_truncated_file_fails_whatever_the_frame_count(
    fraction: float, faststart: Path, tmp_path: Path
) -> None:
    cut = truncate(faststart, tmp_path / "cut.mp4", fraction)
    with pytest.raises(ClipError, match=r"cannot decode: truncated or damaged file .*partial file"):
        preprocess_clip(cut, Recipe())
    assert len(preprocess_clip(faststart, Recipe()).face) == 84  # the whole file is fine
