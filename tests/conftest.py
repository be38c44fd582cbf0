"""Shared fixtures: one small synthetic dataset and one store ingested from it per session.

Both are real: media made by ffmpeg (``pipeline.synth``), ingested by the real CLI with
ffmpeg, dlib and a local Ray. Tests that modify data copy it first.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from cli_helpers import ingest_json


@pytest.fixture(scope="session")
def synth_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """``FakeAVCeleb_v1.2`` folder with 3 clips per category (3 identities), seed 0."""
    from pipeline.synth import make_dataset

    out = tmp_path_factory.mktemp("synth")
    return make_dataset(out / "data", per_category=3, seed=0).root


@pytest.fixture(scope="session")
def ingested_store(synth_root: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The synthetic dataset ingested with the default recipe (read-only for tests)."""
    store = tmp_path_factory.mktemp("store") / "store"
    ingest_json(synth_root, "--store", store)
    return store
