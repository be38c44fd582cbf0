"""Hostile dataset metadata: each bad record is one refused row, nothing outside the root is read.

LAV-DF, AV-Deepfake1M and CSV records nested thousands deep, numbers beyond a float,
segment lists past the bound, labels that contradict the segments, a path that names no
file, a link that aliases another clip, per-clip JSON files that are FIFOs or links out.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

import pytest
from cli_helpers import ingest_json, run_cli
from test_datasets_avdeepfake1m import record as av_record
from test_datasets_avdeepfake1m import release
from test_datasets_lavdf import lavdf
from test_datasets_lavdf import record as lav_record

from pipeline.datasets import scan
from pipeline.datasets.common import ScanError
from pipeline.datasets.fakeavceleb import scan_dataset
from pipeline.datasets.fakeavceleb_tree import CSV_HEADER as HEADER
from pipeline.datasets.json_stream import MAX_DEPTH, MAX_VALUES
from pipeline.datasets.segments import MAX_SEGMENTS

REPO = Path(__file__).resolve().parents[1]


def snapshot(folder: Path) -> dict[str, bytes | None]:
    """Every entry under ``folder`` with its bytes (None for what is not a regular file)."""
    found: dict[str, bytes | None] = {}
    for path in sorted(folder.rglob("*")):
        regular = path.is_file() and not path.is_symlink()
        found[path.relative_to(folder).as_posix()] = path.read_bytes() if regular else None
    return found


def nested(depth: int) -> Any:
    """A JSON text nested ``depth`` lists deep, as raw JSON (never built in Python)."""
    return "[" * depth + "]" * depth


def lavdf_text(tmp_path: Path, records: list[str]) -> Path:
    """A LAV-DF root whose metadata.json is the raw JSON ``records`` joined (and their files)."""
    root = lavdf(tmp_path, [lav_record(f"train/{i}.mp4") for i in range(len(records))])
    (root / "metadata.json").write_text("[" + ",".join(records) + "]")
    return root


def raw_lav(name: str, **fields: str) -> str:
    """The JSON text of a LAV-DF fake record whose ``fields`` are raw JSON texts."""
    base = {k: json.dumps(v) for k, v in lav_record(f"train/{name}.mp4", video=True).items()}
    base |= fields
    return "{" + ",".join(f'"{k}": {v}' for k, v in base.items()) + "}"


@pytest.mark.parametrize("depth", [5_000, 20_000])
def test_a_record_nested_thousands_deep_is_one_refused_row(tmp_path: Path, depth: int) -> None:
    # Refused without being built, in a process held to 1 GiB: a record nested 20,000
    # deep once took 1.1 GB (ijson's prefix strings) and 5,000 deep a RecursionError.
    records = [raw_lav("0"), raw_lav("1", fake_periods=nested(depth)), raw_lav("2")]
    root = lavdf_text(tmp_path, records)
    code = (
        "import resource, sys, json\n"
        "resource.setrlimit(resource.RLIMIT_AS, (1 << 30, 1 << 30))\n"
        "from pipeline.datasets import scan\n"
        "r = scan(sys.argv[1], 'lavdf')\n"
        "print(json.dumps([[c.path for c in r.clips], r.refused]))\n"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code, str(root)],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=REPO,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    clips, refused = json.loads(proc.stdout)
    assert clips == ["train/0.mp4", "train/2.mp4"]
    assert refused == [
        f"metadata.json[1]: the record is nested deeper than {MAX_DEPTH} levels; refused"
    ]


def test_numbers_beyond_a_float_refuse_their_record_only(tmp_path: Path) -> None:
    records = [
        raw_lav("0"),
        raw_lav("1", duration="1e400"),
        raw_lav("2", fake_periods="[[0, " + "9" * 400 + "]]"),
        raw_lav("3"),
    ]
    result = scan(lavdf_text(tmp_path, records), "lavdf")
    assert [c.path for c in result.clips] == ["train/0.mp4", "train/3.mp4"]
    assert len(result.refused) == 2
    assert result.refused[0].startswith("metadata.json[1]: field 'duration' is inf, not a positive")
    assert result.refused[1].startswith("metadata.json[2]: fake_periods holds 9999")
    assert "not a finite number" in result.refused[1]


def test_an_integer_python_cannot_read_names_the_record_in_one_line(tmp_path: Path) -> None:
    root = lavdf_text(tmp_path, [raw_lav("0"), raw_lav("1", n_fakes="9" * 5001)])
    with pytest.raises(ScanError) as caught:
        scan(root, "lavdf")
    message = str(caught.value)
    assert "metadata.json: holds an integer of more than 4,300 digits at byte " in message
    assert "\n" not in message and "set_int_max_str_digits" not in message


def test_segment_lists_and_records_past_the_bounds_are_refused(tmp_path: Path) -> None:
    many = [[i, i + 0.5] for i in range(MAX_SEGMENTS + 1)]
    huge = [[i, i + 0.5] for i in range(MAX_VALUES)]
    records = [
        lav_record("train/a.mp4"),
        lav_record("train/b.mp4", video=True, fake_periods=many, duration=None),
        lav_record("train/c.mp4", video=True, fake_periods=huge, duration=None),
    ]
    root = lavdf(tmp_path, [{k: v for k, v in r.items() if v is not None} for r in records])
    result = scan(root, "lavdf")
    assert [c.path for c in result.clips] == ["train/a.mp4"]
    assert result.refused == [
        f"metadata.json[1]: fake_periods holds {MAX_SEGMENTS + 1:,} segments, over the limit "
        f"of {MAX_SEGMENTS:,}; refused",
        f"metadata.json[2]: the record is more than {MAX_VALUES:,} values; refused",
    ]


def test_a_path_naming_no_file_is_refused(tmp_path: Path) -> None:
    # "." with no split field once ended the scan with an IndexError.
    bad = {k: v for k, v in lav_record("train/x.mp4").items() if k != "split"}
    root = lavdf(tmp_path, [lav_record("train/a.mp4"), bad | {"file": "."}, bad | {"file": "/"}])
    result = scan(root, "lavdf")
    assert [c.path for c in result.clips] == ["train/a.mp4"]
    assert result.refused == [
        "metadata.json[1]: field 'file' (.) names no file; refused",
        "metadata.json[2]: field 'file' (/) names no file; refused",
    ]


def test_fake_clips_whose_segments_contradict_their_label_are_refused(tmp_path: Path) -> None:
    (tmp_path / "l").mkdir()
    (tmp_path / "a").mkdir()
    lav = lavdf(
        tmp_path / "l",
        [lav_record("train/a.mp4"), lav_record("train/b.mp4", video=True, fake_periods=[])],
    )
    result = scan(lav, "lavdf")
    assert [c.path for c in result.clips] == ["train/a.mp4"]
    assert result.refused == [
        "metadata.json[1]: a fake clip (modify_video true) with no fake_periods; refused"
    ]
    segment = [[1.0, 2.0]]
    av = release(
        tmp_path / "a",
        train=[
            av_record("id1/v/1/real.mp4"),
            av_record(
                "id1/v/1/a.mp4", "audio_modified", fake_segments=[], audio_fake_segments=segment
            ),
            av_record("id1/v/1/b.mp4", "both_modified", visual_fake_segments=[]),
            av_record("id1/v/1/c.mp4", "visual_modified", fake_segments=[[0.0, 3.0]]),
        ],
    )
    result = scan(av, "avdeepfake1m")
    assert [c.path for c in result.clips] == ["train/id1/v/1/real.mp4"]
    assert result.refused == [
        "train_metadata.json[1]: a fake clip (modify_type not real) with empty fake_segments; refused",
        "train_metadata.json[2]: visual_fake_segments is empty although modify_type says that "
        "modality is fake; refused",
        "train_metadata.json[3]: fake_segments are not the union of audio_fake_segments and "
        "visual_fake_segments; refused",
    ]


@pytest.mark.parametrize(
    ("cell", "reason"),
    [
        (
            '"' + "[" * 60_000 + "]" * 60_000 + '"',
            f"fake_segments is nested deeper than {MAX_DEPTH}",
        ),
        ('"[[0, ' + "9" * 400 + ']]"', "not a finite number"),
        ('"[[0, ' + "9" * 5001 + ']]"', "fake_segments is not JSON (an integer of more than 4,300"),
        ('"[]"', "label 1 (fake) with empty fake_segments"),
    ],
)
def test_hostile_csv_segment_cells_are_one_refused_row(
    tmp_path: Path, cell: str, reason: str
) -> None:
    root = tmp_path / "mine"
    root.mkdir()
    header = "path,label,audio_label,video_label,fake_segments\n"
    (root / "labels.csv").write_text(f"{header}good.mp4,0,,,\nbad.mp4,1,1,0,{cell}\n")
    for name in ("good.mp4", "bad.mp4"):
        (root / name).touch()
    result = scan(root, "csv")
    assert [c.path for c in result.clips] == ["good.mp4"]
    assert len(result.refused) == 1 and result.refused[0].startswith("labels.csv:3: ")
    assert reason in result.refused[0], result.refused


def test_a_link_aliasing_another_clip_is_merged_or_refused(tmp_path: Path) -> None:
    records = [
        lav_record("train/a.mp4", video=True),
        lav_record("test/alias.mp4"),  # the same video, called real in test
        lav_record("train/same.mp4", video=True),  # the same video with the same labels
    ]
    root = lavdf(tmp_path, records)
    for name in ("test/alias.mp4", "train/same.mp4"):
        (root / name).unlink()
        os.symlink(root / "train" / "a.mp4", root / name)
    result = scan(root, "lavdf")
    assert [c.path for c in result.clips] == ["train/a.mp4"]
    assert result.refused == [
        "metadata.json[1]: duplicate record for test/alias.mp4 with other labels than "
        "metadata.json[0] (train/a.mp4, the same file through a link); refused"
    ]
    assert result.merged == [
        "metadata.json[2]: train/same.mp4 merged with metadata.json[0] (train/a.mp4, the same "
        "file through a link) (method visual_modified)"
    ]


def test_an_alias_named_before_its_target_is_refused_too(tmp_path: Path) -> None:
    root = tmp_path / "mine"
    (root / "real").mkdir(parents=True)
    (root / "real" / "a.mp4").touch()
    os.symlink("real", root / "fake")  # a folder link: fake/a.mp4 is real/a.mp4
    (root / "labels.csv").write_text(
        "path,label,audio_label,video_label\nfake/a.mp4,1,1,1\nreal/a.mp4,0,,\n"
    )
    result = scan(root, "csv")
    assert [c.path for c in result.clips] == ["fake/a.mp4"]
    assert (
        len(result.refused) == 1
        and "labels.csv:3: duplicate record for real/a.mp4" in result.refused[0]
    )


def test_a_fakeavceleb_link_aliasing_a_real_clip_as_a_fake_is_refused(tmp_path: Path) -> None:
    # In a tree labelled by its folders and in meta_data.csv alike.
    real = "RealVideo-RealAudio/African/men/id00076/00001.mp4"
    fake = "FakeVideo-FakeAudio/African/men/id00076/00001_fake.mp4"
    for with_csv in (False, True):
        root = tmp_path / f"csv{with_csv}"
        (root / real).parent.mkdir(parents=True)
        (root / real).write_bytes(b"not really a video")
        (root / fake).parent.mkdir(parents=True)
        os.symlink(root / real, root / fake)
        if with_csv:
            (root / "meta_data.csv").write_text(
                "\n".join([HEADER, tree_row(real, "A", "real"), tree_row(fake, "D", "wav2lip")])
            )
        result = scan_dataset(root)
        assert [c.path for c in result.clips] == [real]
        # A refused row's file is listed as unlisted, as for any refused record.
        assert result.unlisted == ([fake] if with_csv else [])
        assert len(result.refused) == 1 and "other labels" in result.refused[0], result.refused


def tree_row(rel: str, letter: str, method: str) -> str:
    """A meta_data.csv row naming ``rel``."""
    folder, name = rel.rsplit("/", 1)
    type_dir = folder.split("/")[0]
    return f"id00076,-,-,{method},{letter},{type_dir},African,men,{name},FakeAVCeleb/{folder}"


def test_odd_per_clip_json_files_are_one_refused_row_each(tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "secret.json").write_text(json.dumps(av_record("id9/v/1/secret.mp4")))
    root = tmp_path / "AV1M"
    folder = root / "train_metadata"
    folder.mkdir(parents=True)
    for name in ("real", "secret", "fifo"):
        (root / "train" / "id1" / name).mkdir(parents=True)
        (root / "train" / "id1" / name / "a.mp4").touch()
    (folder / "a.json").write_text(json.dumps(av_record("id1/real/a.mp4")))
    os.mkfifo(folder / "b.json")
    os.symlink(outside / "secret.json", folder / "c.json")
    (folder / "d.json").write_text("")
    before = snapshot(outside)
    result = _scan_in_a_thread(root, "avdeepfake1m")
    assert [c.path for c in result.clips] == ["train/id1/real/a.mp4"]
    assert result.refused == [
        "train_metadata/b.json: the file is not a regular file (a FIFO), never opened; refused",
        "train_metadata/c.json: the file leaves the dataset root; refused",
        "train_metadata/d.json: not valid JSON (parse error: premature EOF); refused",
    ]
    assert snapshot(outside) == before


def _scan_in_a_thread(root: Path, dataset: str) -> Any:
    """The scan of ``root``, failing (not hanging) when it blocks on a FIFO."""
    found: list[Any] = []
    worker = threading.Thread(target=lambda: found.append(_caught(root, dataset)), daemon=True)
    worker.start()
    worker.join(timeout=60)
    assert not worker.is_alive(), "the scan blocked"
    if isinstance(found[0], BaseException):
        raise found[0]
    return found[0]


def _caught(root: Path, dataset: str) -> Any:
    try:
        return scan(root, dataset)
    except BaseException as exc:  # handed to the test's thread
        return exc


def test_a_metadata_fifo_is_named_as_a_fifo(tmp_path: Path) -> None:
    root = tmp_path / "AV1M"
    root.mkdir()
    os.mkfifo(root / "train_metadata.json")
    with pytest.raises(ScanError, match=r"train_metadata.json is not a regular file \(a FIFO\)"):
        _scan_in_a_thread(root, "avdeepfake1m")


@pytest.mark.parametrize(
    ("bad", "message"),
    [
        ({"duration": "long"}, "field 'duration' is 'long', not a number; refused"),
        ({"n_fakes": 1.5}, "field 'n_fakes' is 1.5, not a whole number; refused"),
    ],
)
def test_type_errors_say_what_was_expected(
    tmp_path: Path, bad: dict[str, Any], message: str
) -> None:
    root = lavdf(tmp_path, [lav_record("train/a.mp4", video=True) | bad])
    assert scan(root, "lavdf").refused == [f"metadata.json[0]: {message}"]


# --------------------------------------------------------------------------- the whole ingest


@pytest.fixture(scope="module")
def synth_lavdf(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A synthetic LAV-DF release (real media, 12 clips)."""
    out = tmp_path_factory.mktemp("lavdf") / "lav"
    run_cli("mscct-pipeline", "synth", out, "--format", "lavdf", "--per-category", "1")
    return out / "LAV-DF"


