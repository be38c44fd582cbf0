"""Assertions about a whole store that several fault tests share."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import schemas


def assert_every_clip_once(
    store: Path, expected: int
) -> tuple[list[dict[str, Any]], dict[str, dict]]:
    """Every clip is ok, in the manifest exactly once, committed, and readable whole.

    Returns the manifest rows and the committed records by clip id.
    """
    manifest = schemas.read_manifest(store).to_pylist()
    ids = [r["clip_id"] for r in manifest]
    assert len(ids) == len(set(ids)) == expected
    assert all(r["status"] == "ok" for r in manifest), [r["error"] for r in manifest]
    committed = {r["clip_id"]: r for r in schemas.committed_records(store)}
    assert set(committed) == set(ids)
    for row in manifest:
        assert committed[row["clip_id"]]["source_fingerprint"] == row["source_fingerprint"]
        video, audio = schemas.open_clip(store, row["clip_id"])
        assert len(video) == len(audio) == row["num_frames"]
    return manifest, committed
