"""ffprobe / ffmpeg decoding through pipes, on small real clips."""

from __future__ import annotations

import math
import time
from pathlib import Path

import numpy as np
import pytest
from media_fixtures import face_frames, make_clip, make_rotated_clip

from benchmarks.naive_reference import decode_audio, decode_video
from pipeline import media
from pipeline.errors import ClipError
from pipeline.media.ffmpeg_log import last_stderr_line, parse_input_report
from pipeline.media.ffprobe import parse_probe


@pytest.fixture(scope="module")
def clip(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_clip(tmp_path_factory.mktemp("media") / "clip.mp4")


def test_probe_reports_streams_rate_size_and_duration(clip: Path) -> None:
    info = media.probe(clip)
    assert info.has_video and info.has_audio
    assert (info.width, info.height, info.rotation) == (224, 224, 0)
    assert info.fps == pytest.approx(25.0)
    assert info.duration_s == pytest.approx(2.0, abs=0.05)
    assert info.audio_sample_rate == 16000 and info.audio_channels == 1


def test_decode_clip_gives_rgb_frames_and_mono_pcm(clip: Path) -> None:
    seen: list[int] = []
    decoded = media.decode_clip(
        clip, (224, 224), 25, 16000, 60, 60, on_frame=lambda t, f: seen.append(t)
    )
    assert decoded.frames.shape == (50, 224, 224, 3) and decoded.frames.dtype == np.uint8
    assert seen == list(range(50))
    # H.264 is lossy, but the frames must be the pictures that went in, in RGB order.
    diff = np.abs(decoded.frames.astype(int) - face_frames(50).astype(int)).mean()
    assert diff < 6
    assert decoded.samples.dtype == np.int16
    assert abs(len(decoded.samples) - 32000) <= 1024
    assert np.abs(decoded.samples).max() > 1000  # the speech is there


def test_decode_any_needs_no_probe_and_matches_the_sized_decode(clip: Path) -> None:
    seen: list[int] = []
    decoded = media.decode_any(clip, 25, 16000, 60, on_frame=lambda t, f: seen.append(t))
    sized = media.decode_clip(clip, (224, 224), 25, 16000, 60, 60)
    assert decoded.returncode == 0 and decoded.error_lines == 0 and decoded.stopped == ""
    assert seen == list(range(50))
    np.testing.assert_array_equal(decoded.frames, sized.frames)
    np.testing.assert_array_equal(decoded.samples, sized.samples)
    info = media.probe(clip)
    assert decoded.report.fps == pytest.approx(info.fps, abs=0.01)
    assert decoded.report.duration_s == pytest.approx(info.duration_s, abs=0.05)


def test_decode_any_reports_missing_streams_and_errors(tmp_path: Path, clip: Path) -> None:
    silent = media.decode_any(make_clip(tmp_path / "mute.mp4", face_frames(5), audio=False),
                              25, 16000, 60)  # fmt: skip
    assert silent.returncode != 0 and silent.error_lines >= 1 and silent.samples.size == 0
    junk = tmp_path / "junk.mp4"
    junk.write_text("not a video\n" * 50)
    bad = media.decode_any(junk, 25, 16000, 60)
    assert bad.returncode != 0 and bad.stderr_line.startswith("Invalid data found")
    assert not bad.report.complete


def test_decode_any_can_stream_its_frames_without_keeping_them(clip: Path) -> None:
    seen: list[np.ndarray] = []
    kept = media.decode_any(clip, 25, 16000, 60)
    streamed = media.decode_any(clip, 25, 16000, 60, on_frame=lambda t, f: seen.append(f),
                                keep_frames=False)  # fmt: skip
    assert len(streamed.frames) == 0 and streamed.num_frames == kept.num_frames == 50
    assert streamed.frame_size == (224, 224) and streamed.source_size == (224, 224)
    np.testing.assert_array_equal(np.stack(seen), kept.frames)
    assert streamed.last_frame is not None
    np.testing.assert_array_equal(streamed.last_frame, kept.frames[-1])


def test_parse_input_report_reads_the_input_section_only() -> None:
    lines = [
        "Input #0, mov,mp4,m4a,3gp,3g2,mj2, from 'file:/x.mp4':",
        "  Duration: 00:01:02.56, start: 0.000000, bitrate: 234 kb/s",
        "  Stream #0:0[0x1](und): Video: mjpeg, yuvj420p, 600x600, 90k tbr, 90k tbn (attached pic)",
        "  Stream #0:1[0x2](und): Video: h264 (High), yuv420p, 224x224, 158 kb/s, 29.97 fps,"
        " 29.97 tbr, 30k tbn (default)",
        "Output #0, image2pipe, to 'pipe:1':",
        "  Stream #0:0(und): Video: ppm, rgb24, 224x224, q=2-31, 200 kb/s, 25 fps, 25 tbn",
    ]
    report = parse_input_report(lines)
    assert report.duration_s == pytest.approx(62.56) and report.fps == pytest.approx(29.97)
    no_avg = ["Input #0, matroska:", "  Duration: N/A, start: 0.0",
              "  Stream #0:0: Video: vp9, yuv420p, 640x360, 30 tbr, 1k tbn"]  # fmt: skip
    report = parse_input_report(no_avg)
    assert report.fps == 30.0 and math.isnan(report.duration_s) and not report.complete


def test_decode_audio_alone_matches_the_combined_decode(clip: Path) -> None:
    samples = decode_audio(clip, 16000, 60, 60)
    combined = media.decode_clip(clip, (224, 224), 25, 16000, 60, 60).samples
    np.testing.assert_array_equal(samples, combined)


def test_max_seconds_cuts_both_streams(clip: Path) -> None:
    decoded = media.decode_clip(clip, (224, 224), 25, 16000, 1.0, 60)
    assert len(decoded.frames) == 25
    assert abs(len(decoded.samples) - 16000) <= 160


def test_other_rates_and_stereo_are_resampled(tmp_path: Path) -> None:
    path = make_clip(tmp_path / "30fps.mp4", face_frames(60), fps=30, sample_rate=48000,
                     channels=2)  # fmt: skip
    info = media.probe(path)
    assert info.fps == pytest.approx(30.0) and info.audio_sample_rate == 48000
    assert info.audio_channels == 2
    decoded = media.decode_clip(path, (224, 224), 25, 16000, 60, 60)
    assert abs(len(decoded.frames) - 50) <= 1  # 2 s at 25 fps
    assert abs(len(decoded.samples) - 32000) <= 1024


def test_variable_frame_rate_is_resampled(tmp_path: Path) -> None:
    # 20 frames at 25 fps, then every third: the timestamps are irregular.
    vfr = ["-vf", "select='lt(n\\,20)+not(mod(n\\,3))'", "-fps_mode", "vfr"]
    path = make_clip(tmp_path / "vfr.mp4", extra=vfr)
    info = media.probe(path)
    assert info.fps < 24  # ffprobe's average rate shows the dropped frames
    decoded = media.decode_clip(path, (224, 224), 25, 16000, 60, 60)
    assert abs(len(decoded.frames) - round(info.duration_s * 25)) <= 2


def test_rotated_clip_is_decoded_upright(tmp_path: Path) -> None:
    frames = face_frames(10)
    upright = np.concatenate([frames, frames[:, :32]], axis=1)  # 256 high, 224 wide
    path = make_rotated_clip(tmp_path / "rotated.mp4", upright, tmp_path / "sideways.mp4")
    info = media.probe(path)
    assert info.rotation in (90, 270)
    assert (info.width, info.height) == (224, 256)  # as displayed, not as stored
    decoded = media.decode_clip(path, (info.width, info.height), 25, 16000, 60, 60)
    assert decoded.frames.shape == (10, 256, 224, 3)
    assert np.abs(decoded.frames.astype(int) - upright.astype(int)).mean() < 6


def test_odd_frame_size(tmp_path: Path) -> None:
    frames = np.ascontiguousarray(face_frames(5)[:, 20:191, :223])  # 223 x 171
    path = make_clip(tmp_path / "odd.mp4", frames, extra=["-pix_fmt", "yuv444p"])
    info = media.probe(path)
    assert (info.width, info.height) == (223, 171)
    assert decode_video(path, (223, 171), 25, 60, 60).shape == (5, 171, 223, 3)


@pytest.mark.parametrize("name", ["-i.mp4", "with space (1).mp4", "ünï 名前.mp4", "a:b.mp4"])
def test_file_names_are_never_options_or_protocols(tmp_path: Path, name: str) -> None:
    path = make_clip(tmp_path / name, face_frames(3))
    assert media.probe(path).has_video
    assert len(decode_video(path, (224, 224), 25, 60, 60)) == 3


def test_unreadable_files_give_ffmpeg_reason(tmp_path: Path) -> None:
    junk = tmp_path / "junk.mp4"
    junk.write_text("not a video\n" * 50)
    # The mp4 demuxer is the only one allowed: it is what reads (and refuses) the junk.
    with pytest.raises(ClipError, match="^cannot decode: the container is not an mp4 \\(moov"):
        media.probe(junk)


def test_decode_timeout_kills_ffmpeg(clip: Path) -> None:
    start = time.perf_counter()
    with pytest.raises(ClipError, match="timed out"):
        media.decode_clip(clip, (224, 224), 25, 16000, 60, timeout_s=0.01)
    assert time.perf_counter() - start < 10


def test_last_stderr_line_drops_component_prefix_and_path() -> None:
    err = b"noise\n[mov,mp4,m4a @ 0x55ea6f07c980] stream 0, offset 0x5d74: partial file\n\n"
    assert last_stderr_line(err) == "stream 0, offset 0x5d74: partial file"
    err = b"file:/data/x.mp4: Invalid data found when processing input\n"
    assert last_stderr_line(err) == "Invalid data found when processing input"
    assert last_stderr_line(b"") == "no error message"


def test_decode_size_is_the_displayed_size_up_to_1080p_pixels() -> None:
    assert media.decode_size(224, 224) == (224, 224)
    assert media.decode_size(1920, 1080) == (1920, 1080)
    assert media.decode_size(3840, 2160) == (1920, 1080)  # the same for any duration


def test_parse_probe_reads_rotation_sar_and_skips_cover_art() -> None:
    data = {
        "streams": [
            {"codec_type": "video", "disposition": {"attached_pic": 1}, "width": 600,
             "height": 600},
            {"codec_type": "video", "width": 320, "height": 240, "sample_aspect_ratio": "4:3",
             "avg_frame_rate": "0/0", "r_frame_rate": "30000/1001", "duration": "3.5",
             "side_data_list": [{"side_data_type": "Display Matrix", "rotation": -90}]},
            {"codec_type": "audio", "sample_rate": "44100", "channels": 2},
        ],
        "format": {"duration": "4.0"},
    }  # fmt: skip
    info = parse_probe(data)
    assert (info.width, info.height, info.rotation) == (240, 427, 90)
    assert info.fps == pytest.approx(29.97, abs=0.01) and info.duration_s == 3.5
    assert (info.audio_sample_rate, info.audio_channels) == (44100, 2)
    assert not parse_probe({"streams": [], "format": {}}).has_video
