"""``bench_gpu --cpu-smoke`` runs every step of the GPU script on the CPU, so the script
cannot rot between GPU runs."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
STEPS = ("env", "store", "loader", "step", "attention", "flops", "train", "step_compiled")
STEPS += ("summary",)


@pytest.mark.slow
def test_cpu_smoke_runs_every_step_ok(tmp_path: Path) -> None:
    out = tmp_path / "out"
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    cmd = [sys.executable, "-m", "benchmarks.bench_gpu", "--out-dir", str(out), "--cpu-smoke"]
    cmd += ["--work-dir", str(tmp_path / "work")]
    run = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=400)
    data = json.loads((out / "gpu.json").read_text())
    steps = data["steps"]
    assert {name: steps[name]["status"] for name in STEPS} == dict.fromkeys(STEPS, "ok"), (
        run.stdout[-3000:] + run.stderr[-3000:]
    )
    assert run.returncode == 0 and data["mode"] == "cpu-smoke"
    eager, compiled = steps["step"]["result"], steps["step_compiled"]["result"]
    assert compiled["compile_backend"] == "aot_eager"
    # The compiled step's gradients were checked against eager before it was timed.
    check = compiled["gradient_check"]
    assert check["ok"] is True and check["max_rel_error"] <= check["rtol"], check
    assert steps["summary"]["result"]["compiled_gradients_agree"] is True
    for key in (k for k in eager if k.startswith("batch_")):
        assert eager[key]["windows_per_s"] > 0 < compiled[key]["windows_per_s"]
        # Same seed, same batch: the compiled step trained as the eager one did.
        assert compiled[key]["last_loss"] == pytest.approx(eager[key]["last_loss"], rel=1e-4)
    attention = steps["attention"]["result"]
    assert set(attention["windows_per_s"]) == {"dca+mssa", "ca+sa"}
    ops = attention["aten_ops_per_forward"]
    assert (
        ops["dca+mssa"]["encoder"]["top_level_kernels"]
        > ops["ca+sa"]["encoder"]["top_level_kernels"]
    )
    assert steps["flops"]["result"]["flops_per_window"] > 0
    assert steps["train"]["result"]["epochs_logged"] == 2
    summary = steps["summary"]["result"]
    assert summary["run_over_step"] > 0 and summary["flops_per_window"] > 0
    assert set(summary["compiled_over_eager"]) == {k for k in eager if k.startswith("batch_")}
    assert summary["bf16_peak_tflops"] is None and "mfu" not in summary  # no GPU, no MFU


def test_bf16_peaks_are_looked_up_by_device_name() -> None:
    from benchmarks.bench_gpu import bf16_peak_tflops

    assert bf16_peak_tflops("NVIDIA H200") == 989.0
    assert bf16_peak_tflops("NVIDIA H100 80GB HBM3") == 989.0
    assert bf16_peak_tflops("NVIDIA H100 PCIe") == 756.0
    assert bf16_peak_tflops("Some GPU") is None and bf16_peak_tflops(None) is None
