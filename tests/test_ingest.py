"""Ingest end to end: real synthetic media, real ffmpeg and dlib, a real local Ray."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import signal
import time
from pathlib import Path

import dlib
import numpy as np
import pytest
from cli_helpers import ingest_json, run_cli, start_ingest
from store_checks import assert_every_clip_once

import schemas
from schemas.lock import store_lock

HEADER = "source,target1,target2,method,category,type,race,gender,path,\n"


def _store_digest(store: Path) -> dict[str, str]:
    return {
        str(p.relative_to(store)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(store.rglob("*"))
        if p.is_file() and p.name != ".lock"
    }


def _csv_rows(root: Path) -> list[str]:
    return (root / "meta_data.csv").read_text().splitlines()[1:]


def test_every_clip_is_ingested_with_the_right_labels(
    synth_root: Path, ingested_store: Path
) -> None:
    manifest = schemas.read_manifest(ingested_store).to_pylist()
    assert len(manifest) == len(_csv_rows(synth_root)) == 12
    assert all(row["status"] == "ok" for row in manifest), [r["error"] for r in manifest]
    letters = {"A": "RARV", "B": "FARV", "C": "RAFV", "D": "FAFV"}
    by_path = {row["path"]: row for row in manifest}
    for line in _csv_rows(synth_root):
        fields = line.split(",")
        rel = "/".join([*fields[9].split("/")[1:], fields[8]])
        row = by_path[rel]
        assert row["category"] == letters[fields[4]]
        assert row["identity"] == fields[0] and row["method"] == fields[3]
        labels = schemas.labels_for(row["category"])
        assert (row["audio_label"], row["video_label"], row["label"]) == (
            labels.audio,
            labels.video,
            labels.overall,
        )
    for row in manifest:
        video, audio = schemas.open_clip(ingested_store, row["clip_id"])
        assert isinstance(video, np.memmap)
        assert video.shape == (row["num_frames"], 112, 112, 3) and video.dtype == np.uint8
        assert audio.shape == (row["num_frames"], 104) and audio.dtype == np.float32
        assert np.isfinite(audio).all()
        # 2-4 s at 25 fps
        assert 50 <= row["num_frames"] <= 100
        assert row["face_detection_rate"] > 0.8


def test_face_crops_contain_the_face(ingested_store: Path) -> None:
    detector = dlib.get_frontal_face_detector()
    manifest = schemas.read_manifest(ingested_store).to_pylist()
    hits = total = 0
    for row in manifest:
        video, _ = schemas.open_clip(ingested_store, row["clip_id"])
        for frame in video[:: max(1, len(video) // 4)]:
            faces = detector(np.ascontiguousarray(frame), 1)
            total += 1
            if faces:
                # the face fills the centre of the crop
                box = max(faces, key=lambda r: r.area())
                centre = ((box.left() + box.right()) / 2, (box.top() + box.bottom()) / 2)
                hits += abs(centre[0] - 56) < 20 and abs(centre[1] - 56) < 24
    assert hits / total > 0.8, f"face found centred in {hits}/{total} crops"


def test_rerun_processes_nothing_and_changes_no_byte(synth_root: Path, tmp_path: Path) -> None:
    store = tmp_path / "store"
    _, first = ingest_json(synth_root, "--store", store, "--limit", "4")
    assert first["submitted"] == 4 and first["ok"] == 4
    before = _store_digest(store)
    _, second = ingest_json(synth_root, "--store", store, "--limit", "4")
    assert second["submitted"] == 0 and second["skipped"] == 4
    assert _store_digest(store) == before

    # Another recipe on the same store is refused, clearly, before any work.
    proc = run_cli(
        "mscct-pipeline", "ingest", synth_root, "--store", store, "--crop-size", "96", check=False
    )
    assert proc.returncode == 2
    assert "another recipe" in proc.stderr and "crop_size: 112 != 96" in proc.stderr
    assert _store_digest(store) == before


def _small_copy(synth_root: Path, dest: Path, rows: int) -> Path:
    """A copy of the first ``rows`` CSV rows of the synthetic dataset and their files."""
    root = dest / "FakeAVCeleb_v1.2"
    root.mkdir(parents=True)
    kept = _csv_rows(synth_root)[:rows]
    for line in kept:
        fields = line.split(",")
        rel = Path(*fields[9].split("/")[1:], fields[8])
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(synth_root / rel, root / rel)
    (root / "meta_data.csv").write_text(HEADER + "".join(k + "\n" for k in kept))
    return root


def test_bad_rows_and_odd_names(synth_root: Path, tmp_path: Path) -> None:
    root = _small_copy(synth_root, tmp_path / "data", rows=2)
    good = _csv_rows(root)[0].split(",")
    folder = Path(*good[9].split("/")[1:])
    source = root / folder / good[8]
    extra = []
    for name in ("-leading-dash.mp4", "ünïcödé (1) clip.mp4"):
        shutil.copy2(source, root / folder / name)
        extra.append(",".join([*good[:8], name, good[9]]))
    (root / folder / "broken.mp4").write_bytes(source.read_bytes()[:3000])
    extra.append(",".join([*good[:8], "broken.mp4", good[9]]))
    (tmp_path / "outside.mp4").write_bytes(source.read_bytes())
    extra.append(",".join([*good[:8], "outside.mp4", "FakeAVCeleb/../.."]))
    extra.append(",".join([*good[:8], "gone.mp4", good[9]]))
    with (root / "meta_data.csv").open("a") as handle:
        handle.write("".join(line + "\n" for line in extra))

    store = tmp_path / "store"
    _, summary = ingest_json(root, "--store", store)
    rows = {r["path"].rsplit("/", 1)[1]: r for r in schemas.read_manifest(store).to_pylist()}
    assert rows["-leading-dash.mp4"]["status"] == "ok"
    assert rows["ünïcödé (1) clip.mp4"]["status"] == "ok"
    assert rows["broken.mp4"]["status"] == "failed" and rows["broken.mp4"]["error"]
    assert "outside.mp4" not in rows and "gone.mp4" not in rows
    assert any("leaves the dataset root" in r for r in summary["refused"])
    assert any("gone.mp4" in m for m in summary["missing"])
    # the dash-named clip holds the same tensors as its original
    same = rows[good[8]]["clip_id"], rows["-leading-dash.mp4"]["clip_id"]
    np.testing.assert_array_equal(
        schemas.open_clip(store, same[0])[0], schemas.open_clip(store, same[1])[0]
    )
    # the failed clip is not visible, and a rerun redoes only it
    assert schemas.read_clip_record(store, rows["broken.mp4"]["clip_id"]) is None
    _, again = ingest_json(root, "--store", store)
    assert again["submitted"] == 1 and again["failed"] == 1


def test_killed_driver_then_rerun_commits_every_clip_once(synth_root: Path, tmp_path: Path) -> None:
    store = tmp_path / "store"
    proc = start_ingest(synth_root, store, "--workers", "1")
    clips = store / "clips"
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if len(list(clips.glob("*/*/*/zarr.json"))) >= 2:  # committed clips (sharded)
            break
        time.sleep(0.1)
    assert proc.poll() is None, "ingest finished before it could be killed"
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    committed_before = {r["clip_id"]: r for r in schemas.committed_records(store)}
    assert 2 <= len(committed_before) < 12

    _, summary = ingest_json(synth_root, "--store", store)
    assert summary["skipped"] >= len(committed_before)
    assert summary["submitted"] + summary["skipped"] == 12 and summary["failed"] == 0
    _, committed = assert_every_clip_once(store, 12)
    for clip_id, record in committed_before.items():
        assert committed[clip_id] == record  # committed clips were left untouched
    assert not any((store / ".staging").iterdir())


def test_a_second_writer_is_refused(synth_root: Path, tmp_path: Path) -> None:
    store = tmp_path / "store"
    with store_lock(store):
        proc = run_cli("mscct-pipeline", "ingest", synth_root, "--store", store, check=False)
    assert proc.returncode == 2 and "being written by pid" in proc.stderr


def test_nothing_to_process_exits_1(tmp_path: Path) -> None:
    root = tmp_path / "FakeAVCeleb_v1.2"
    (root / "RealVideo-RealAudio").mkdir(parents=True)
    proc = run_cli("mscct-pipeline", "ingest", root, "--store", tmp_path / "s", check=False)
    assert proc.returncode == 1 and "nothing could be processed" in proc.stderr


@pytest.mark.parametrize(
    "bad", [["--categories", "XYZ"], ["--audio-features", "wav"], ["--workers", "0"]]
)
def test_bad_arguments_exit_2(synth_root: Path, tmp_path: Path, bad: list[str]) -> None:
    proc = run_cli(
        "mscct-pipeline", "ingest", synth_root, "--store", tmp_path / "s", *bad, check=False
    )
    assert proc.returncode == 2 and proc.stderr.strip().startswith("error:")
    assert "Traceback" not in proc.stderr
    assert not (tmp_path / "s" / "clips").exists() or os.listdir(tmp_path / "s" / "clips") == [
        "zarr.json"
    ]


def _source_of(root: Path, row: int = 0) -> Path:
    return _clip_source(root, row)[1]


def test_resume_reads_no_source_unless_verify(synth_root: Path, tmp_path: Path) -> None:
    root = _small_copy(synth_root, tmp_path / "data", rows=2)
    store = tmp_path / "store"
    ingest_json(root, "--store", store)
    source = _source_of(root)
    before = source.stat()
    with source.open("r+b") as handle:  # new content, same size and mtime
        handle.seek(before.st_size - 16)
        handle.write(bytes(16))
    os.utime(source, ns=(before.st_atime_ns, before.st_mtime_ns))
    _, trusted = ingest_json(root, "--store", store)
    assert trusted["submitted"] == 0 and trusted["skipped"] == 2  # size + mtime: current
    _, verified = ingest_json(root, "--store", store, "--verify")
    assert verified["submitted"] == 1 and verified["skipped"] == 1
    source.touch()  # a newer mtime alone is enough to redo a clip
    _, touched = ingest_json(root, "--store", store)
    assert touched["submitted"] == 1


def test_a_fifo_is_never_opened(synth_root: Path, tmp_path: Path) -> None:
    root = _small_copy(synth_root, tmp_path / "data", rows=2)
    store = tmp_path / "store"
    ingest_json(root, "--store", store)
    clip, source = _clip_source(root)
    source.unlink()
    os.mkfifo(source)  # open() for reading would block until a writer comes: never
    for verify in ([], ["--verify"]):  # the old driver blocked here, in open(), holding the lock
        proc = run_cli("mscct-pipeline", "ingest", root, "--store", store, "--json", *verify,
                       timeout=120, check=False)  # fmt: skip
        assert proc.returncode == 0, proc.stderr
    summary = json.loads(proc.stdout[proc.stdout.find("{") :])
    rows = {r["clip_id"]: r for r in schemas.read_manifest(store).to_pylist()}
    refused = any(source.name in r for r in summary["refused"])  # the scan may refuse it
    row = rows.get(clip.clip_id)
    assert refused or (row["status"] == "failed" and row["error"] == "not a regular file"), row


def _clip_source(root: Path, row: int = 0):  # type: ignore[no-untyped-def]
    from pipeline.datasets.fakeavceleb import scan_dataset

    scan = scan_dataset(root)
    return scan.clips[row], scan.root / scan.clips[row].path


def _ffmpeg_children_reading(path: Path) -> bool:
    for pid in os.listdir("/proc"):
        if pid.isdigit():
            try:
                stat = Path(f"/proc/{pid}/stat").read_text()
                cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
            except OSError:
                continue
            parent = int(stat.rsplit(")", 1)[1].split()[1])
            if parent == os.getpid() and str(path).encode() in cmdline:
                return True
    return False


def test_a_source_changed_during_its_decode_fails_the_clip(
    synth_root: Path, tmp_path: Path
) -> None:
    import threading

    from pipeline.ingest.driver import process_clip

    root = _small_copy(synth_root, tmp_path / "data", rows=1)
    clip, source = _clip_source(root)
    store = tmp_path / "store"
    # The ffmpeg decoder: its process is what the watcher waits for, so that the file
    # changes mid-decode. The check (fingerprints before and after) is the decoder's own.
    recipe = schemas.Recipe(decoder="ffmpeg")
    schemas.create_store(store, recipe)
    appended = threading.Event()

    def append_once_ffmpeg_runs() -> None:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and not _ffmpeg_children_reading(source):
            time.sleep(0.001)
        with source.open("ab") as handle:
            handle.write(b"\0" * 4096)
        appended.set()

    watcher = threading.Thread(target=append_once_ffmpeg_runs)
    watcher.start()
    record = process_clip(str(source), str(store), clip, recipe.to_dict())
    watcher.join()
    assert appended.is_set()
    assert record["status"] == "failed" and "source changed" in record["error"], record
    assert schemas.read_clip_record(store, clip.clip_id) is None
    redone = process_clip(str(source), str(store), clip, recipe.to_dict())
    assert redone["status"] == "ok"
    assert redone["source_fingerprint"].startswith(f"{source.stat().st_size}-")
    assert redone["source_size"] == source.stat().st_size


def test_low_face_rate_is_flagged_from_the_recipe_threshold(tmp_path: Path) -> None:
    from media_fixtures import face_frames, make_clip

    from pipeline.datasets.source import ClipSource
    from pipeline.ingest.driver import process_clip

    frames = face_frames(50)
    frames[20:] = 0  # the face is gone after 20 frames: 4 of 10 detector calls find it
    path = make_clip(tmp_path / "half.mp4", frames)
    store = tmp_path / "store"
    clip = ClipSource("half", "half.mp4", "RARV", source_type="real", identity="id0", method="real")
    for threshold, flagged in ((0.5, True), (0.3, False)):
        recipe = schemas.Recipe(min_face_rate=threshold)
        schemas.create_store(store, recipe, overwrite=True)
        record = process_clip(str(path), str(store), clip, recipe.to_dict())
        assert record["status"] == "ok" and record["face_detection_rate"] < 0.5
        assert record["low_face_rate"] is flagged