def _raw(record: dict[str, Any], **raw_fields: str) -> str:
    """The JSON text of ``record`` with ``raw_fields`` given as raw JSON texts."""
    fields = {k: json.dumps(v) for k, v in record.items() if k not in raw_fields} | raw_fields
    return "{" + ", ".join(f"{json.dumps(k)}: {v}" for k, v in fields.items()) + "}"


def test_an_ingest_refuses_each_hostile_record_and_goes_on(
    synth_lavdf: Path, tmp_path: Path
) -> None:
    # Each of these once ended the ingest with a traceback or a whole-file error, or
    # stored a clip with contradictory labels, or one video twice.
    root = tmp_path / "data" / "LAV-DF"
    shutil.copytree(synth_lavdf, root)
    records = json.loads((root / "metadata.json").read_text())
    real = next(r for r in records if not (r["modify_audio"] or r["modify_video"]))
    fake = next(r for r in records if r["modify_video"])
    os.symlink(root / real["file"], root / "test" / "alias.mp4")
    hostile = [
        _raw({k: v for k, v in real.items() if k != "split"}, file='"."'),
        _raw(fake | {"file": "train/deep.mp4"}, fake_periods=nested(5_000)),
        _raw(fake | {"file": "train/huge.mp4"}, duration="1e400"),
        _raw(fake | {"file": "train/none.mp4", "fake_periods": []}),
        _raw(fake | {"file": "test/alias.mp4", "split": "test"}),
    ]
    text = (root / "metadata.json").read_text().rstrip()
    (root / "metadata.json").write_text(text[:-1] + ", " + ", ".join(hostile) + "]")
    before = {p.name for p in tmp_path.iterdir()}
    proc, result = ingest_json(root, "--store", tmp_path / "store", "--limit", "1", check=False)
    assert proc.returncode == 0, proc.stderr[-3000:]
    n = len(records)
    assert [r.split(": ", 1)[0] for r in result["refused"]] == [
        f"metadata.json[{i}]" for i in range(n, n + 5)
    ]
    reasons = "\n".join(result["refused"])
    for reason in (
        "names no file",
        "nested deeper than",
        "not a positive number",
        "with no fake_periods",
        "the same file through a link",
    ):
        assert reason in reasons
    assert result["ok"] == 1
    assert {p.name for p in tmp_path.iterdir()} == before | {"store"}
