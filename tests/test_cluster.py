"""Ingest on a real multi-node Ray cluster (two raylets on loopback), losing a node mid-run."""

from __future__ import annotations

import subprocess
import time
from pathlib import Path

import pytest
from cli_helpers import ingest_json, start_ingest
from store_checks import assert_every_clip_once


@pytest.fixture()
def cluster():
    from ray.cluster_utils import Cluster

    cluster = Cluster(
        initialize_head=True,
        head_node_args={
            "num_cpus": 1,
            "include_dashboard": False,
            "object_store_memory": 100 * 2**20,
        },
    )
    try:
        yield cluster
    finally:
        cluster.shutdown()


def _worker_node(cluster):
    return cluster.add_node(num_cpus=1, object_store_memory=100 * 2**20)


def test_ingest_spreads_over_nodes_and_survives_losing_one(
    cluster, synth_root: Path, tmp_path: Path
) -> None:
    doomed = _worker_node(cluster)
    survivor = _worker_node(cluster)
    cluster.wait_for_nodes()
    store = tmp_path / "store"
    proc = start_ingest(synth_root, store, "--address", cluster.address, stderr=subprocess.PIPE)
    clips = store / "clips"
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline and proc.poll() is None:
        if len(list(clips.glob("*/*/*/zarr.json"))) >= 3:  # committed clips (sharded)
            break
        time.sleep(0.05)
    assert proc.poll() is None, "ingest finished before a node could be killed"
    cluster.remove_node(doomed, allow_graceful=False)  # SIGKILL its raylet and workers
    _, stderr = proc.communicate(timeout=300)
    assert proc.returncode == 0, stderr

    manifest, _ = assert_every_clip_once(store, 12)
    nodes = {r["node_id"] for r in manifest}
    assert len(nodes) >= 2, f"all clips ran on one node: {nodes}"
    assert nodes <= {cluster.head_node.node_id, doomed.node_id, survivor.node_id}

    # the same command again, against the smaller cluster, has nothing left to do
    _, again = ingest_json(synth_root, "--store", store, "--address", cluster.address)
    assert again["submitted"] == 0 and again["skipped"] == 12
