"""Ingest clips/s on a local Ray cluster of 1 and then 2 nodes (one CPU each).

    python -m benchmarks.bench_cluster [--per-category 6] [--data DIR]

The same set-up as ``tests/test_cluster.py``: raylets on loopback started with
``ray.cluster_utils.Cluster``, the real ``mscct-pipeline ingest --address`` CLI in a
subprocess, a fresh store per run. The CLI's own elapsed time includes connecting
to the cluster and starting workers, so this is what a user sees, not a peak rate.
Results go to ``benchmarks/results/cluster.json``.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # run as a script: make the repository importable
    sys.path.insert(0, str(ROOT))

from benchmarks.output import save_result  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results"


def ingest_rate(root: Path, store: Path, address: str) -> float:
    cli = Path(sys.executable).parent / "mscct-pipeline"
    out = subprocess.run(
        [str(cli), "ingest", str(root), "--store", str(store), "--address", address, "--json"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    summary = json.loads(out[out.index("{") :])
    assert summary["failed"] == 0
    return summary["submitted"] / summary["elapsed_s"]


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--per-category", type=int, default=6)
    parser.add_argument("--data", type=Path)
    parser.add_argument("--out", type=Path, default=RESULTS / "cluster.json")
    args = parser.parse_args(argv)

    from ray.cluster_utils import Cluster

    from pipeline.synth import make_dataset

    node = {"num_cpus": 1, "object_store_memory": 100 * 2**20}
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        root = args.data or make_dataset(work / "data", per_category=args.per_category).root
        cluster = Cluster(initialize_head=True, head_node_args={**node, "include_dashboard": False})
        try:
            one = ingest_rate(root, work / "s1", cluster.address)
            cluster.add_node(**node)
            cluster.wait_for_nodes()
            two = ingest_rate(root, work / "s2", cluster.address)
        finally:
            cluster.shutdown()
    result = {
        "clips_per_s": {"1_node": round(one, 3), "2_nodes": round(two, 3)},
        "speedup": round(two / one, 2),
        "node": "1 CPU each, raylets on loopback on one machine",
    }
    save_result(result, args.out)
    return result


if __name__ == "__main__":
    main()
