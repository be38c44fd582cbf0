"""Peak memory of one worker processing one long or large clip.

    python -m benchmarks.bench_clip_memory [--quick] [--out PATH] [--workdir DIR]

Makes, with ffmpeg, from one synthetic face clip (``pipeline.synth``: the first real
clip of ``plan(1, 1, seed=3)``, looped): a 60-s 1080p clip (the face scaled to the
frame's height and centred on a black 1920 × 1080 frame) and a 2-s 8K clip
(7680 × 4320, made the same way), plus the 224² clip itself as the baseline. Each is
processed by ``preprocess_clip`` with the recipe ``mscct-pipeline ingest`` uses by
default (:func:`pipeline.ingest.recipe.ingest_recipe`) in a fresh Python process,
which reports its peak resident memory (``VmHWM``, its own: ``ru_maxrss`` would carry the
memory of whatever process started it across ``exec``): what one Ray worker holds for
that clip, its imports, dlib's models and its decoder included (an ffmpeg process it
starts is reported apart, ``ffmpeg_peak_rss_mib``: the largest child's ``ru_maxrss``, an
upper bound that includes the worker's own memory when it started the child). Records per
clip the peak RSS in MiB, the decoded size and scale, the decoder, the frames and the
seconds.

Target (issue 30, item 4): under 1 GiB per worker whatever the clip's duration. The
frames a clip holds at once are bounded by its look-ahead
(:mod:`pipeline.clip.clip_stream`), so the 60-s clip holds what a 2-s one does, plus
its crops. ``--quick`` makes a 2-s 1080p clip and a 0.4-s 8K clip (a smoke run, for
the tests). Results go to ``benchmarks/results/clip_memory.json``.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from dataclasses import replace
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # run as a script: make the repository importable
    sys.path.insert(0, str(ROOT))

from benchmarks.output import save_result  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results"
TARGET_MIB = 1024
#: (name, width, height, seconds) of the clips made; ``--quick`` shortens them.
CLIPS = (("1080p_60s", 1920, 1080, 60.0), ("8k_2s", 7680, 4320, 2.0))
QUICK_SECONDS = {"1080p_60s": 2.0, "8k_2s": 0.4}

# What the worker process runs: one clip, then its peak RSS and what it decoded.
WORKER = """
import json, resource, sys, time
from pipeline.clip.transform import preprocess_clip
def peak_mib():  # VmHWM: this process's own peak (ru_maxrss keeps a forking parent's across exec)
    with open("/proc/self/status") as status:
        line = next(x for x in status if x.startswith("VmHWM:"))
    return round(int(line.split()[1]) / 1024, 1)
from pipeline.ingest.recipe import ingest_recipe
recipe = ingest_recipe()
clock = time.perf_counter()
out = preprocess_clip(sys.argv[1], recipe)
print(json.dumps({
    "peak_rss_mib": peak_mib(),
    "ffmpeg_peak_rss_mib": round(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024, 1),
    "seconds": round(time.perf_counter() - clock, 2),
    "frames": len(out.face),
    "source_size": [out.source_width, out.source_height],
    "decoded_size": [out.decoded_width, out.decoded_height],
    "decode_scale": out.decode_scale,
    "decoded_by": out.decoded_by,
    "landmarks": recipe.landmarks,
}))
"""


def face_clip(folder: Path) -> Path:
    """The synthetic 224² face clip every test clip is made from (a few seconds)."""
    from pipeline.synth.files import write_clip
    from pipeline.synth.plan import plan

    spec = plan(1, 1, seed=3)[1][0][1]
    spec = replace(spec, rel_path="face.mp4")
    write_clip(spec, folder)
    return folder / "face.mp4"


def framed(face: Path, out: Path, width: int, height: int, seconds: float) -> Path:
    """``face`` looped to ``seconds``, scaled to ``height`` and centred on ``width × height``."""
    pad = (width - height) // 2
    subprocess.run(
        ["ffmpeg", "-nostdin", "-v", "error", "-y", "-stream_loop", "-1", "-i", f"file:{face}",
         "-t", str(seconds), "-vf", f"scale={height}:{height},pad={width}:{height}:{pad}:0",
         "-c:v", "libx264", "-preset", "ultrafast", "-pix_fmt", "yuv420p", "-c:a", "aac",
         f"file:{out}"],
        check=True, timeout=1800,
    )  # fmt: skip
    return out


def worker_peak(path: Path) -> dict[str, object]:
    """Process ``path`` in a fresh Python process; what it reports (:data:`WORKER`)."""
    out = subprocess.run(
        [sys.executable, "-c", WORKER, str(path)],
        cwd=ROOT, check=True, capture_output=True, text=True, timeout=3600,
    )  # fmt: skip
    return dict(json.loads(out.stdout.strip().splitlines()[-1]))


def run(workdir: Path, quick: bool) -> dict[str, object]:
    face = face_clip(workdir)
    clips: dict[str, dict[str, object]] = {"baseline_224": worker_peak(face)}
    for name, width, height, seconds in CLIPS:
        seconds = QUICK_SECONDS[name] if quick else seconds
        path = framed(face, workdir / f"{name}.mp4", width, height, seconds)
        clips[name] = {"seconds_of_video": seconds, **worker_peak(path)}
    peaks = [float(str(c["peak_rss_mib"])) for c in clips.values()]
    return {
        "quick": quick,
        "target_peak_rss_mib": f"< {TARGET_MIB}",
        "max_peak_rss_mib": max(peaks),
        "within_target": max(peaks) < TARGET_MIB,
        "clips": clips,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="short clips (a smoke run)")
    parser.add_argument("--out", type=Path, default=RESULTS / "clip_memory.json")
    parser.add_argument("--workdir", type=Path, default=None, help="where the clips are made")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(dir=args.workdir) as tmp:
        result = run(Path(tmp), args.quick)
    save_result(result, args.out)
    return 0 if result["within_target"] else 1


if __name__ == "__main__":
    sys.exit(main())
