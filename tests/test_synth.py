"""The synthetic FakeAVCeleb generator, checked on real media with ffmpeg, ffprobe and dlib."""

from __future__ import annotations

import csv
import hashlib
import json
import subprocess
from pathlib import Path

import dlib
import numpy as np
import pytest

from pipeline.datasets.fakeavceleb_tree import CSV_HEADER, TYPE_DIRS
from pipeline.synth import (
    DEFECT_KINDS,
    DEFECTS_NAME,
    METHODS,
    SynthSummary,
    make_dataset,
)
from schemas.labels import LETTER_TO_CATEGORY, TYPE_DIR_TO_CATEGORY, labels_for

SIZE = 224


# --------------------------------------------------------------------------- helpers


def read_rows(root: Path) -> list[list[str]]:
    with open(root / "meta_data.csv", newline="", encoding="utf-8") as fh:
        return list(csv.reader(fh))[1:]


def clip_path(root: Path, row: list[str]) -> Path:
    return root / row[9].removeprefix("FakeAVCeleb/") / row[8]


def probe(path: Path) -> dict:
    cmd = ["ffprobe", "-v", "error", "-show_streams", "-show_format", "-of", "json", str(path)]
    return json.loads(subprocess.run(cmd, capture_output=True, check=True).stdout)


def decode_video(path: Path) -> np.ndarray:
    """``(T, 224, 224, 3)`` uint8 RGB frames."""
    cmd = ["ffmpeg", "-v", "error", "-i", str(path), "-f", "rawvideo", "-pix_fmt", "rgb24", "-"]
    raw = subprocess.run(cmd, capture_output=True, check=True).stdout
    return np.frombuffer(raw, np.uint8).reshape(-1, SIZE, SIZE, 3)


def decode_audio(path: Path) -> np.ndarray:
    """``(n,)`` float64 samples, 16 kHz mono."""
    cmd = ["ffmpeg", "-v", "error", "-i", str(path), "-f", "s16le", "-ac", "1", "-ar", "16000", "-"]
    raw = subprocess.run(cmd, capture_output=True, check=True).stdout
    return np.frombuffer(raw, np.int16).astype(np.float64)


_DETECTOR = dlib.get_frontal_face_detector()


def largest_face(frame: np.ndarray) -> dlib.rectangle | None:
    faces = _DETECTOR(frame, 0)
    return max(faces, key=lambda r: r.area()) if faces else None


def mouth_sharpness(frames: np.ndarray) -> float:
    """Mean Laplacian variance of the lower-middle part of the detected face box."""
    values = []
    for frame in frames[::4]:
        box = largest_face(frame)
        if box is None:
            continue
        grey = frame.astype(np.float64).mean(axis=-1)
        x0, x1 = box.left() + int(0.2 * box.width()), box.left() + int(0.8 * box.width())
        y0, y1 = box.top() + int(0.55 * box.height()), box.top() + int(0.95 * box.height())
        r = grey[max(y0, 0) : y1, max(x0, 0) : x1]
        lap = 4 * r[1:-1, 1:-1] - r[:-2, 1:-1] - r[2:, 1:-1] - r[1:-1, :-2] - r[1:-1, 2:]
        values.append(lap.var())
    assert values, "no face found in any sampled frame"
    return float(np.mean(values))


def high_band_fraction(samples: np.ndarray) -> float:
    """Share of the energy above 3.5 kHz."""
    power = np.abs(np.fft.rfft(samples)) ** 2
    freqs = np.fft.rfftfreq(samples.size, 1 / 16000)
    return float(power[freqs > 3500].sum() / power.sum())


