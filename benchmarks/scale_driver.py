"""Driver measures of ``bench_scale``: start-up to the first commit, peak memory, stop time.

Registered in :data:`MEASURES` (``benchmarks.bench_scale`` adds them at every size):

- ``first_commit``: an AV-Deepfake1M tree of ``size`` clip paths (hard links to one
  small real synthetic clip, every record ``real``, so every task commits) ingested
  by the real ``mscct-pipeline ingest`` (two workers). Measured: seconds from the
  command's start to its first committed clip, the driver's peak RSS (``VmHWM``) by
  then (the whole scan is held; the skip check and submission are windowed), then
  Ctrl-C (SIGINT to its process group, as a terminal sends it): seconds to exit and
  the exit code (130 expected). Before that, ``scan_s``: the dataset scan alone
  (``pipeline.datasets.scan``, a fresh interpreter) on the same tree, the part of a rerun
  with nothing to do that ``bench_scale``'s ``resume`` measure leaves out. Above
  :data:`TREE_MAX` paths it is not run (building the tree alone takes minutes; the
  no-media measure covers the memory at 1 M).
- ``scan_submit_rss``: ``run_ingest`` in a fresh interpreter on an AV-Deepfake1M
  metadata file of ``size`` records and no media (``bench_scan``'s generator): every
  record is a missing row, so it measures the scan and the driver around it, not
  tasks. Peak RSS and wall time.

Run alone: ``python -m benchmarks.scale_driver --size 100000`` prints both (``--out FILE``
also writes them as JSON).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import schemas  # noqa: E402
from benchmarks.bench_scale import LINKS_PER_FILE  # noqa: E402
from benchmarks.bench_scan import write_metadata  # noqa: E402

#: Largest tree ``first_commit`` builds.
TREE_MAX = 100_000
BIN = Path(sys.executable).parent


def build_tree(root: Path, paths: int, origin: Path) -> None:
    """An AV-Deepfake1M tree of ``paths`` real clips, each a hard link of ``origin``
    (or of a copy of it: a file takes at most :data:`LINKS_PER_FILE` links)."""
    train = root / "train"
    records: list[dict[str, Any]] = []
    for i in range(paths):
        if i and i % LINKS_PER_FILE == 0:
            origin = Path(shutil.copy(origin, root / f".origin{i}.mp4"))
        rel = f"id{i // 1000:05d}/v{(i // 40) % 25:010d}/{i % 40:05d}/real.mp4"
        target = train / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        os.link(origin, target)
        records.append({
            "file": rel, "original": None, "split": "train", "modify_type": "real",
            "audio_model": "", "fake_segments": [], "audio_fake_segments": [],
            "visual_fake_segments": [], "video_frames": 50, "audio_frames": 32000,
        })  # fmt: skip
    (root / "train_metadata.json").write_text(json.dumps(records))


def small_clip(work: Path) -> Path:
    """One small real synthetic clip (the real one of a one-identity FakeAVCeleb tree)."""
    from pipeline.synth import make_dataset

    made = make_dataset(work / "synth", per_category=1, seed=0, workers=1)
    return next(made.root.rglob("*.mp4"))


def _peak_rss_mib(pid: int) -> float | None:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return None


def _committed(store: Path) -> int:
    try:
        return sum(1 for _ in schemas.committed_records(store))
    except (OSError, schemas.StoreError):
        return 0


_SCAN = """
import sys, time
sys.path.insert(0, {repo!r})
from pipeline.datasets import scan
start = time.perf_counter()
result = scan({root!r}, "avdeepfake1m")
print(round(time.perf_counter() - start, 2), len(result.clips))
"""


def scan_seconds(root: Path) -> float:
    """Seconds of the dataset scan of ``root`` alone, in a fresh interpreter."""
    code = _SCAN.format(repo=str(ROOT), root=str(root))
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          check=True, cwd=ROOT)  # fmt: skip
    return float(proc.stdout.split()[0])


def first_commit(work: Path, paths: int, timeout_s: float = 900) -> dict[str, Any]:
    """Start an ingest of a ``paths``-path tree; time its first commit, then Ctrl-C it."""
    root, store = work / "AV-Deepfake1M", work / "store"
    root.mkdir(parents=True)
    started = time.perf_counter()
    build_tree(root, paths, small_clip(work))
    build_s = time.perf_counter() - started
    scan_s = scan_seconds(root)
    cmd = [str(BIN / "mscct-pipeline"), "ingest", str(root), "--store", str(store),
           "--workers", "2", "--dataset", "avdeepfake1m"]  # fmt: skip
    started = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                            text=True, start_new_session=True)  # fmt: skip
    out: dict[str, Any] = {"paths": paths, "tree_build_s": round(build_s, 1), "scan_s": scan_s}
    try:
        while proc.poll() is None and time.perf_counter() - started < timeout_s:
            if _committed(store):
                out["first_commit_s"] = round(time.perf_counter() - started, 2)
                break
            time.sleep(0.1)
        out["driver_peak_rss_mib"] = _peak_rss_mib(proc.pid)
        sent = time.perf_counter()
        os.killpg(proc.pid, signal.SIGINT)
        _, stderr = proc.communicate(timeout=120)
        out["stop_s"] = round(time.perf_counter() - sent, 2)
        out["exit_code"] = proc.returncode
        out["last_line"] = (stderr.strip().splitlines() or [""])[-1][-200:]
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    return out


_PROBE = """
import json, sys, time
sys.path.insert(0, {repo!r})
from pathlib import Path
from pipeline.ingest.driver import IngestOptions, run_ingest
start = time.perf_counter()
r = run_ingest(Path({root!r}), IngestOptions(store=Path({store!r}), workers=1,
               dataset="avdeepfake1m"))
