"""The scan in a thread: clips reach the driver while the scan still runs, and its rules.

Real LAV-DF and AV-Deepfake1M trees (empty media files for the scan-only tests, a
real synthetic clip for the ingest), a real scan thread and a real local Ray.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from typing import Any

import pytest
from test_datasets_avdeepfake1m import record as av_record
from test_datasets_lavdf import record as lavdf_record

import schemas
from pipeline.datasets import ClipSource
from pipeline.datasets.common import ScanError
from pipeline.ingest.driver import IngestOptions, run_ingest
from pipeline.ingest.scan_stream import ScanStream

#: Records naming files that do not exist: enough to keep the scan busy for a while.
MISSING_RECORDS = 20_000


def _lavdf_tree(root: Path, records: list[Any], present: list[str]) -> Path:
    root.mkdir(parents=True)
    (root / "metadata.json").write_text(json.dumps(records))
    for rel in present:
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).touch()
    return root


def _everything(_: ClipSource) -> bool:
    return True


def test_the_first_clip_is_handed_over_while_the_scan_still_runs(tmp_path: Path) -> None:
    records = [lavdf_record("train/000000.mp4")]
    records += [lavdf_record(f"train/{i:06d}.mp4") for i in range(1, MISSING_RECORDS)]
    root = _lavdf_tree(tmp_path / "LAV-DF", records, ["train/000000.mp4"])

    stream = ScanStream(root, "lavdf", lambda: False, _everything).start()
    stream.wait_first()
    clips = stream.clips()
    first = next(c for c in clips if c is not None)
    assert first.path == "train/000000.mp4"
    assert not stream.done  # handed over with thousands of records still to read
    assert [c for c in clips if c is not None] == []  # the rest name missing files
    result = stream.result()
    assert [c.path for c in result.clips] == ["train/000000.mp4"]
    assert len(result.missing) == MISSING_RECORDS - 1 and stream.total == 1


def test_a_scan_that_fails_at_once_raises_before_any_clip(tmp_path: Path) -> None:
    root = tmp_path / "LAV-DF"
    root.mkdir()
    (root / "metadata.json").write_text('{"not": "an array"}')
    stream = ScanStream(root, "lavdf", lambda: False, _everything).start()
    with pytest.raises(ScanError, match="expected a JSON array"):
        stream.wait_first()


def test_a_scan_that_fails_part_way_hands_out_nothing_more(tmp_path: Path) -> None:
    good = [lavdf_record(f"train/{i:06d}.mp4") for i in range(3)]
    root = _lavdf_tree(tmp_path / "LAV-DF", [], [r["file"] for r in good])
    text = json.dumps(good)
    (root / "metadata.json").write_text(text[:-1] + ', {"file": "train/x.mp4", "spl')
    stream = ScanStream(root, "lavdf", lambda: False, _everything).start()
    stream.wait_first()
    handed = [c for c in stream.clips() if c is not None]
    assert stream.failed()
    assert len(handed) <= 3  # at most those found before the error; never one after it
    with pytest.raises(ScanError, match="not valid JSON after record 2"):
        stream.result()


def test_a_stopped_ingest_stops_the_scan(tmp_path: Path) -> None:
    records = [lavdf_record(f"train/{i:06d}.mp4") for i in range(2_000)]
    root = _lavdf_tree(tmp_path / "LAV-DF", records, [r["file"] for r in records])
    stop = {"now": False}
    stream = ScanStream(root, "lavdf", lambda: stop["now"], _everything).start()
    stream.wait_first()
    stop["now"] = True
    assert list(stream.clips()) == []  # a stopping driver takes nothing more
    stream._done.wait(30)
    assert stream.failed() and stream.total < len(records)


def test_a_later_duplicate_record_joins_its_method_into_the_manifest_row(
    synth_root: Path, tmp_path: Path
) -> None:
    """AV-Deepfake1M lists a file twice with the same labels and two voice generators:
    the clip may be processed before the second record is read; its row still ends
    with both methods joined, as a scan that runs first would have given it."""
    root = tmp_path / "AV-Deepfake1M"
    rel = "id00001/v1/00001/fake.mp4"
    first = av_record(rel, "audio_modified", audio_model="yourtts")
    second = av_record(rel, "audio_modified", audio_model="vits")
    filler = [av_record(f"id00002/v{i}/00001/real.mp4") for i in range(2_000)]
    (root / "train" / rel).parent.mkdir(parents=True)
    shutil.copy(min(synth_root.rglob("*.mp4")), root / "train" / rel)
    (root / "train_metadata.json").write_text(json.dumps([first, *filler, second]))

    store = tmp_path / "store"
    result = run_ingest(root, IngestOptions(store=store, workers=1, dataset="avdeepfake1m"))
    assert (result.ok, result.failed) == (1, 0)
    assert len(result.scan.merged) == 1 and len(result.scan.missing) == len(filler)
    (row,) = schemas.read_manifest(store).to_pylist()
    assert row["method"] == "audio_modified:yourtts+audio_modified:vits"
    assert os.path.isdir(schemas.layout.clip_dir(store, row["clip_id"]))