def onset_seconds(samples: np.ndarray) -> float:
    """Time of the first 10 ms block whose RMS exceeds a speech level."""
    blocks = samples[: samples.size // 160 * 160].reshape(-1, 160)
    rms = np.sqrt((blocks**2).mean(axis=1))
    return float(np.argmax(rms > 300) * 0.01)


def content_digest(root: Path) -> dict[str, str]:
    """Hash of the decoded frames and samples of every clip, keyed by relative path."""
    out = {}
    for row in read_rows(root):
        path = clip_path(root, row)
        h = hashlib.sha256(decode_video(path).tobytes())
        h.update(decode_audio(path).tobytes())
        out[str(path.relative_to(root))] = h.hexdigest()
    return out


# --------------------------------------------------------------------------- tests


def test_every_clip_probes_as_h264_aac_224_25fps(synth_dataset: SynthSummary) -> None:
    rows = read_rows(synth_dataset.root)
    assert len(rows) == 12
    for row in rows:
        info = probe(clip_path(synth_dataset.root, row))
        video = [s for s in info["streams"] if s["codec_type"] == "video"]
        audio = [s for s in info["streams"] if s["codec_type"] == "audio"]
        assert len(video) == 1 and len(audio) == 1, row
        assert video[0]["codec_name"] == "h264" and audio[0]["codec_name"] == "aac"
        assert (video[0]["width"], video[0]["height"]) == (SIZE, SIZE)
        assert video[0]["r_frame_rate"] == "25/1" and video[0]["avg_frame_rate"] == "25/1"
        assert video[0]["pix_fmt"] == "yuv420p"
        assert 2.0 <= float(info["format"]["duration"]) <= 4.0


def test_meta_data_csv_has_the_official_format(synth_dataset: SynthSummary) -> None:
    root = synth_dataset.root
    lines = (root / "meta_data.csv").read_text(encoding="utf-8").splitlines()
    assert lines[0] == CSV_HEADER and lines[0].endswith(",")
    rows = read_rows(root)
    assert synth_dataset.counts == {"A": 3, "B": 3, "C": 3, "D": 3}
    files = {p for p in root.rglob("*.mp4")}
    assert len(files) == synth_dataset.n_files == len(rows)
    sources = {r[0] for r in rows}
    assert sources == set(synth_dataset.identities)
    for row in rows:
        assert len(row) == 10
        source, t1, t2, method, letter, type_dir, race, gender, name, directory = row
        assert directory == f"FakeAVCeleb/{type_dir}/{race}/{gender}/{source}"
        assert clip_path(root, row) in files and "/" not in name
        assert TYPE_DIRS[letter] == type_dir and method in METHODS[letter]
        assert TYPE_DIR_TO_CATEGORY[type_dir] == LETTER_TO_CATEGORY[letter]
        labels = labels_for(letter)
        assert labels.video == int(type_dir.startswith("FakeVideo"))
        assert labels.audio == int(type_dir.endswith("FakeAudio"))
        if letter in "AB":
            assert (t1, t2) == ("-", "-")
            stem = name.removesuffix(".mp4").removesuffix("_fake")
            assert stem.isdigit() and len(stem) == 5
        else:
            assert t1 != source and t1 in sources  # fakes reuse identities of real clips
            assert t2 == "-" or t2 not in (source, t1)
            assert name.split("_")[0].isdigit() and ("wav2lip" in method) == ("_wavtolip" in name)
    for letter in "AB":  # real clips, and their fake-audio twins, one per identity
        ids = [r[0] for r in rows if r[4] == letter]
        assert len(ids) == len(set(ids))


def test_face_is_detected_and_moves_in_real_videos(synth_dataset: SynthSummary) -> None:
    root = synth_dataset.root
    for row in read_rows(root):
        if not row[5].startswith("RealVideo"):
            continue
        frames = decode_video(clip_path(root, row))
        boxes = [largest_face(f) for f in frames[::3]]
        found = [b for b in boxes if b is not None]
        assert len(found) >= 0.9 * len(boxes), f"{row[8]}: face in {len(found)}/{len(boxes)}"
        assert all(80 <= b.width() <= 140 for b in found)
        centres = np.array([(b.center().x, b.center().y) for b in found], dtype=float)
        travel = np.ptp(centres, axis=0).max()
        assert 2 <= travel <= 40, f"{row[8]}: face centre moves {travel} px"


def test_fake_video_cue_is_in_the_face_region_only(synth_dataset: SynthSummary) -> None:
    root = synth_dataset.root
    by_identity: dict[str, dict[str, tuple[float, np.ndarray]]] = {}
    for row in read_rows(root):
        frames = decode_video(clip_path(root, row))
        by_identity.setdefault(row[0], {})[row[4]] = (mouth_sharpness(frames), frames)
    for source, clips in by_identity.items():
        real = [clips[k][0] for k in "AB"]
        assert 0.7 <= real[1] / real[0] <= 1.4, f"{source}: real videos differ {real}"
        for letter in "CD":
            ratio = clips[letter][0] / np.mean(real)
            assert ratio < 0.5, f"{source} {letter}: mouth sharpness ratio {ratio:.2f}"


def test_fake_video_changes_only_the_face_region() -> None:
    """Rendered fakes equal the source's real rendering outside the face: no global cue."""
    from dataclasses import replace

    from pipeline.synth import plan
    from pipeline.synth.video import (
        FACE_CENTRE,
        FACE_RADII,
        frame_transform,
        render_clip,
        to_output,
    )

    _, planned = plan(per_category=3, identities=3, seed=1)
    fakes = [spec for row, spec in planned if row.category in "CD"]
    assert {s.swap for s in fakes} >= {"faceswap", "fsgan"} and any(s.lipsync for s in fakes)
    for spec in fakes:
        spec = replace(spec, n_frames=12, fake_pitch=None)
        fake, _ = render_clip(spec)
        real, _ = render_clip(replace(spec, swap=None, lipsync=False, target_look=None))
        for t in range(0, 12, 4):
            tf = frame_transform(spec.look, spec.motion, t / 25)
            cx, cy = to_output(spec.look, tf, FACE_CENTRE)
            changed = np.abs(fake[t].astype(int) - real[t].astype(int)).max(axis=-1) > 0
            ys, xs = np.nonzero(changed)
            assert ys.size > 500, "the fake does not change the face"
            # The face ellipse plus the feather and the blur margin.
            assert np.abs(xs - cx).max() <= FACE_RADII[0] * tf[2] * 1.1 + 8
            assert np.abs(ys - cy).max() <= FACE_RADII[1] * tf[2] * 1.1 + 8


def test_fake_audio_cue_and_leading_silence(synth_dataset: SynthSummary) -> None:
    root = synth_dataset.root
    audio: dict[str, dict[str, np.ndarray]] = {}
    for row in read_rows(root):
        audio.setdefault(row[0], {})[row[4]] = decode_audio(clip_path(root, row))
    for source, clips in audio.items():
        ref = high_band_fraction(clips["A"])
        assert ref > 1e-3, f"{source}: real voice has no high band"
        assert 1 / 3 <= high_band_fraction(clips["C"]) / ref <= 3  # real audio, same voice
        for letter in "BD":
            ratio = high_band_fraction(clips[letter]) / ref
            assert ratio < 0.1, f"{source} {letter}: high-band ratio {ratio:.3f}"
        # The FakeAVCeleb shortcut: fakes begin with silence, real clips do not.
        assert onset_seconds(clips["A"]) <= 0.05
        for letter in "BCD":
            assert 0.08 <= onset_seconds(clips[letter]) <= 0.45


def test_same_seed_same_content_other_seed_differs(tmp_path: Path) -> None:
    calls: list[tuple[int, int]] = []
    # The pool and the serial path must agree, so one run of each.
    a = make_dataset(
        tmp_path / "a",
        per_category=1,
        seed=7,
        workers=2,
        progress=lambda d, t: calls.append((d, t)),
    )
    b = make_dataset(tmp_path / "b", per_category=1, seed=7, workers=1)
    c = make_dataset(tmp_path / "c", per_category=1, seed=8, workers=1)
    assert calls[0] == (0, 4) and calls[-1] == (4, 4)
    csv_a, csv_b, csv_c = ((s.root / "meta_data.csv").read_bytes() for s in (a, b, c))
    assert csv_a == csv_b and csv_a != csv_c
    digest_a = content_digest(a.root)
    assert digest_a == content_digest(b.root)
    assert set(digest_a.values()).isdisjoint(content_digest(c.root).values())


def test_bad_arguments_are_refused(tmp_path: Path, synth_dataset: SynthSummary) -> None:
    with pytest.raises(ValueError, match="per_category must be >= 1"):
        make_dataset(tmp_path / "x", per_category=0)
    with pytest.raises(ValueError, match="identities must be >= 1"):
        make_dataset(tmp_path / "x", identities=0)
    with pytest.raises(ValueError, match="one per identity"):
        make_dataset(tmp_path / "x", per_category=3, identities=2)
    assert not (tmp_path / "x").exists()
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "notes.txt").write_text("mine")
    with pytest.raises(ValueError, match="is not empty"):
        make_dataset(tmp_path / "full", per_category=1)
    with pytest.raises(ValueError, match="already holds a dataset"):
        make_dataset(synth_dataset.root.parent, per_category=1)
    assert sorted(p.name for p in (tmp_path / "full").iterdir()) == ["notes.txt"]


