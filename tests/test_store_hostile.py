"""A hostile or damaged store: its lock, its own folders, links, FIFOs and damaged metadata.

Every case builds the hostile entry in a copy of a small store, runs the real CLI as a
user would, and expects one line on stderr and exit 2; outside the store, every file
keeps its bytes and nothing new appears (:func:`_tree` of the outside folder before and
after). Reader cases run with a timeout: a FIFO must never block them.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest
from cli_helpers import call_main, run_cli
from frame_fixtures import build_segment_store
from trainer_fixtures import build_store

import schemas
from schemas import manifest_store as ms
from schemas.layout import clip_dir
from schemas.store_files import foreign_entries
from trainer.cli import main

COUNTS = {"train": 1, "val": 1, "test": 1}
FRAGMENT = "000000000001-0123abcd.parquet"
READ_TIMEOUT = 120  # seconds: far more than any of these commands needs, less than forever


def _one_line(proc: subprocess.CompletedProcess, *needles: str) -> str:
    """The single ``error:`` line of a refused command (exit 2, no traceback); an
    ingest's progress bar may have drawn its line before it."""
    assert proc.returncode == 2, proc.stderr
    assert "Traceback" not in proc.stderr, proc.stderr
    errors = [line for line in proc.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and proc.stderr.strip().endswith(errors[0]), proc.stderr
    for needle in needles:
        assert needle in errors[0], errors[0]
    return errors[0]


def _tree(root: Path) -> dict[str, object]:
    """Every entry below ``root`` (links not followed): file bytes, or its kind."""
    found: dict[str, object] = {}
    for folder, dirs, files in os.walk(root):
        for name in dirs + files:
            path = Path(folder) / name
            rel = str(path.relative_to(root))
            if path.is_symlink():
                found[rel] = f"link -> {os.readlink(path)}"
            elif path.is_fifo():
                found[rel] = "fifo"
            elif path.is_dir():
                found[rel] = "dir"
            else:
                found[rel] = path.read_bytes()
    return found


def _row(clip_id: str) -> dict:
    return dict(
        clip_id=clip_id, path=f"{clip_id}.mp4", category="RARV", audio_label=0, video_label=0,
        label=0, identity="id09999", method="real", num_frames=8, source_fingerprint="f" * 16,
        recipe_hash="r", status="ok", error="", source_size=100, source_mtime_ns=7,
    )  # fmt: skip


@pytest.fixture(scope="module")
def pristine(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 12-clip store (raw, sharded) with a default split and one manifest fragment."""
    store = build_store(
        tmp_path_factory.mktemp("hostile") / "store", crop_size=16, frames=8, counts=COUNTS
    )
    _fragment(store).rename(store / "manifest.d" / FRAGMENT)  # a name the tests can use
    return store


def _fragment(store: Path) -> Path:
    """Add a fragment that rewrites one clip's row (seq 1)."""
    table = schemas.rows_to_table([_row("clip00000")], schemas.MANIFEST_SCHEMA)
    return ms.write_fragment(store, table, 1)


@pytest.fixture
def site(pristine: Path, tmp_path: Path) -> tuple[Path, Path]:
    """``(store, outside)``: a copy of the store and a folder beside it that the store
    must never read or write, holding a precious file and tables that look like the
    store's (with a row ``outside00001`` that must never reach the manifest)."""
    store = tmp_path / "store"
    shutil.copytree(pristine, store, symlinks=True)
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "precious.txt").write_text("a user's file\n")
    rows = [*schemas.read_manifest(store).to_pylist(), _row("outside00001")]
    pq.write_table(schemas.rows_to_table(rows, schemas.MANIFEST_SCHEMA), outside / "table.parquet")
    shutil.copy(store / "splits" / "default.parquet", outside / "split.parquet")
    shutil.copy(store / "zarr.json", outside / "zarr.json")
    folder = outside / "folder"
    folder.mkdir()
    shutil.copy(outside / "table.parquet", folder / FRAGMENT)
    shutil.copy(outside / "split.parquet", folder / "default.parquet")
    return store, outside


# --------------------------------------------------------------------------- the lock


def _make_lock(kind: str, lock: Path, outside: Path) -> None:
    if kind == "link to a file":
        lock.symlink_to(outside / "precious.txt")
    elif kind == "link to a missing path":
        lock.symlink_to(outside / "created-by-the-lock")
    elif kind == "hard link":
        os.link(outside / "precious.txt", lock)
    elif kind == "fifo":
        os.mkfifo(lock)
    else:
        lock.mkdir()


LOCK_KINDS = ["link to a file", "link to a missing path", "hard link", "fifo", "directory"]


@pytest.mark.parametrize("command", ["compact", "repair"])
@pytest.mark.parametrize("kind", LOCK_KINDS)
def test_a_lock_that_is_not_a_plain_file_writes_nothing_outside(
    site: tuple[Path, Path], kind: str, command: str
) -> None:
    store, outside = site
    lock = store / ".lock"
    _make_lock(kind, lock, outside)
    before = _tree(outside)
    proc = run_cli("mscct-pipeline", command, "--store", store, check=False, timeout=READ_TIMEOUT)
    _one_line(proc, str(lock))
    assert _tree(outside) == before
    assert ms.fragment_paths(store), "nothing may be folded without the lock"


@pytest.mark.parametrize("kind", ["link to a file", "link to a missing path", "hard link"])
@pytest.mark.parametrize("where", ["empty folder", "store"])
def test_ingest_refuses_a_lock_link_before_writing_anything(
    synth_root: Path, site: tuple[Path, Path], kind: str, where: str
) -> None:
    store, outside = site
    if where == "empty folder":
        shutil.rmtree(store)
        store.mkdir()
    _make_lock(kind, store / ".lock", outside)
    before, store_before = _tree(outside), _tree(store)
    proc = run_cli("mscct-pipeline", "ingest", synth_root, "--store", store, check=False)
    _one_line(proc, ".lock")
    assert _tree(outside) == before and _tree(store) == store_before


# --------------------------------------------------------------------------- --overwrite


def _foreign(store: Path, where: str, outside: Path) -> str:
    """Put a user's entry at ``where`` (``<clip>`` is a committed clip's folder)."""
    clip = clip_dir(store, "clip00003").relative_to(store)
    rel = where.replace("<clip>", str(clip))
    path = store / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    if rel.endswith("link.parquet"):
        path.symlink_to(outside / "split.parquet")
    else:
        path.write_text("a user's words\n")
    return rel


@pytest.mark.parametrize(
    "where",
    [
        "splits/my_notes.txt",
        "splits/published_split.csv",
        "clips/README.md",
        "manifest.d/keep.txt",
        "<clip>/notes.txt",
        "<clip>/video/c/notes.txt",
        "splits/link.parquet",
    ],
)
def test_overwrite_refuses_a_store_holding_a_users_file_in_its_folders(
    synth_root: Path, site: tuple[Path, Path], where: str
) -> None:
    store, outside = site
    rel = _foreign(store, where, outside)
    before, outside_before = _tree(store), _tree(outside)
    proc = run_cli(
        "mscct-pipeline", "ingest", synth_root, "--store", store, "--overwrite", check=False
    )
    _one_line(proc, rel, "not deleting")
    assert _tree(store) == before and _tree(outside) == outside_before


def test_a_store_of_its_own_files_only_is_overwritten(pristine: Path, tmp_path: Path) -> None:
    """Every kind of file a store writes counts as its own: raw and zstd clips, frame
    labels, fragments, splits, temporary files of an interrupted write, the lock."""
    store = tmp_path / "store"
    shutil.copytree(pristine, store)
    recipe = schemas.open_store(store).recipe
    labels = {name: np.zeros(8, np.uint8) for name in schemas.FRAME_LABELS}
    video = np.zeros((8, 16, 16, 3), np.uint8)
    audio = np.zeros((8, 104), np.float32)
    schemas.write_clip(
        store, "labelled", video, audio, _row("labelled"), recipe, frame_labels=labels
    )
    zstd = tmp_path / "zstd"
    schemas.create_store(zstd, schemas.Recipe(crop_size=16, layout="zstd"))
    schemas.write_clip(zstd, "z", video, audio, _row("z"), schemas.open_store(zstd).recipe)
    for kept in (store, zstd):
        (kept / ".lock").write_text("pid 1 on host")
        (kept / f".manifest.parquet.{'0' * 32}.tmp").write_bytes(b"half")
        (kept / "manifest.d").mkdir(exist_ok=True)
        (kept / "manifest.d" / f".{FRAGMENT}.{'1' * 32}.tmp").write_bytes(b"half")
        (kept / "splits" / f".fold0.parquet.{'2' * 32}.tmp").write_bytes(b"half")
        assert foreign_entries(kept) == []
        schemas.check_store_target(kept, overwrite=True)
    schemas.create_store(store, recipe, overwrite=True)
    assert sorted(p.name for p in store.iterdir()) == [
        ".lock", ".staging", "clips", "splits", "zarr.json",
    ]  # fmt: skip


# --------------------------------------------------------------------------- the manifest


def _not_a_fragment(kind: str, path: Path, outside: Path) -> str:
    if kind == "fifo":
        os.mkfifo(path)
        return "a FIFO"
    if kind == "directory":
        path.mkdir()
        return "a directory"
    path.symlink_to(outside / "table.parquet")
    return "a symbolic link"


READERS = [
    ("mscct-pipeline", "inspect"),
    ("mscct-pipeline", "split", "--name", "again"),
    ("mscct-pipeline", "compact"),
    ("mscct-train", "run", "--set", "epochs=1"),
]


# Training reads the manifest through the same function as the others: one kind (the FIFO,
# which hung it) is enough there, and keeps the torch start-ups few.
CASES = [(kind, r) for kind in ("fifo", "directory", "link out") for r in READERS[:3]]
CASES.append(("fifo", READERS[3]))


@pytest.mark.parametrize(
    ("kind", "reader"), CASES, ids=lambda c: c[1] if isinstance(c, tuple) else c
)
def test_a_fragment_that_is_not_a_file_is_one_line_for_every_reader(
    site: tuple[Path, Path], kind: str, reader: tuple[str, ...]
) -> None:
    store, outside = site
    name = "000000000002-89abcdef.parquet"
    words = _not_a_fragment(kind, store / "manifest.d" / name, outside)
    before = _tree(outside)
    extra = ("--out", store.parent / "run") if reader[0] == "mscct-train" else ()
    proc = run_cli(*reader, "--store", store, *extra, check=False, timeout=READ_TIMEOUT)
    _one_line(proc, f"manifest.d/{name}", words)
    assert _tree(outside) == before
    assert not (store.parent / "run").exists()


LINKED = {
    "manifest.parquet": "table.parquet",
    f"manifest.d/{FRAGMENT}": "table.parquet",
    "splits/default.parquet": "split.parquet",
    "zarr.json": "zarr.json",
    "manifest.d": "folder",
    "splits": "folder",
}


@pytest.mark.parametrize("command", ["inspect", "compact", "split"])
@pytest.mark.parametrize("entry", sorted(LINKED))
def test_store_tables_linked_out_of_the_store_are_never_read(
    site: tuple[Path, Path], entry: str, command: str
) -> None:
    """A link from the store's tables (or their folders) to look-alike tables outside:
    refused in one line; no outside row enters the manifest, nothing outside changes."""
    store, outside = site
    path = store / entry
    shutil.rmtree(path) if path.is_dir() else path.unlink()
    path.symlink_to(outside / LINKED[entry])
    before = _tree(outside)
    args = ["split", "--overwrite"] if command == "split" else [command]
    proc = run_cli("mscct-pipeline", *args, "--store", store, check=False, timeout=READ_TIMEOUT)
    if entry == "splits/default.parquet" or (entry == "splits" and command == "inspect"):
        # No split table is read; `split` replaces the link itself, not what it leads to.
        assert proc.returncode == 0, proc.stderr
    else:
        _one_line(proc, entry)  # a writer refuses a linked splits/ as a reader would
    assert _tree(outside) == before
    if entry == "splits/default.parquet" and command != "split":  # what training reads
        with pytest.raises(schemas.StoreError, match="symbolic link"):
            schemas.read_split(store)
    if path.is_symlink():
        path.unlink()
    if entry == "zarr.json":
        return
    base = store / "manifest.parquet"
    if base.exists() and not base.is_symlink():
        assert "outside00001" not in pq.read_table(base).column("clip_id").to_pylist()


@pytest.mark.parametrize("folder", [".staging", "clips", "manifest.d", "<clip>"])
def test_a_store_folder_linked_out_is_never_swept_or_read(
    site: tuple[Path, Path], folder: str
) -> None:
    """``repair`` empties ``.staging/``, walks ``clips/`` (and every clip folder in it) and
    folds ``manifest.d/``: through a link, it would delete or import what lies outside."""
    store, outside = site
    target = outside / "folder"
    if folder in ("clips", "<clip>"):
        folder = (
            str(clip_dir(store, "clip00005").relative_to(store)) if folder != "clips" else folder
        )
        target = target / "moved"
        shutil.move(store / folder, target)
    else:
        shutil.rmtree(store / folder, ignore_errors=True)
    (store / folder).symlink_to(target)
    before = _tree(outside)
    proc = run_cli("mscct-pipeline", "repair", "--store", store, check=False)
    _one_line(proc, folder)
    assert _tree(outside) == before


def test_a_truncated_manifest_points_to_repair(site: tuple[Path, Path]) -> None:
    store, _ = site
    base = store / "manifest.parquet"
    base.write_bytes(base.read_bytes()[:100])
    _one_line(run_cli("mscct-pipeline", "inspect", "--store", store, check=False), "repair")
    run_cli("mscct-pipeline", "repair", "--store", store)
    fragment = _fragment(store)
    fragment.write_bytes(fragment.read_bytes()[:50])
    _one_line(run_cli("mscct-pipeline", "inspect", "--store", store, check=False), "repair")


# --------------------------------------------------------------------------- clip metadata


def _damage(store: Path, clip_id: str, how: str) -> None:
    folder = clip_dir(store, clip_id) / "video"
    meta_path = folder / "zarr.json"
    meta = json.loads(meta_path.read_text())
    if how == "no shape":
        del meta["shape"]
    elif how == "a JSON list":
        meta = [meta]
    elif how == "shape 10^12":
        meta["shape"][0] = 10**12
        meta["chunk_grid"]["configuration"]["chunk_shape"][0] = 10**12
    else:  # a truncated raw chunk
        chunk = folder / "c" / "0" / "0" / "0" / "0"
        chunk.write_bytes(chunk.read_bytes()[:100])
    meta_path.write_text(json.dumps(meta))


DAMAGE = ["no shape", "a JSON list", "shape 10^12", "truncated chunk"]


@pytest.mark.parametrize("how", DAMAGE)
def test_show_on_a_damaged_clip_is_one_line_naming_the_clip_and_the_fix(
    site: tuple[Path, Path], how: str
) -> None:
    store, _ = site
    _damage(store, "clip00004", how)
    out = store.parent / "clip.png"
    proc = run_cli(
        "mscct-pipeline", "show", "clip00004", "--out", out, "--store", store, check=False
    )
    line = _one_line(proc, "clip00004", "damaged", "rerun `mscct-pipeline ingest`")
    assert str(clip_dir(store, "clip00004")) in line
    assert not out.exists()


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A store with frame labels (``eval`` reads each test clip's labels, and through
    them its video metadata) and a one-epoch checkpoint trained on it."""
    base = tmp_path_factory.mktemp("hostile_eval")
    counts = {"train": 2, "val": 1, "test": 1}
    store = build_segment_store(base / "store", crop_size=16, frames=16, counts=counts)
    fast = ["--set", "epochs=1", "--set", "windows_per_clip=1", "--set", "batch_size=4"]
    out = base / "run"
    assert call_main(main, ["run", "--store", str(store), "--out", str(out), *fast]) == 0
    return store, out / "checkpoints" / "best.pt"


@pytest.mark.parametrize("how", DAMAGE[:3])
def test_eval_on_a_damaged_clip_is_one_line_naming_the_clip_and_the_fix(
    trained: tuple[Path, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str], how: str
) -> None:
    source, best = trained
    store = tmp_path / "store"
    shutil.copytree(source, store)
    parts = schemas.read_split(store).to_pylist()
    clip_id = next(r["clip_id"] for r in parts if r["split"] == "test")  # one eval reads
    _damage(store, clip_id, how)
    capsys.readouterr()
    code = call_main(main, ["eval", str(best), "--store", str(store)])
    err = capsys.readouterr().err.strip()
    assert code == 2 and "\n" not in err and "Traceback" not in err, err
    for needle in (clip_id, "damaged", "rerun `mscct-pipeline ingest`"):
        assert needle in err, err


def test_foreign_entries_stop_at_the_first_few(pristine: Path, tmp_path: Path) -> None:
    store = tmp_path / "store"
    shutil.copytree(pristine, store)
    for i in range(9):
        (store / "splits" / f"note{i}.txt").write_text("x")
    assert foreign_entries(store) == [f"splits/note{i}.txt" for i in range(5)]


def test_a_clip_is_never_committed_through_a_shard_folder_linked_out(
    site: tuple[Path, Path],
) -> None:
    store, outside = site
    shard = clip_dir(store, "new-clip").parent
    shard.parent.mkdir(parents=True, exist_ok=True)
    shutil.rmtree(shard, ignore_errors=True)
    shard.symlink_to(outside / "folder")
    before = _tree(outside)
    recipe = schemas.open_store(store).recipe
    video, audio = np.zeros((8, 16, 16, 3), np.uint8), np.zeros((8, 104), np.float32)
    with pytest.raises(schemas.StoreError, match="leads outside"):
        schemas.write_clip(store, "new-clip", video, audio, _row("new-clip"), recipe)
    assert _tree(outside) == before


@pytest.mark.parametrize("reader", ["show", "run"])
def test_a_fifo_named_like_a_chunk_never_hangs_a_reader(
    site: tuple[Path, Path], reader: str
) -> None:
    store, _ = site
    clip_id = next(
        r["clip_id"] for r in schemas.read_split(store).to_pylist() if r["split"] == "train"
    )
    chunk = clip_dir(store, clip_id) / "video" / "c" / "0" / "0" / "0" / "0"
    chunk.unlink()
    os.mkfifo(chunk)
    out = store.parent / "out"
    if reader == "show":
        args = ("mscct-pipeline", "show", clip_id, "--out", out.with_suffix(".png"))
    else:
        args = ("mscct-train", "run", "--out", out, "--set", "epochs=1")
    proc = run_cli(*args, "--store", store, check=False, timeout=READ_TIMEOUT)
    _one_line(proc, clip_id, "a FIFO", "rerun `mscct-pipeline ingest`")
