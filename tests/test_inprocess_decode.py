"""The in-process decode (PyAV) against the ffmpeg process it stands in for, on real clips.

Video must match pixel for pixel; audio comes from another build of FFmpeg's AAC
decoder, whose float output differs in the last bits, so after rounding to 16 bits a
sample may differ by one step (on well under 0.1 % of samples). Whatever the
in-process path does not take goes to the process and fails with the same reason.
"""

from __future__ import annotations

import json
import resource
import subprocess
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest
from media_fixtures import delay_stream, face_frames, flash_beep_clip, make_clip, make_rotated_clip

import schemas
from pipeline import media
from pipeline.clip.transform import preprocess_clip
from pipeline.errors import ClipError
from schemas.recipe import Recipe

RECIPE = Recipe()


@pytest.fixture(scope="module")
def clips(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("inprocess")


@pytest.fixture(scope="module")
def clip(clips: Path) -> Path:
    return make_clip(clips / "plain.mp4")


def _children() -> tuple[float, int]:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime, usage.ru_minflt


def test_a_normal_clip_starts_no_process(clip: Path) -> None:
    preprocess_clip(clip, RECIPE, in_process=True)  # imports and the detector, once
    before = _children()
    tensors = preprocess_clip(clip, RECIPE, in_process=True)
    assert _children() == before  # no child process ran (each one faults pages)
    assert tensors.face.shape == (50, 112, 112, 3)
    assert "processes" not in tensors.cpu_seconds
    before = _children()
    preprocess_clip(clip, RECIPE, in_process=False)  # the process: the measure sees it
    assert _children() != before


def _assert_same_decode(path: Path, max_seconds: float = 60.0) -> None:
    process = media.decode_any(path, 25, 16000, max_seconds)
    inside = media.decode_in_process(path, 25, 16000, max_seconds)
    assert inside is not None, f"{path.name} should decode in-process"
    assert (inside.decoder, process.decoder) == ("pyav", "ffmpeg")
    assert np.array_equal(inside.frames, process.frames)
    assert inside.samples.shape == process.samples.shape
    steps = np.abs(inside.samples.astype(np.int32) - process.samples)
    assert steps.max() <= 1 and (steps > 0).mean() < 1e-3
    assert inside.report == process.report
    assert inside.video_start_s == process.video_start_s
    assert inside.audio_start_s == process.audio_start_s


@pytest.mark.parametrize(
    "variant", ["plain", "stereo_44k", "30fps", "audio_late", "video_late", "cut"]
)
def test_in_process_decode_matches_the_process(clips: Path, clip: Path, variant: str) -> None:
    if variant == "plain":
        _assert_same_decode(clip)
    elif variant == "stereo_44k":
        _assert_same_decode(make_clip(clips / "st.mp4", sample_rate=44100, channels=2))
    elif variant == "30fps":
        _assert_same_decode(flash_beep_clip(clips / "30fps.mp4", fps=30))
    elif variant == "cut":
        _assert_same_decode(clip, max_seconds=1.0)
    else:
        stream = "a" if variant == "audio_late" else "v"
        _assert_same_decode(delay_stream(clip, clips / f"{variant}.mp4", stream))


def test_crops_and_features_match_the_process_path(clip: Path) -> None:
    inside = preprocess_clip(clip, RECIPE, in_process=True)
    process = preprocess_clip(clip, RECIPE, in_process=False)
    assert np.array_equal(inside.face, process.face)
    assert np.array_equal(inside.face_boxes, process.face_boxes)  # type: ignore[arg-type]
    assert inside.face_detection_rate == process.face_detection_rate
    # One 16-bit step moves a log energy of a quiet hop the most; the bulk is identical.
    diff = np.abs(inside.audio - process.audio)
    assert np.median(diff) < 1e-4 and diff.max() < 1.0
    for name in ("source_fps", "source_duration_s", "source_width", "source_height",
                 "audio_offset_s", "audio_coverage", "cut", "trimmed_frames"):  # fmt: skip
        assert getattr(inside, name) == getattr(process, name), name


def _reason(path: Path, in_process: bool) -> str:
    with pytest.raises(ClipError) as caught:
        preprocess_clip(path, RECIPE, in_process=in_process)
    return str(caught.value)


def test_what_it_does_not_take_goes_to_the_process(clips: Path, clip: Path) -> None:
    rotated = make_rotated_clip(clips / "rot.mp4", np.zeros((50, 224, 224, 3), np.uint8),
                                clips / "rot_scratch.mp4")  # fmt: skip
    playlist = clips / "playlist.mp4"
    playlist.write_text("#EXTM3U\n#EXTINF:1,\nfile:/etc/hostname\n#EXT-X-ENDLIST\n")
    silent = make_clip(clips / "silent.mp4", audio=False)
    # A variable frame rate: the two FFmpeg builds' fps filters can end it a frame apart.
    vfr = flash_beep_clip(clips / "vfr.mp4", vfr=True)
    for path in (rotated, playlist, silent, vfr):
        assert media.decode_in_process(path, 25, 16000, 60) is None, path.name
    for path in (playlist, silent, rotated):
        assert _reason(path, True) == _reason(path, False)
    truncated = clips / "truncated.mp4"
    truncated.write_bytes(clip.read_bytes()[: clip.stat().st_size // 2])
    assert _reason(truncated, True) == _reason(truncated, False)


def test_a_decode_past_its_deadline_goes_to_the_process(clip: Path) -> None:
    assert media.decode_in_process(clip, 25, 16000, 60, timeout_s=0.0) is None
    assert media.decode_in_process(clip, 25, 16000, 60, timeout_s=60.0) is not None


def test_files_above_the_in_process_bounds_go_to_the_process(
    clip: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from pipeline.media import inprocess

    monkeypatch.setattr(inprocess, "MAX_FILE_BYTES", clip.stat().st_size - 1)
    assert media.decode_in_process(clip, 25, 16000, 60) is None
    monkeypatch.undo()
    monkeypatch.setattr(inprocess, "MAX_PIXELS", 224 * 224 - 1)
    assert media.decode_in_process(clip, 25, 16000, 60) is None


def _ffmpeg(*args: str) -> None:
    subprocess.run(["ffmpeg", "-nostdin", "-v", "error", "-y", *args], check=True, timeout=60)


def _video_stream(path: Path) -> dict[str, str]:
    out = subprocess.run(
        ["ffprobe", "-v", "error", "-of", "json", "-select_streams", "v:0", "-show_entries",
         "stream=nb_frames,avg_frame_rate,r_frame_rate", str(path)],
        check=True, capture_output=True, timeout=60,
    )  # fmt: skip
    stream: dict[str, str] = json.loads(out.stdout)["streams"][0]
    return stream


def _held_last_frame(clips: Path, name: str, keyframe_last: bool) -> Path:
    """109 face frames at 25 fps with B-frames, the last packet held 2.77 steps (the
    track ends at 4.43 s): ffprobe's average rate is 24.6 with 25 nominal. The stream
    copy sets the last packet's duration; the muxer writes it as the last sample's.
    ``keyframe_last`` makes the last shown frame the last packet (a keyframe);
    otherwise the last packet is a B-frame shown before it."""
    extra = ["-bf", "2"] + (["-force_key_frames", "expr:eq(n,108)"] if keyframe_last else [])
    base = make_clip(clips / f"{name}_base.mp4", face_frames(109), extra=extra)
    path = clips / f"{name}.mp4"
    hold = "setts=pts=PTS:dts=DTS:duration='if(eq(N,108),DURATION*2.77,DURATION)'"
    _ffmpeg("-i", f"file:{base}", "-c", "copy", "-bsf:v", hold, f"file:{path}")
    stream = _video_stream(path)
    assert stream["nb_frames"] == "109" and stream["r_frame_rate"] == "25/1"
    assert round(float(Fraction(stream["avg_frame_rate"])), 2) == 24.6
    return path


def _process_held(path: Path) -> media.DecodedClip:
    """The process's decode ended where the video track ends, as the ingest does."""
    process = media.decode_any(path, 25, 16000, 60)
    end_s = media.video_end_s(path)
    assert media.may_hold(process, 25, 60) and end_s is not None
    return media.with_held_frames(process, end_s, 25, 60)


def test_a_held_last_frame_gives_the_same_frames_on_both_paths(clips: Path) -> None:
    path = _held_last_frame(clips, "held", keyframe_last=True)
    # The presentation timeline shows frame 108 from 4.32 s to 4.43 s: resampled at
    # 25 fps that is round(4.43 * 25) = 111 frames, the last three alike.
    inside = media.decode_in_process(path, 25, 16000, 60)
    assert inside is not None and len(inside.frames) == 111
    assert (inside.frames[-3:] == inside.frames[-1]).all()
    held = _process_held(path)
    assert np.array_equal(held.frames, inside.frames)
    assert held.samples.shape == inside.samples.shape
    stored = [preprocess_clip(path, RECIPE, in_process=flag) for flag in (True, False)]
    assert len(stored[0].face) == len(stored[1].face) == 111
    assert np.array_equal(stored[0].face, stored[1].face)
    assert stored[0].audio.shape == stored[1].audio.shape
    assert np.array_equal(stored[0].face_boxes, stored[1].face_boxes)  # type: ignore[arg-type]
    assert [tensors.decoded_by for tensors in stored] == ["pyav", "ffmpeg"]


def test_a_hold_that_ends_elsewhere_in_process_goes_to_the_process(clips: Path) -> None:
    # The held packet is a B-frame: PyAV's FFmpeg ends the video one step after the
    # last shown frame (109), the track at 4.39 s (110): the process decides, 110.
    path = _held_last_frame(clips, "held_b", keyframe_last=False)
    assert media.decode_in_process(path, 25, 16000, 60) is None
    assert len(_process_held(path).frames) == 110


def _flac(src: Path, dst: Path, rate: int, sample_format: str) -> Path:
    """``src`` with its audio as FLAC in the mp4 at ``rate`` Hz from ``sample_format``
    samples (``s16``, or ``s32``: 24-bit FLAC)."""
    _ffmpeg("-i", f"file:{src}", "-c:v", "copy", "-af", f"aresample={rate}",
            "-sample_fmt", sample_format, "-c:a", "flac", "-strict", "-2", f"file:{dst}")  # fmt: skip
    return dst


def test_sixteen_bit_audio_to_resample_goes_to_the_process(clips: Path, clip: Path) -> None:
    # The process's FFmpeg 5.1 resamples 16-bit samples in integers, PyAV's 8.0 in
    # floats: up to 3 steps apart on 10-20 % of the samples, MFCCs moved in most rows.
    s16 = _flac(clip, clips / "flac_s16_48k.mp4", 48000, "s16")
    assert media.decode_in_process(s16, 25, 16000, 60) is None
    inside = preprocess_clip(s16, RECIPE, in_process=True)
    process = preprocess_clip(s16, RECIPE, in_process=False)
    assert np.array_equal(inside.audio, process.audio)
    assert inside.decoded_by == "ffmpeg"  # the manifest's decoded_by says who decoded it
    # No rate change, or 24-bit samples (resampled in floats by both): decoded here, exactly.
    for name, rate, sample_format in (("s16_16k", 16000, "s16"), ("s32_48k", 48000, "s32")):
        flac = _flac(clip, clips / f"flac_{name}.mp4", rate, sample_format)
        _assert_same_decode(flac)
        inside_pcm = media.decode_in_process(flac, 25, 16000, 60)
        assert inside_pcm is not None
        assert np.array_equal(inside_pcm.samples, media.decode_any(flac, 25, 16000, 60).samples)


def test_the_manifest_names_the_decoder_of_each_clip(ingested_store: Path) -> None:
    rows = schemas.read_manifest(ingested_store).to_pylist()
    decoders = {r["decoded_by"] for r in rows if r["status"] == schemas.STATUS_OK}
    assert "pyav" in decoders and decoders <= {"pyav", "ffmpeg"}  # the recipe's default
    assert all(r["decoded_by"] is None for r in rows if r["status"] != schemas.STATUS_OK)


def test_the_manifest_records_the_decoded_size_and_scale(ingested_store: Path) -> None:
    rows = schemas.read_manifest(ingested_store).to_pylist()
    ok = [r for r in rows if r["status"] == schemas.STATUS_OK]
    assert ok and all(r["decode_scale"] == 1.0 for r in ok)  # synthetic clips: 224² or less
    for row in ok:
        assert (row["decoded_width"], row["decoded_height"]) == (
            row["source_width"],
            row["source_height"],
        )
    failed = [r for r in rows if r["status"] != schemas.STATUS_OK]
    assert all(r["decoded_width"] is None and r["decode_scale"] is None for r in failed)