def test_extra_identities_are_donors_only() -> None:
    from pipeline.synth import plan

    people, planned = plan(per_category=2, identities=5, seed=3)
    rows = [row for row, _ in planned]
    assert [sum(r.category == c for r in rows) for c in "ABCD"] == [2, 2, 2, 2]
    sources = {r.source for r in rows}
    assert sources == {p.id for p in people[:2]}
    targets = {r.target1 for r in rows} | {r.target2 for r in rows}
    assert targets - {"-"} <= {p.id for p in people}
    names = [f"{r.directory}/{r.path}" for r in rows]
    assert len(names) == len(set(names))
    again = [row for row, _ in plan(per_category=2, identities=5, seed=3)[1]]
    assert again == rows


def test_defects_cover_every_kind(defect_dataset: SynthSummary) -> None:
    root = defect_dataset.root
    defects = defect_dataset.defects
    assert sorted(defects.values()) == sorted(DEFECT_KINDS)
    assert json.loads((root / DEFECTS_NAME).read_text(encoding="utf-8")) == defects
    rows = read_rows(root)
    by_kind = {kind: rel for rel, kind in defects.items()}
    listed = {f"{r[9].removeprefix('FakeAVCeleb/')}/{r[8]}" for r in rows}
    assert set(defects) <= listed

    def path(kind: str) -> Path:
        return root / by_kind[kind]

    def streams(kind: str) -> dict[str, dict]:
        return {s["codec_type"]: s for s in probe(path(kind))["streams"]}

    assert path("zero_byte").stat().st_size == 0
    for kind in ("truncated", "not_a_video"):
        cmd = ["ffprobe", "-v", "error", "-show_streams", str(path(kind))]
        assert subprocess.run(cmd, capture_output=True).returncode != 0, kind
    assert set(streams("no_audio")) == {"video"}
    assert set(streams("no_video")) == {"audio"}
    assert streams("one_frame")["video"]["nb_frames"] == "1"
    assert streams("fps_30")["video"]["r_frame_rate"] == "30/1"
    vfr = streams("vfr")["video"]
    assert vfr["avg_frame_rate"] != vfr["r_frame_rate"]
    rotated = streams("rotated")["video"]
    assert any(d.get("rotation") in (90, -90) for d in rotated.get("side_data_list", []))
    odd = streams("odd_size")["video"]
    assert (odd["width"], odd["height"]) == (223, 171)
    stereo = streams("audio_48k_stereo")["audio"]
    assert (stereo["sample_rate"], stereo["channels"]) == ("48000", 2)
    assert float(probe(path("very_long"))["format"]["duration"]) >= 19.5
    for kind in ("name_space", "name_parens", "name_unicode", "name_dash", "race_spelling"):
        assert set(streams(kind)) == {"video", "audio"}, kind
    assert path("name_dash").name.startswith("-")
    assert "Asian (East)" in by_kind["race_spelling"]
    assert not path("missing_file").exists()
    assert by_kind["path_escape"].startswith("../")
    escape_rows = [r for r in rows if ".." in r[9]]
    assert len(escape_rows) == 1 and escape_rows[0][9].startswith("FakeAVCeleb/")
    no_face = decode_video(path("no_face"))
    assert all(largest_face(f) is None for f in no_face[::5])
    # The normal part of the tree is untouched by the defects.
    assert defect_dataset.counts == {"A": 3, "B": 3, "C": 3, "D": 3}
