"""The per-clip function end to end, on real clips: good ones and every kind of bad one."""

from __future__ import annotations

import importlib.util
import os
import subprocess
import tempfile
from pathlib import Path

import numpy as np
import pytest
from media_fixtures import face_frames, make_clip, make_rotated_clip, truncate
from python_speech_features import delta, mfcc

from benchmarks.naive_reference import decode_audio
from pipeline.clip.transform import ClipTensors, preprocess_clip
from pipeline.errors import ClipError
from pipeline.media.inprocess import decode_in_process
from schemas.recipe import Recipe

RECIPE = Recipe()


@pytest.fixture(scope="module")
def clips(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("clips")


@pytest.fixture(scope="module")
def clip(clips: Path) -> Path:
    return make_clip(clips / "speaker (1).mp4")


@pytest.fixture(scope="module")
def tensors(clip: Path) -> ClipTensors:
    return preprocess_clip(clip, RECIPE)


def test_shapes_types_and_facts(tensors: ClipTensors) -> None:
    assert tensors.face.shape == (50, 112, 112, 3) and tensors.face.dtype == np.uint8
    assert tensors.audio.shape == (50, 104) and tensors.audio.dtype == np.float32
    assert tensors.face.flags.c_contiguous and tensors.audio.flags.c_contiguous
    assert tensors.source_fps == pytest.approx(25.0)
    assert tensors.source_duration_s == pytest.approx(2.0, abs=0.05)
    assert (tensors.source_width, tensors.source_height) == (224, 224)
    assert tensors.face_detection_rate == 1.0
    assert tensors.trimmed_frames == 0 and not tensors.cut
    assert {"probe", "decode", "detect", "crop", "features"} <= set(tensors.timings)


def _decoded_audio(clip: Path, decoder: str) -> np.ndarray:
    """The 16 kHz mono samples of ``clip`` as ``decoder`` decodes them."""
    if decoder == "ffmpeg":
        return decode_audio(clip, 16000, 60, 60)
    decoded = decode_in_process(clip, 25.0, 16000, 60.0)
    assert decoded is not None  # a clean clip: the in-process path takes it
    return decoded.samples


@pytest.mark.parametrize("decoder", ["pyav", "ffmpeg"])
def test_mfcc_features_are_python_speech_features_of_the_audio(
    clip: Path, tensors: ClipTensors, decoder: str
) -> None:
    if decoder != RECIPE.decoder:
        tensors = preprocess_clip(clip, Recipe(decoder=decoder))
    signal = _decoded_audio(clip, decoder).astype(np.float64)
    cep = mfcc(signal, 16000, winlen=0.025, winstep=0.01, numcep=13, nfilt=26, nfft=512,
               appendEnergy=True)  # fmt: skip
    hops = np.concatenate([cep, delta(cep, 2)], axis=1)
    rows = tensors.audio.reshape(-1, 26)  # row t holds hops 4t .. 4t+3
    # AAC pads the audio to whole 1024-sample frames, so it runs a little past the video:
    # the hops beyond 4·T are dropped.
    assert len(hops) > 200 and len(rows) == 200
    np.testing.assert_allclose(rows, hops[:200], rtol=1e-4, atol=1e-3)


def test_fbank_recipe(clip: Path) -> None:
    out = preprocess_clip(clip, Recipe(features="fbank", crop_size=64, face_stride=10))
    assert out.face.shape == (50, 64, 64, 3) and out.audio.shape == (50, 104)
    assert np.isfinite(out.audio).all()


def test_the_crop_is_a_face_that_stays_centred(tensors: ClipTensors) -> None:
    import dlib

    detector = dlib.get_frontal_face_detector()
    for crop in tensors.face[::10]:
        (rect,) = detector(crop, 1)
        assert abs((rect.left() + rect.right()) / 2 - 56) < 10
        assert abs((rect.top() + rect.bottom()) / 2 - 56) < 10


def test_no_file_is_left_behind(clips: Path, clip: Path) -> None:
    before_dir, before_tmp = sorted(os.listdir(clips)), sorted(os.listdir(tempfile.gettempdir()))
    preprocess_clip(clip, Recipe(trim_silence=True))
    assert sorted(os.listdir(clips)) == before_dir
    assert sorted(os.listdir(tempfile.gettempdir())) == before_tmp


def test_leading_silence_is_trimmed_from_both_tensors(clips: Path, tensors: ClipTensors) -> None:
    recipe = Recipe(trim_silence=True)
    plain = preprocess_clip(clips / "speaker (1).mp4", recipe)
    late = preprocess_clip(make_clip(clips / "late.mp4", leading_silence_s=0.4), recipe)
    # flite starts with a short quiet breath of its own; the added 0.4 s is 10 more frames.
    assert 8 <= late.trimmed_frames - plain.trimmed_frames <= 12
    assert late.face.shape[0] == late.audio.shape[0] == 50 - late.trimmed_frames
    np.testing.assert_array_equal(plain.face, tensors.face[plain.trimmed_frames :])
    np.testing.assert_array_equal(plain.audio, tensors.audio[plain.trimmed_frames :])


def test_thirty_fps_and_48k_stereo_are_resampled(clips: Path) -> None:
    path = make_clip(clips / "30fps.mp4", face_frames(60), fps=30, sample_rate=48000, channels=2)
    out = preprocess_clip(path, RECIPE)
    assert out.source_fps == pytest.approx(30.0)
    assert abs(out.face.shape[0] - 50) <= 1 and out.audio.shape[0] == out.face.shape[0]
    assert out.face_detection_rate == 1.0


def test_variable_frame_rate(clips: Path) -> None:
    vfr = ["-vf", "select='lt(n\\,20)+not(mod(n\\,3))'", "-fps_mode", "vfr"]
    out = preprocess_clip(make_clip(clips / "vfr.mp4", extra=vfr), RECIPE)
    assert abs(out.face.shape[0] - round(out.source_duration_s * 25)) <= 2


def test_rotated_clip_is_upright(clips: Path) -> None:
    frames = face_frames(25)
    upright = np.concatenate([frames, frames[:, :32]], axis=1)  # 256 high, 224 wide
    path = make_rotated_clip(clips / "rotated.mp4", upright, clips / "sideways.mp4")
    out = preprocess_clip(path, RECIPE)
    # A sideways face is invisible to the frontal detector: a full rate means upright.
    assert out.face_detection_rate == 1.0
    assert (out.source_width, out.source_height) == (224, 256)


def test_odd_size_gives_square_crops(clips: Path) -> None:
    frames = np.ascontiguousarray(face_frames(25)[:, 20:191, :223])  # 223 x 171
    out = preprocess_clip(make_clip(clips / "odd.mp4", frames, extra=["-pix_fmt", "yuv444p"]),
                          RECIPE)  # fmt: skip
    assert (out.source_width, out.source_height) == (223, 171)
    assert out.face.shape == (25, 112, 112, 3)


@pytest.mark.parametrize("name", ["-leading-dash.mp4", "ünïcödé 名前 (2).mp4"])
def test_awkward_names(clips: Path, name: str) -> None:
    out = preprocess_clip(make_clip(clips / name, face_frames(10)), RECIPE)
    assert out.face.shape == (10, 112, 112, 3)


def test_long_clips_are_cut_at_max_seconds(clip: Path) -> None:
    out = preprocess_clip(clip, RECIPE, max_seconds=1.0)
    assert out.cut and out.face.shape[0] == out.audio.shape[0] == 25


def test_a_clean_clip_is_not_probed(tensors: ClipTensors) -> None:
    # ffmpeg's own banner gave rate and duration; ffprobe (a second process) never ran.
    assert tensors.timings["probe"] == 0.0


def test_audio_twice_as_long_as_the_video_is_probed_and_failed(clips: Path, tmp_path: Path) -> None:
    # The container's duration (the banner's) is the audio's 2 s, so the 1 s of video
    # looks truncated against it; ffprobe's video duration clears it, and the clip
    # fails only because half its audio has no video (a setting: 0.5 lets it through).
    video = make_clip(tmp_path / "v.mp4", face_frames(25), audio=False)
    audio = make_clip(tmp_path / "a.mp4", face_frames(50), video=False)
    path = clips / "long audio.mp4"
    subprocess.run(
        ["ffmpeg", "-nostdin", "-v", "error", "-y", "-i", f"file:{video}", "-i", f"file:{audio}",
         "-map", "0:v", "-map", "1:a", "-c", "copy", f"file:{path}"],
        check=True, timeout=60,
    )  # fmt: skip
    with pytest.raises(ClipError, match=r"video ends long before the audio: it covers 4\d% "
                       r"of the audio \(audio 2\.\d\d s, video 1\.00 s; minimum 90%\)"):  # fmt: skip
        preprocess_clip(path, RECIPE)
    out = preprocess_clip(path, RECIPE, min_audio_coverage=0.45)
    assert out.timings["probe"] > 0
    assert out.face.shape[0] == out.audio.shape[0] == 25
    assert out.source_duration_s == pytest.approx(1.0, abs=0.05)


def _bad(kind: str, where: Path, good: Path) -> Path:
    path = where / f"{kind}.mp4"
    if kind == "empty":
        path.write_bytes(b"")
    elif kind == "text":
        path.write_text("this is not a video\n" * 100)
    elif kind == "truncated":  # the index (moov) sits at the end and is cut off
        truncate(good, path, 0.5)
    elif kind == "truncated-faststart":  # the index survives, the frames do not
        truncate(make_clip(where / "fs.mp4", extra=["-movflags", "+faststart"]), path, 0.5)
    elif kind == "no-audio":
        make_clip(path, face_frames(10), audio=False)
    elif kind == "no-video":
        make_clip(path, face_frames(10), video=False)
    elif kind == "no-face":
        make_clip(path, np.full((10, 224, 224, 3), 90, np.uint8))
    elif kind == "one-frame":
        make_clip(path, face_frames(1))
    elif kind == "missing":
        pass
    return path


@pytest.mark.parametrize(
    ("kind", "reason"),
    [
        ("empty", "^empty file \\(0 bytes\\)$"),
        ("text", r"^cannot decode: the container is not an mp4 \(moov atom not found\)$"),
        ("truncated", "^cannot decode: "),
        ("truncated-faststart", r"^cannot decode: truncated or damaged file \(.*partial file\)$"),
        ("no-audio", "^no audio stream$"),
        ("no-video", "^no video stream$"),
        ("no-face", "^no face detected in any frame$"),
        ("one-frame", "^too short: 1 frame$"),
        ("missing", "^file not found$"),
    ],
)
def test_bad_inputs_fail_with_a_clear_reason(
    tmp_path: Path, clip: Path, kind: str, reason: str
) -> None:
    path = _bad(kind, tmp_path, clip)
    with pytest.raises(ClipError, match=reason) as info:
        preprocess_clip(path, RECIPE)
    assert "\n" not in str(info.value)


def test_a_directory_is_not_a_clip(tmp_path: Path) -> None:
    with pytest.raises(ClipError, match="not a regular file"):
        preprocess_clip(tmp_path, RECIPE)


def test_naive_reference_and_decode_only_bound(clip: Path) -> None:
    # benchmarks/ is not an installed package: load the module from its file.
    source = Path(__file__).resolve().parents[1] / "benchmarks" / "naive_reference.py"
    spec = importlib.util.spec_from_file_location("naive_reference", source)
    assert spec is not None and spec.loader is not None
    naive = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(naive)
    decode_only, naive_process = naive.decode_only, naive.naive_process

    assert decode_only(clip) == 50
    with tempfile.TemporaryDirectory() as workdir:
        video, audio = naive_process(clip, Path(workdir))
    assert video.shape == (50, 112, 112, 3) and audio.shape == (50, 104)
    # Same samples (both from an ffmpeg process), same recipe: the baseline's features
    # are ours (wav vs pipe aside).
    ours = preprocess_clip(clip, Recipe(decoder="ffmpeg")).audio
    np.testing.assert_allclose(audio, ours, rtol=1e-4, atol=1e-3)
    assert video.mean() > 50  # a face was found and cropped in every frame
