"""Shared fixtures: one small synthetic dataset and one store ingested from it per session.

Both are real: media made by ffmpeg (``pipeline.synth``), ingested by the real CLI with
ffmpeg, dlib and a local Ray. Tests that modify data copy it first.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from cli_helpers import ingest_json

from pipeline.synth import SynthSummary, make_dataset


@pytest.fixture(scope="session")
def synth_dataset(tmp_path_factory: pytest.TempPathFactory) -> SynthSummary:
    """Three identities, each with one clip of every category (12 clips), seed 0."""
    return make_dataset(tmp_path_factory.mktemp("synth") / "data", per_category=3, seed=0)


@pytest.fixture(scope="session")
def defect_dataset(tmp_path_factory: pytest.TempPathFactory) -> SynthSummary:
    """``synth_dataset``'s 12 clips (byte-identical) plus every kind of bad input."""
    out = tmp_path_factory.mktemp("synth_defects")
    return make_dataset(out / "data", per_category=3, seed=0, with_defects=True)


@pytest.fixture(scope="session")
def synth_root(synth_dataset: SynthSummary) -> Path:
    """The ``FakeAVCeleb_v1.2`` folder of ``synth_dataset``."""
    return synth_dataset.root


@pytest.fixture(scope="session")
def ingested_store(synth_root: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The synthetic dataset ingested with the default recipe (read-only for tests)."""
    store = tmp_path_factory.mktemp("store") / "store"
    ingest_json(synth_root, "--store", store)
    return store
