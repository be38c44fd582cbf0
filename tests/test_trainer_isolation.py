"""The trainer imports and trains without the media stack (ray, dlib, ffmpeg, speech features)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from trainer_fixtures import build_store

ROOT = Path(__file__).resolve().parents[1]
MEDIA = ("ray", "dlib", "ffmpeg", "python_speech_features")

# Run before anything else in the child: importing a blocked name raises ImportError.
PRELUDE = """
import sys
for name in {blocked!r}:
    sys.modules[name] = None
from trainer.cli import main
main(sys.argv[1:])
"""


def _run_blocked(args: list[str], blocked: tuple[str, ...]) -> subprocess.CompletedProcess[str]:
    code = PRELUDE.format(blocked=blocked)
    return subprocess.run(
        [sys.executable, "-c", code, *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=600,
    )


@pytest.mark.slow
def test_trains_without_media_stack(tmp_path: Path) -> None:
    store = build_store(
        tmp_path / "store", crop_size=24, frames=16, counts={"train": 4, "val": 2, "test": 2}
    )
    out = tmp_path / "run"
    args = ["run", "--store", str(store), "--out", str(out), "--set", "epochs=1"]
    result = _run_blocked(args, MEDIA)
    assert result.returncode == 0, result.stderr[-3000:]
    report = json.loads((out / "report.json").read_text())
    assert report["test"]["n"] == 8
    # The probe is real: the same prelude makes an import of a blocked name fail.
    probe = _run_blocked(["--help"], (*MEDIA, "trainer.cli"))
    assert probe.returncode != 0


def test_predict_without_pipeline_says_what_to_install(tmp_path: Path) -> None:
    result = _run_blocked(["predict", str(tmp_path / "x.pt"), "v.mp4"], (*MEDIA, "pipeline"))
    assert result.returncode == 2
    assert result.stderr.strip() == (
        "error: predict needs the pipeline extras: pip install 'mscct[pipeline]'"
    )
