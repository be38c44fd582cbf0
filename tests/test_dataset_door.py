"""The dataset door: an adapter written outside the project, registered, ingests its dataset.

The toy format: ``ROOT/toy_labels.txt``, one clip per line, ``file speaker audio video``
(the last two ``0``/``1``: is that modality fake), the files anywhere under ROOT.
"""

from __future__ import annotations

import shutil
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest

import schemas
from benchmarks import code_shape
from pipeline import datasets
from pipeline.datasets.base import DatasetAdapter, DetectedAdapter
from pipeline.ingest.driver import IngestOptions, run_ingest
from pipeline.synth import make_dataset

TOY_ADAPTER = '''
"""A toy dataset: toy_labels.txt lists ``file speaker audio_fake video_fake``."""
from pathlib import Path

from pipeline.datasets.base import Collector, ScanError, category_of, clip_source

NAME = "toy"
WANTED = "toy: toy_labels.txt"
LABELS = "toy_labels.txt"


def looks_like(path):
    return (path / LABELS).is_file()


def scan(root, sink=None):
    root = Path(root).resolve()
    if not looks_like(root):
        raise ScanError(f"{root} holds no {LABELS}")
    collector = Collector(root, NAME, sink)
    for number, line in enumerate((root / LABELS).read_text().splitlines(), start=1):
        where = collector.where(LABELS, number)
        file, speaker, audio, video = line.split()
        reason = collector.examine(file)
        if reason is not None:
            collector.reject_path(where, file, reason)
            continue
        category = category_of(audio == "1", video == "1")
        clip = clip_source(NAME, file, speaker, category, source_split="train")
        collector.add(LABELS, number, clip, [])
    return collector.finish()
'''

#: file -> (speaker, audio fake, video fake); the clips are FakeAVCeleb's RARV and FAFV.
TOY_CLIPS = {"a/real.mp4": ("alice", "0", "0"), "b/fake.mp4": ("bob", "1", "1")}


@pytest.fixture
def toy(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """The toy adapter as a module outside the project, registered as ``toy`` (detected)."""
    code = tmp_path / "code"
    code.mkdir()
    (code / "toy_adapter.py").write_text(textwrap.dedent(TOY_ADAPTER))
    monkeypatch.syspath_prepend(str(code))
    datasets.register("toy", "toy_adapter", detected=True)
    yield "toy"
    datasets.unregister("toy")


def _toy_root(dest: Path) -> Path:
    """Two synthetic clips (a real one, a fake one) laid out in the toy's format."""
    summary = make_dataset(dest / "synth", per_category=1, identities=1, seed=5)
    by_type = {path.parts[-5]: path for path in summary.root.rglob("*.mp4")}
    sources = [by_type["RealVideo-RealAudio"], by_type["FakeVideo-FakeAudio"]]
    root = dest / "toy"
    lines = []
    for source, (file, (speaker, audio, video)) in zip(sources, TOY_CLIPS.items(), strict=True):
        (root / file).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(source, root / file)
        lines.append(f"{file} {speaker} {audio} {video}")
    (root / "toy_labels.txt").write_text("\n".join(lines) + "\n")
    return root


def test_a_registered_toy_adapter_ingests_its_dataset(toy: str, tmp_path: Path) -> None:
    root = _toy_root(tmp_path / "data")
    assert toy in datasets.names()
    module = datasets.adapter(toy)
    assert isinstance(module, DatasetAdapter) and isinstance(module, DetectedAdapter)
    assert datasets.detect(root) == toy  # registered as detected: no --dataset needed
    store = tmp_path / "store"
    recipe = schemas.Recipe(crop_size=48, max_seconds=1.0)
    result = run_ingest(root, IngestOptions(store=store, recipe=recipe, workers=2))
    assert result.ok == 2 and result.failed == 0, [r["error"] for r in result.manifest.to_pylist()]
    rows = {r["path"]: r for r in schemas.read_manifest(store).to_pylist()}
    assert set(rows) == set(TOY_CLIPS)
    for file, (speaker, audio, video) in TOY_CLIPS.items():
        row = rows[file]
        assert row["dataset"] == "toy" and row["labelled"] is True
        assert row["identity"] == speaker
        assert (row["audio_label"], row["video_label"]) == (int(audio), int(video))
        assert row["category"] == ("FAFV" if audio == "1" else "RARV")
        assert row["official_split"] == "train" and row["fake_segments"] is None


def test_the_door_refuses_what_is_not_an_adapter(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "not_an_adapter.py").write_text("NAME = 'broken'\n")  # no scan()
    monkeypatch.syspath_prepend(str(tmp_path))
    with pytest.raises(ValueError, match="taken"):
        datasets.register("lavdf", "not_an_adapter")
    datasets.register("broken", "not_an_adapter")
    try:
        with pytest.raises(TypeError, match="not a dataset adapter"):
            datasets.adapter("broken")
    finally:
        datasets.unregister("broken")
    with pytest.raises(schemas.UserError, match="unknown dataset 'broken'"):
        datasets.adapter("broken")


def test_an_installed_package_registers_through_its_entry_point(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "toy_adapter_ep.py").write_text(textwrap.dedent(TOY_ADAPTER))
    info = tmp_path / "toy_datasets-1.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: toy-datasets\nVersion: 1.0\n")
    (info / "entry_points.txt").write_text(
        f"[{datasets.ENTRY_POINT_GROUP}]\ntoy_ep = toy_adapter_ep\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    assert "toy_ep" in datasets.names()
    assert datasets.adapter("toy_ep").NAME == "toy"


def test_no_adapter_imports_another_and_the_package_is_on_no_cycle() -> None:
    shape = code_shape.measure()
    adapters = {datasets.adapter(name).__name__ for name in datasets.DATASETS}
    inside = [e for e in shape["edges"] if e["source"].startswith("pipeline.datasets")]
    crossing = [e for e in inside if e["target"] in adapters and e["source"] != e["target"]]
    assert not crossing, f"an adapter (or a helper) imports an adapter: {crossing}"
    on_cycle = [
        c["modules"]
        for c in shape["cycles"]
        if any(m.startswith("pipeline.datasets") for m in c["modules"])
    ]
    assert not on_cycle, f"import cycles through pipeline.datasets: {on_cycle}"
