"""Synthetic LAV-DF and AV-Deepfake1M: tree, metadata and partial-fake segments in real media."""

from __future__ import annotations

import hashlib
import json
import subprocess
from pathlib import Path

import numpy as np
import pytest
from cli_helpers import run_cli

from pipeline.synth import SegmentedSummary, avdeepfake1m, lavdf, make_segmented
from pipeline.synth.segmented_plan import plan_sources
from schemas.labels import CATEGORIES

SIZE = 224
FPS = 25
LAVDF_SPLITS = {"train", "dev", "test"}
AVDF_FIELDS = {
    "file", "original", "split", "modify_type", "audio_model", "fake_segments",
    "audio_fake_segments", "visual_fake_segments", "video_frames", "audio_frames",
}  # fmt: skip
# meta_data.csv of `synth --per-category 1 --seed 7` as the generator wrote it before
# the other formats existed: the default format must stay byte-identical.
FAKEAVCELEB_CSV_SHA256 = "7f73ad961994c8c8e18f687e1f5a17b2b3f251f38802b082e707d6364b8362b0"


# --------------------------------------------------------------------------- helpers


def frame_count(path: Path) -> int:
    cmd = ["ffprobe", "-v", "error", "-select_streams", "v:0", "-count_frames"]
    cmd += ["-show_entries", "stream=nb_read_frames", "-of", "csv=p=0", str(path)]
    return int(subprocess.run(cmd, capture_output=True, check=True, text=True).stdout.strip())


def decode_video(path: Path) -> np.ndarray:
    """``(T, 224, 224, 3)`` float64 RGB frames."""
    cmd = ["ffmpeg", "-v", "error", "-i", str(path), "-f", "rawvideo", "-pix_fmt", "rgb24", "-"]
    raw = subprocess.run(cmd, capture_output=True, check=True).stdout
    return np.frombuffer(raw, np.uint8).reshape(-1, SIZE, SIZE, 3).astype(np.float64)


def decode_audio(path: Path) -> np.ndarray:
    """``(n,)`` float64 samples, 16 kHz mono."""
    cmd = ["ffmpeg", "-v", "error", "-i", str(path), "-f", "s16le", "-ac", "1", "-ar", "16000", "-"]
    raw = subprocess.run(cmd, capture_output=True, check=True).stdout
    return np.frombuffer(raw, np.int16).astype(np.float64)


