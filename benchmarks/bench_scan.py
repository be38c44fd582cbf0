"""Scan benchmark: peak memory and time of the AV-Deepfake1M scan on a large metadata file.

Run ``python -m benchmarks.bench_scan`` (quick: 50,000 records, seconds) or with
``--records 1000000`` (the size of the release's train metadata, a few minutes).
Writes ``benchmarks/results/scan.json`` and prints it.

The file is generated in a temporary folder: ``N`` records in the release's
format (``train_metadata.json``, a JSON array; a quarter each real, audio, visual
and both modified, one to three fake segments each). No media files are written,
so every record is a ``missing`` row: the scan still reads, validates and checks
every record and path, and holds one report row per record. Each measurement runs
in a fresh Python process and reports its peak resident memory
(the kernel's high-water mark ``VmHWM``) and wall time:

- ``scan``: ``pipeline.datasets.scan(root, "avdeepfake1m")``, which reads the
  array streaming with ``ijson``;
- ``json_load``: ``json.load`` of the same file (what a loader that reads the
  whole document does, before it has built anything from it);
- ``imports``: the interpreter with the scan's modules imported and nothing read
  (the floor of ``scan``), and ``bare_python``: the bare interpreter (that of ``json_load``).
  The ratio compares the growth above each floor.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from benchmarks.output import save_result  # noqa: E402

RESULT = ROOT / "benchmarks" / "results" / "scan.json"
KINDS = ("real", "audio_modified", "visual_modified", "both_modified")

# Each snippet prints {"peak_rss_mb": ..., "wall_s": ..., ...} as its last line.
_PROBES = {
    "bare_python": "out = {}",
    "imports": "import ijson, pipeline.datasets.avdeepfake1m; out = {}",
    "scan": (
        "from pipeline.datasets import scan; r = scan(ROOT, 'avdeepfake1m'); "
        "out = {'clips': len(r.clips), 'missing': len(r.missing), 'refused': len(r.refused)}"
    ),
    "json_load": "import json; d = json.load(open(ROOT + '/train_metadata.json')); out = {'records': len(d)}",
}
_WRAPPER = """
import json, sys, time
sys.path.insert(0, {repo!r})
ROOT = {root!r}
start = time.perf_counter()
{probe}
out['wall_s'] = round(time.perf_counter() - start, 3)
# VmHWM, not ru_maxrss: the latter counts the parent's pages the child held between
# fork and exec, which would put every probe's floor at the parent's size.
hwm = next(l for l in open('/proc/self/status') if l.startswith('VmHWM:'))
out['peak_rss_mb'] = round(int(hwm.split()[1]) / 1024, 1)
print(json.dumps(out))
"""


def write_metadata(path: Path, records: int, seed: int = 0) -> int:
    """Write ``records`` AV-Deepfake1M-style records as one JSON array; return the file's bytes."""
    rng = random.Random(seed)
    with path.open("w") as out:
        out.write("[")
        for i in range(records):
            out.write(("," if i else "") + json.dumps(_record(i, rng)))
        out.write("]")
    return path.stat().st_size


def _record(i: int, rng: random.Random) -> dict[str, Any]:
    kind = KINDS[i % 4]
    folder = f"id{i // 40:05d}/{rng.getrandbits(40):011x}/{i % 40:05d}"
    fake: list[list[float]] = []
    if kind != "real":
        start = 0.0
        for _ in range(rng.randint(1, 3)):
            start += round(rng.uniform(0.2, 2.0), 3)
            fake.append([start, round(start + rng.uniform(0.1, 0.8), 3)])
            start = fake[-1][1]
    audio = fake if kind in ("audio_modified", "both_modified") else []
    visual = fake if kind in ("visual_modified", "both_modified") else []
    return {
        "file": f"{folder}/{'real' if kind == 'real' else 'fake_' + kind}.mp4",
        "original": None if kind == "real" else f"{folder}/real.mp4",
        "split": "train",
        "modify_type": kind,
        "audio_model": "yourtts" if audio else "",
        "fake_segments": fake,
        "audio_fake_segments": audio,
        "visual_fake_segments": visual,
        "video_frames": rng.randint(100, 500),
        "audio_frames": rng.randint(64000, 320000),
    }


def measure(probe: str, root: Path) -> dict[str, Any]:
    """Run one probe in a fresh interpreter; its figures as a dict."""
    code = _WRAPPER.format(repo=str(ROOT), root=str(root), probe=_PROBES[probe])
    proc = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=ROOT
    )
    figures: dict[str, Any] = json.loads(proc.stdout.strip().splitlines()[-1])
    return figures


def run(records: int) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="bench-scan-") as tmp:
        root = Path(tmp) / "AV-Deepfake1M"
        root.mkdir()
        started = time.perf_counter()
        size = write_metadata(root / "train_metadata.json", records)
        generated_s = time.perf_counter() - started
        results = {name: measure(name, root) for name in _PROBES}
    floor, bare = results["imports"]["peak_rss_mb"], results["bare_python"]["peak_rss_mb"]
    scan, load = results["scan"], results["json_load"]
    return {
        "benchmark": "scan",
        "records": records,
        "metadata_mb": round(size / 2**20, 1),
        "generate_s": round(generated_s, 1),
        "media": "none (every record is a missing row)",
        **results,
        "scan_rss_above_imports_mb": round(scan["peak_rss_mb"] - floor, 1),
        "json_load_rss_above_python_mb": round(load["peak_rss_mb"] - bare, 1),
        "json_load_over_scan_rss": round(
            (load["peak_rss_mb"] - bare) / max(scan["peak_rss_mb"] - floor, 1e-9), 2
        ),
        "scan_records_per_s": round(records / max(scan["wall_s"], 1e-9)),
        "python": platform.python_version(),
        "cpus": os.cpu_count(),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, default=50_000, help="records in the file")
    parser.add_argument("--out", type=Path, default=RESULT, help="where the JSON goes")
    args = parser.parse_args()
    if args.records < 1:
        parser.error("--records must be at least 1")
    save_result(run(args.records), args.out)


if __name__ == "__main__":
    main()
