"""Audio and video on the player's timeline, through ``preprocess_clip`` (real decode).

Each source has a white flash at 1.2 s and a 40 ms beep at the same instant. Remuxed
with one stream 0.2 s late (``-itsoffset``), a player shows the flash and plays the
beep 0.2 s (5 frames at 25 fps) apart; the stored tensors must put them exactly where
the player does: the flash in frame ``round(25 * t_flash)`` of the video, the beep's
energy peak in the same row of the audio features as the frame a player shows with it.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import numpy as np
import pytest
from media_fixtures import delay_stream, flash_beep_clip

from pipeline.clip.transform import preprocess_clip
from pipeline.errors import ClipError
from schemas.recipe import Recipe

AT_S = 1.2  # flash and beep, in the source
DELAY_S = 0.2
FPS = 25  # the recipe's rate


@pytest.fixture(scope="module")
def sources(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """25 fps, 30 fps and variable-rate sources, each as made and with a stream delayed."""
    out = tmp_path_factory.mktemp("av")
    made = {
        "25fps": flash_beep_clip(out / "25fps.mp4", fps=25),
        "30fps": flash_beep_clip(out / "30fps.mp4", fps=30),
        "vfr": flash_beep_clip(out / "vfr.mp4", fps=25, vfr=True),
    }
    clips = dict(made)
    for name, path in made.items():
        for stream in ("a", "v"):
            clips[f"{name}-{stream}"] = delay_stream(path, out / f"{name}-{stream}.mp4", stream)
    return clips


def _flash_frame(video: np.ndarray) -> int:
    """First frame whose crop is far brighter than the clip's typical frame."""
    brightness = video.reshape(len(video), -1).mean(axis=1)
    return int(np.flatnonzero(brightness > np.median(brightness) + 60)[0])


def _beep_row(audio: np.ndarray) -> int:
    """Row of the loudest 10 ms hop: c0 (log frame energy) of the four stacked hops."""
    return int(np.argmax(audio[:, [0, 26, 52, 78]].max(axis=1)))


@pytest.mark.parametrize("source", ["25fps", "30fps", "vfr"])
@pytest.mark.parametrize(
    ("delayed", "video_delay", "audio_delay"),
    [("", 0.0, 0.0), ("a", 0.0, DELAY_S), ("v", DELAY_S, 0.0)],
)
def test_flash_and_beep_are_where_a_player_shows_them(
    sources: dict[str, Path], source: str, delayed: str, video_delay: float, audio_delay: float
) -> None:
    clip = preprocess_clip(sources[f"{source}-{delayed}" if delayed else source], Recipe())
    flash, beep = _flash_frame(clip.face), _beep_row(clip.audio)
    assert flash == round(FPS * (AT_S + video_delay))
    assert abs(beep - round(FPS * (AT_S + audio_delay))) <= 1, (flash, beep)
    assert len(clip.face) == len(clip.audio)
    # As found: the audio stream of a copied AAC track starts with its 64 ms of priming.
    expected_offset = {"": 0.0, "a": DELAY_S - 0.064, "v": -DELAY_S}[delayed]
    assert clip.audio_offset_s == pytest.approx(expected_offset, abs=0.005)
    assert 0.9 < clip.audio_coverage <= 1.0


def _reencode(src: Path, dst: Path, *args: str) -> Path:
    subprocess.run(
        ["ffmpeg", "-nostdin", "-v", "error", "-y", "-i", f"file:{src.absolute()}", *args,
         f"file:{dst.absolute()}"],
        check=True, timeout=60,
    )  # fmt: skip
    return dst


def test_audio_that_covers_a_third_of_the_video_fails(
    sources: dict[str, Path], tmp_path: Path
) -> None:
    short = _reencode(sources["25fps"], tmp_path / "short_audio.mp4", "-c:v", "copy",
                      "-af", "atrim=end=1", "-c:a", "aac")  # fmt: skip
    with pytest.raises(ClipError, match=r"audio covers 3\d% .*audio 1\.0\d s, video 3\.00 s"):
        preprocess_clip(short, Recipe())
    # the threshold is a setting: a clip that only has to be one third covered is stored
    assert preprocess_clip(short, Recipe(), min_audio_coverage=0.3).audio_coverage < 0.4


def test_video_that_ends_long_before_the_audio_fails(
    sources: dict[str, Path], tmp_path: Path
) -> None:
    short = _reencode(sources["25fps"], tmp_path / "short_video.mp4", "-vf", "trim=end=1",
                      "-c:v", "libx264", "-preset", "ultrafast", "-c:a", "copy")  # fmt: skip
    with pytest.raises(ClipError, match=r"video ends long before the audio.*audio 3\.\d\d s, "
                       r"video 1\.00 s"):  # fmt: skip
        preprocess_clip(short, Recipe())