hwm = next(l for l in open('/proc/self/status') if l.startswith('VmHWM:'))
print(json.dumps({{"wall_s": round(time.perf_counter() - start, 2),
                  "missing": len(r.scan.missing), "submitted": r.submitted,
                  "peak_rss_mib": round(int(hwm.split()[1]) / 1024, 1)}}))
"""


def scan_submit_rss(work: Path, records: int) -> dict[str, Any]:
    """Peak RSS of ``run_ingest`` on a ``records``-record metadata file with no media."""
    root = work / "AV-Deepfake1M"
    root.mkdir(parents=True)
    write_metadata(root / "train_metadata.json", records)
    code = _PROBE.format(repo=str(ROOT), root=str(root), store=str(work / "store"))
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          check=True, cwd=ROOT)  # fmt: skip
    figures: dict[str, Any] = json.loads(proc.stdout.strip().splitlines()[-1])
    return {"records": records, **figures}


def _in_scratch(ctx: Any, name: str) -> Path:
    work = Path(ctx.scratch) / name
    shutil.rmtree(work, ignore_errors=True)
    return work


def first_commit_measure(ctx: Any) -> dict[str, Any]:
    if ctx.size > TREE_MAX:
        return {"skipped": f"tree of {ctx.size} paths not built (at most {TREE_MAX})"}
    work = _in_scratch(ctx, "first_commit")
    try:
        return first_commit(work, ctx.size)
    finally:
        shutil.rmtree(work, ignore_errors=True)


def scan_submit_rss_measure(ctx: Any) -> dict[str, Any]:
    work = _in_scratch(ctx, "scan_rss")
    try:
        return scan_submit_rss(work, ctx.size)
    finally:
        shutil.rmtree(work, ignore_errors=True)


#: name -> measure(context) for ``bench_scale``.
MEASURES = {"first_commit": first_commit_measure, "scan_submit_rss": scan_submit_rss_measure}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=10_000, help="clip paths / records")
    parser.add_argument("--only", choices=sorted(MEASURES), help="run one measure")
    parser.add_argument("--out", type=Path, help="also write the results to this JSON file")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="scale-driver-") as tmp:
        result: dict[str, Any] = {}
        for name in [args.only] if args.only else MEASURES:
            work = Path(tmp) / name
            run = first_commit if name == "first_commit" else scan_submit_rss
            result[name] = run(work, args.size)
            print(json.dumps({name: result[name]}), flush=True)
    if args.out:
        from benchmarks.output import save_result

        save_result({"benchmark": "scale_driver", "size": args.size, **result}, args.out)


if __name__ == "__main__":
    main()
