"""Published splits (AVH-Align, SpeechForensics, MRDF folds, identity lists) and --official."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest
from cli_helpers import run_cli
from test_split_strict import full_identity, table

import schemas
from pipeline.splits.formats import SplitFileError, detect_format, read_split_file
from pipeline.splits.imports import import_split, official_split
from pipeline.splits.params import SplitError
from pipeline.splits.report import split_summary

RACE = "Asian (South)"  # a release folder name with a space


def store_rows() -> list[dict]:
    """Four identities; paths laid out like the release, a space in the race folder."""
    rows = [r for i in ("id00001", "id00002", "id00003", "id00004") for r in full_identity(i)]
    for r in rows:
        folder = {
            "RARV": "RealVideo-RealAudio",
            "FARV": "RealVideo-FakeAudio",
            "RAFV": "FakeVideo-RealAudio",
            "FAFV": "FakeVideo-FakeAudio",
        }[r["category"]]
        r["path"] = f"{folder}/{RACE}/men/{r['identity']}/{r['clip_id']}.mp4"
    rows[-1]["status"] = schemas.STATUS_FAILED  # id00004's FAFV clip failed
    return rows


def write(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


def avh_csv(rows: list[dict], path: Path, extra: str = "") -> Path:
    letter = {"RARV": "A", "FARV": "B", "RAFV": "C", "FAFV": "D"}
    lines = ["source,category,full_path"]
    lines += [f"{r['identity']},{letter[r['category']]},FakeAVCeleb/{r['path']}" for r in rows]
    return write(path, "\n".join(lines) + "\n" + extra)


def test_avh_parts_from_file_names_missing_and_failed_reported(tmp_path: Path) -> None:
    rows = store_rows()
    by = {
        i: [r for r in rows if r["identity"] == i]
        for i in ("id00001", "id00002", "id00003", "id00004")
    }
    missing = "id00009,A,FakeAVCeleb/RealVideo-RealAudio/African/men/id00009/00001.mp4\n"
    files = [
        read_split_file(
            str(avh_csv(by["id00001"] + by["id00002"], tmp_path / "train_split.csv", missing))
        ),
        read_split_file(str(avh_csv(by["id00003"], tmp_path / "val_split.csv"))),
        read_split_file(f"test={avh_csv(by['id00004'], tmp_path / 'held.csv')}"),
    ]
    assert [f.format for f in files] == ["avh"] * 3
    assert [f.part for f in files] == ["train", "val", "test"]
    assert (
        files[0].sha256 == hashlib.sha256((tmp_path / "train_split.csv").read_bytes()).hexdigest()
    )
    split = import_split(table(rows), files)
    got = {r["clip_id"]: r["split"] for r in split.to_pylist()}
    assert got == {
        r["clip_id"]: {"id00001": "train", "id00002": "train", "id00003": "val"}.get(
            r["identity"], "test"
        )
        for r in rows
        if r["status"] == "ok"
    }
    summary = split_summary(split)
    assert summary["missing"] == ["RealVideo-RealAudio/African/men/id00009/00001.mp4"]
    assert summary["failed_count"] == 1
    assert any("missing from the store" in n for n in summary["notes"])
    with pytest.raises(SplitFileError, match="holds one part"):
        read_split_file(str(avh_csv(by["id00001"], tmp_path / "mine.csv")))


def test_a_clip_in_two_parts_is_refused(tmp_path: Path) -> None:
    rows = store_rows()
    a = avh_csv(rows[:3], tmp_path / "train_split.csv")
    b = avh_csv(rows[2:5], tmp_path / "test_split.csv")
    with pytest.raises(SplitError, match="is named in train .* and in test"):
        import_split(table(rows), [read_split_file(str(a)), read_split_file(str(b))])


def test_speechforensics_splits_on_the_last_space_and_checks_labels(tmp_path: Path) -> None:
    rows = store_rows()
    lines = [f"{r['path']} {0 if r['label'] else 1}" for r in rows[:6]]
    lines.append(f"{rows[6]['path']} 1")  # a fake called real: kept, reported
    path = write(tmp_path / "test_list.txt", "\n".join(lines) + "\n")
    parsed = read_split_file(str(path))
    assert parsed.format == "speechforensics" and parsed.part == "test"
    assert parsed.entries[0].value == rows[0]["path"]  # "Asian (South)" kept whole
    split = import_split(table(rows), [parsed])
    assert set(split.column("split").to_pylist()) == {"test"} and split.num_rows == 7
    summary = split_summary(split)
    assert summary["label_mismatches"] == [rows[6]["path"]]
    assert any("no train, val part" in n for n in summary["notes"])


def test_mrdf_fold_without_part_is_train_and_the_rest_test(tmp_path: Path) -> None:
    rows = store_rows()
    path = write(tmp_path / "fold1.txt", "identity\nid00001\nid00002\nid00077\n")
    parsed = read_split_file(str(path))
    assert parsed.format == "mrdf-fold" and parsed.rest_part == "test"
    split = import_split(table(rows), [parsed])
    parts = {r["identity"]: r["split"] for r in split.to_pylist()}
    assert parts == {"id00001": "train", "id00002": "train", "id00003": "test", "id00004": "test"}
    assert split_summary(split)["missing_identities"] == ["id00077"]


def test_identity_lists_need_a_part_and_may_not_overlap(tmp_path: Path) -> None:
    rows = store_rows()
    ids = write(tmp_path / "train_ids.txt", "id00001\nid00002\n")
    assert detect_format(ids, ["id00001", "id00002"]) == "ids"
    with pytest.raises(SplitFileError, match="needs its part"):
        read_split_file(str(ids))
    val = write(tmp_path / "val_ids.txt", "id00003\n")
    test = write(tmp_path / "test_ids.txt", "id00004\nid00002\n")
    files = [read_split_file(f"{p}={f}") for p, f in (("train", ids), ("val", val), ("test", test))]
    with pytest.raises(SplitError, match="identity id00002 is listed in train"):
        import_split(table(rows), files)


def test_undetectable_format_is_one_clear_error(tmp_path: Path) -> None:
    path = write(tmp_path / "odd.txt", "a b c\nd e f\n")
    with pytest.raises(SplitFileError, match="cannot tell the format .* give --format"):
        read_split_file(str(path))


def test_official_split_parts_and_missing_parts(tmp_path: Path) -> None:
    rows = store_rows()
    with pytest.raises(SplitError, match="no official split"):
        official_split(table(rows))
    for r in rows:
        r["official_split"] = {"id00001": "train", "id00002": "val", "id00003": "test"}.get(
            r["identity"], ""
        )
    split = official_split(table(rows))
    assert {r["identity"]: r["split"] for r in split.to_pylist()} == {
        "id00001": "train",
        "id00002": "val",
        "id00003": "test",
    }
    assert split_summary(split)["no_official_split_count"] == 3  # id00004's ok clips


def _store(tmp_path: Path, rows: list[dict]) -> Path:
    store = tmp_path / "store"
    schemas.create_store(store, schemas.Recipe())
    schemas.write_manifest(store, table(rows))
    return store


def test_cli_imports_records_and_refuses_clashes(tmp_path: Path) -> None:
    rows = store_rows()
    store = _store(tmp_path, rows)
    train = write(tmp_path / "train.txt", "id00001\nid00002\n")
    val = write(tmp_path / "val.txt", "id00003\n")
    test = write(tmp_path / "test.txt", "id00004\n")
    proc = run_cli(
        "mscct-pipeline", "split", "--store", store, "--name", "peer", "--format", "ids",
        "--from-file", f"train={train}", "--from-file", f"val={val}", "--from-file", f"test={test}",
    )  # fmt: skip
    assert "cross-part target references" in " ".join(proc.stdout.split())
    recorded = schemas.split_params(store, "peer")
    assert [f["sha256"] for f in recorded["from_files"]] == [
        hashlib.sha256(p.read_bytes()).hexdigest() for p in (train, val, test)
    ]
    assert recorded["format"] == "ids"
    assert {r["split"] for r in schemas.read_split(store, "peer").to_pylist()} == {
        "train",
        "val",
        "test",
    }
    bad = run_cli(
        "mscct-pipeline", "split", "--store", store, "--balance", "--from-file", f"train={train}",
        check=False,
    )  # fmt: skip
    assert bad.returncode == 2 and "--balance cannot go with --from-file" in bad.stderr
    assert len(bad.stderr.strip().splitlines()) == 1
    none = run_cli("mscct-pipeline", "split", "--store", store, "--official", check=False)
    assert none.returncode == 2 and "no official split" in none.stderr
    strict = run_cli(
        "mscct-pipeline", "split", "--store", store, "--name", "strict", "--strict-identities",
        "--ratios", "0.5,0.25,0.25",
    )  # fmt: skip
    assert "--strict-identities excluded 0 clips" in strict.stdout
    assert schemas.split_params(store, "strict")["strict_identities"] is True