def video_change(fake: Path, real: Path) -> np.ndarray:
    """Per frame, the largest mean |fake - real| over 8×8 blocks: ``(T,)``."""
    d = np.abs(decode_video(fake) - decode_video(real)).mean(axis=-1)
    return d.reshape(len(d), SIZE // 8, 8, SIZE // 8, 8).mean(axis=(2, 4)).max(axis=(1, 2))


def audio_change(fake: Path, real: Path, n_frames: int) -> tuple[np.ndarray, np.ndarray]:
    """Per video frame (640 samples), RMS of fake - real: ``(local, overall)``, each ``(T,)``.

    ``local`` is relative to both signals in that frame (about 1 for another
    voice), ``overall`` to the real clip's median level (codec noise stays small
    even in a quiet frame, where ``local`` is not).
    """
    a, b = decode_audio(fake), decode_audio(real)

    def rms(x: np.ndarray) -> np.ndarray:
        return np.sqrt((x[: n_frames * 640].reshape(n_frames, 640) ** 2).mean(axis=1))

    diff, level = rms(a - b), rms(b)
    return diff / (rms(a) + level + 1.0), diff / (np.median(level) + 1.0)


def frame_mask(segments: list[list[float]], n_frames: int) -> np.ndarray:
    """``(T,)`` bool: frames inside a segment given in seconds."""
    mask = np.zeros(n_frames, dtype=bool)
    for start, end in segments:
        mask[round(start * FPS) : round(end * FPS)] = True
    return mask


def check_segments(segments: list[list[float]], duration: float) -> None:
    assert isinstance(segments, list)
    for seg in segments:
        assert isinstance(seg, list) and len(seg) == 2
        assert all(isinstance(x, float) for x in seg)
        assert 0 <= seg[0] < seg[1] <= duration + 1e-9
        # Exact to the frame: the times are multiples of 1/25 s.
        assert all(abs(x * FPS - round(x * FPS)) < 1e-6 for x in seg)


def media_files(root: Path) -> set[str]:
    return {str(p.relative_to(root)) for p in root.rglob("*.mp4")}


# --------------------------------------------------------------------------- fixtures


@pytest.fixture(scope="module")
def lavdf_set(tmp_path_factory: pytest.TempPathFactory) -> SegmentedSummary:
    out = tmp_path_factory.mktemp("lavdf")
    return make_segmented(out, format="lavdf", per_category=1, identities=3, seed=3, workers=2)


@pytest.fixture(scope="module")
def avdf_set(tmp_path_factory: pytest.TempPathFactory) -> SegmentedSummary:
    out = tmp_path_factory.mktemp("avdf")
    return make_segmented(
        out, format="avdeepfake1m", per_category=1, identities=3, seed=5, workers=2
    )


# --------------------------------------------------------------------------- LAV-DF


def test_lavdf_tree_and_metadata(lavdf_set: SegmentedSummary) -> None:
    root = lavdf_set.root
    assert root.name == "LAV-DF"
    records = json.loads((root / "metadata.json").read_text())
    minimal = json.loads((root / "metadata.min.json").read_text())
    assert isinstance(records, list) and len(records) == lavdf_set.n_files == 12
    assert minimal == [{k: r[k] for k in lavdf.MIN_FIELDS} for r in records]
    assert media_files(root) == {r["file"] for r in records}
    by_file = {r["file"]: r for r in records}
    kinds: dict[str, set[tuple[bool, bool]]] = {s: set() for s in LAVDF_SPLITS}
    for r in records:
        assert set(r) == set(lavdf.MIN_FIELDS)
        split_dir, name = r["file"].split("/")
        assert r["split"] == split_dir and r["split"] in LAVDF_SPLITS
        assert len(name) == len("000001.mp4") and name[:6].isdigit()
        assert isinstance(r["modify_video"], bool) and isinstance(r["modify_audio"], bool)
        assert isinstance(r["duration"], float) and r["duration"] == r["video_frames"] / FPS
        assert r["video_frames"] == frame_count(root / r["file"])
        assert r["audio_frames"] == r["video_frames"] * 640 and r["audio_channels"] == 1
        check_segments(r["fake_periods"], r["duration"])
        assert r["n_fakes"] == len(r["fake_periods"])
        fake = r["modify_video"] or r["modify_audio"]
        assert (r["n_fakes"] > 0) == fake
        if fake:
            real = by_file[r["original"]]
            assert real["original"] is None and real["split"] == r["split"]
            assert not (real["modify_audio"] or real["modify_video"])
            assert real["video_frames"] == r["video_frames"]
        else:
            assert r["original"] is None
        kinds[r["split"]].add((r["modify_audio"], r["modify_video"]))
    every_pair = {(a, v) for a in (False, True) for v in (False, True)}
    assert all(k == every_pair for k in kinds.values()), kinds
    # A whole-clip fake is there too.
    assert any(r["fake_periods"] == [[0.0, r["duration"]]] for r in records)


def test_lavdf_clips_are_numbered_over_the_whole_dataset(lavdf_set: SegmentedSummary) -> None:
    numbers = sorted(int(Path(c["path"]).stem) for c in lavdf_set.clips)
    assert numbers == list(range(1, 13))
    per_identity: dict[str, int] = {}
    for clip in lavdf_set.clips:
        per_identity[clip["identity"]] = per_identity.get(clip["identity"], 0) + 1
    assert len(per_identity) == 3 and min(per_identity.values()) >= 4


# --------------------------------------------------------------------------- AV-Deepfake1M


def test_avdeepfake1m_tree_and_metadata(avdf_set: SegmentedSummary) -> None:
    root = avdf_set.root
    assert root.name == "AV-Deepfake1M"
    on_disk = media_files(root)
    assert len(on_disk) == avdf_set.n_files == 12
    listed = set()
    spellings = set()
    for subset in ("train", "val"):
        records = json.loads((root / f"{subset}_metadata.json").read_text())
        assert isinstance(records, list) and len(records) == 4
        names = set()
        for r in records:
            assert set(r) == AVDF_FIELDS
            assert r["split"] == subset
            path = root / subset / r["file"]
            assert path.is_file()
            listed.add(f"{subset}/{r['file']}")
            identity, video_id, clip_no, name = r["file"].split("/")
            assert identity.startswith("id") and len(identity) == 7 and identity[2:].isdigit()
            assert len(video_id) == 11 and len(clip_no) == 5 and clip_no.isdigit()
            names.add(name)
            spellings.add(r["modify_type"])
            assert r["video_frames"] == frame_count(path)
            assert r["audio_frames"] == r["video_frames"] * 640
            duration = r["video_frames"] / FPS
            for key in ("fake_segments", "audio_fake_segments", "visual_fake_segments"):
                check_segments(r[key], duration)
            audio, visual = r["audio_fake_segments"], r["visual_fake_segments"]
            assert r["fake_segments"] == sorted({tuple(s): s for s in audio + visual}.values())
            kind = r["modify_type"].replace("-", "_")
            assert (
                kind
                == avdeepfake1m.MODIFY_TYPES[
                    {(False, False): "RARV", (True, False): "FARV", (False, True): "RAFV"}.get(
                        (bool(audio), bool(visual)), "FAFV"
                    )
                ]
            )
            assert (
                name
                == avdeepfake1m.NAMES[{v: k for k, v in avdeepfake1m.MODIFY_TYPES.items()}[kind]]
            )
            assert (r["audio_model"] != "") == bool(audio)
            if kind == "real":
                assert r["original"] is None
            else:
                assert r["original"] == f"{identity}/{video_id}/{clip_no}/real.mp4"
        assert names == set(avdeepfake1m.NAMES.values())
    assert {
        "real",
        "audio_modified",
        "visual_modified",
        "both_modified",
        "both-modified",
    } <= spellings
    test_files = (root / "test_files.txt").read_text().splitlines()
    assert sorted(test_files) == test_files and len(test_files) == 4
    assert {f"test/{f}" for f in test_files} == on_disk - listed
    assert {Path(f).name for f in test_files} == set(avdeepfake1m.NAMES.values())
    # Every identity has several clips.
    folders: dict[str, set[str]] = {}
    for path in on_disk:
        _, identity, video_id, clip_no, _ = path.split("/")
        folders.setdefault(identity, set()).add(f"{video_id}/{clip_no}")
    assert len(folders) == 3 and all(len(f) == 1 for f in folders.values())


def test_every_split_has_every_category(
    avdf_set: SegmentedSummary, lavdf_set: SegmentedSummary
) -> None:
    for summary, per_split in ((avdf_set, 1), (lavdf_set, 1)):
        assert summary.counts == {
            s: {c: per_split for c in CATEGORIES} for s in ("train", "val", "test")
        }
        unlabelled = {c["split"] for c in summary.clips if not c["labelled"]}
        assert unlabelled == ({"test"} if summary.format == "avdeepfake1m" else set())


# --------------------------------------------------------------------------- the media


@pytest.mark.parametrize("which", ["lavdf", "avdeepfake1m"])
def test_partial_fake_segments_are_in_the_media_at_the_stated_times(
    which: str, lavdf_set: SegmentedSummary, avdf_set: SegmentedSummary
) -> None:
    """Inside a segment the fake differs from its original, outside it does not, to the frame.

    Video: the mouth region changes by tens of grey levels, elsewhere only codec
    noise. Audio: another voice, so the difference is about as loud as the
    signals; the AAC coding of identical samples differs by a few per cent of the
    clip's level.
    """
    summary = lavdf_set if which == "lavdf" else avdf_set
    checked = 0
    for clip in summary.clips:
        if clip["original"] is None:
            continue
        fake, real = summary.root / clip["path"], summary.root / clip["original"]
        n = frame_count(fake)
        v_mask = frame_mask(clip["video_fake_segments"], n)
        a_mask = frame_mask(clip["audio_fake_segments"], n)
        v = video_change(fake, real)[:n]
        assert (v[v_mask] > 15).all() and (v[~v_mask] < 12).all(), (clip, v.round(1).tolist())
        local, overall = audio_change(fake, real, n)
        assert (local[a_mask] > 0.2).all(), (clip, local.round(2).tolist())
        assert (overall[~a_mask] < 0.1).all(), (clip, overall.round(2).tolist())
        checked += 1
    assert checked == 3 * len(summary.counts)


# --------------------------------------------------------------------------- determinism, CLI


def test_same_seed_same_metadata(lavdf_set: SegmentedSummary, avdf_set: SegmentedSummary) -> None:
    def lavdf_records(seed: int) -> list[dict]:
        _, sources = plan_sources(1, 3, seed)
        return [rec for _, _, rec in lavdf.lay_out(sources, seed)]

    def avdf_files(seed: int) -> dict:
        _, sources = plan_sources(1, 3, seed)
        entries = avdeepfake1m.lay_out(sources, seed)
        return avdeepfake1m.metadata_files([(s.rel_path, r) for s, _, r in entries])

    written = json.loads((lavdf_set.root / "metadata.json").read_text())
    assert written == lavdf_records(3) and lavdf_records(3) != lavdf_records(4)
    files = avdf_files(5)
    for name, content in files.items():
        text = (avdf_set.root / name).read_text()
        assert (text if isinstance(content, str) else json.loads(text)) == content
    assert avdf_files(6) != files


def test_cli_formats_and_the_unchanged_default(tmp_path: Path) -> None:
    run_cli("mscct-pipeline", "synth", tmp_path / "d", "--per-category", "1", "--seed", "7")
    csv = (tmp_path / "d" / "FakeAVCeleb_v1.2" / "meta_data.csv").read_bytes()
    assert hashlib.sha256(csv).hexdigest() == FAKEAVCELEB_CSV_SHA256
    for bad in (["--format", "dfdc"], ["--format", "lavdf", "--with-defects"],
                ["--format", "avdeepfake1m", "--identities", "2"]):  # fmt: skip
        proc = run_cli("mscct-pipeline", "synth", tmp_path / "x", *bad, check=False)
        assert proc.returncode == 2 and proc.stderr.count("\n") == 1, proc.stderr
        assert not (tmp_path / "x").exists() or not any((tmp_path / "x").iterdir())


# --------------------------------------------------------------------------- the adapters


@pytest.mark.parametrize("which", ["lavdf", "avdeepfake1m"])
def test_the_dataset_adapter_finds_every_clip_with_its_labels(
    which: str, lavdf_set: SegmentedSummary, avdf_set: SegmentedSummary
) -> None:
    from pipeline.datasets import scan

    summary = lavdf_set if which == "lavdf" else avdf_set
    result = scan(summary.root)  # detected from the tree
    assert result.dataset == which
    assert not (result.missing or result.unlisted or result.refused or result.repaired)
    found = {c.path: c for c in result.clips}
    assert set(found) == {c["path"] for c in summary.clips}
    for clip in summary.clips:
        got = found[clip["path"]]
        assert got.dataset == which and got.official_split == clip["split"]
        assert got.labelled == clip["labelled"]
        if not clip["labelled"]:
            assert got.category == "" and got.fake_segments is None
            continue
        assert got.category == clip["category"]
        assert got.original == (clip["original"] or "")
        audio = tuple(map(tuple, clip["audio_fake_segments"]))
        video = tuple(map(tuple, clip["video_fake_segments"]))
        assert got.audio_fake_segments == audio and got.video_fake_segments == video
        assert got.fake_segments == tuple(sorted(set(audio + video)))
