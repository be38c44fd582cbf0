"""Model benchmark: cost of DCA+MSSA against CA+SA, sizes and FLOPs of both presets.

    python -m benchmarks.bench_model            # CPU timing, params, FLOPs
    python -m benchmarks.bench_model --gpu      # also bf16 training samples/s on CUDA

Writes benchmarks/results/model.json and prints it. The two attention variants are timed
in the same process on the same inputs, alternating step by step, and compared by the ratio
of their medians (wall and process CPU time), so a busy machine slows both alike. "full" times the whole model
(the per-frame CNN dominates); "encoder" times the transformer stack alone, where the
attention variants differ.
"""

from __future__ import annotations

import argparse
import platform
import statistics
import sys
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path

if __package__ in (None, ""):  # run as a script: make the repository importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import torch
from torch.utils.flop_counter import FlopCounterMode

from benchmarks.output import save_result
from trainer.model import MSCT, LossWeights, ModelConfig, msct_loss

ROOT = Path(__file__).resolve().parents[1]
VARIANTS = {"dca+mssa": ("dca", "mssa"), "ca+sa": ("ca", "sa")}
CROP = 112  # the default store's face crop (schemas.Recipe); the trunk pools globally


def variant(preset: str, cross: str, self_attn: str) -> ModelConfig:
    data = ModelConfig.preset(preset).to_dict() | {"attn_cross": cross, "attn_self": self_attn}
    return ModelConfig.from_dict(data)


def inputs(
    cfg: ModelConfig, batch: int, frames: int, device: str = "cpu", crop: int = CROP
) -> dict:
    """A random batch of ``crop``² faces with labels covering all four categories."""
    g = torch.Generator().manual_seed(0)
    audio_label = torch.arange(batch) % 2
    video_label = (torch.arange(batch) // 2) % 2
    data = {
        "audio": torch.randn(batch, frames, cfg.audio_channels, generator=g),
        "video": torch.randn(batch, 3, frames, crop, crop, generator=g),
        "audio_label": audio_label,
        "video_label": video_label,
        "label": audio_label | video_label,
    }
    return {k: v.to(device) for k, v in data.items()}


def train_step(model: MSCT, x: dict) -> None:
    """Forward + backward of the full objective (no optimiser: it is the same for both)."""
    out = model(x["audio"], x["video"])
    parts = msct_loss(out, x["audio_label"], x["video_label"], x["label"], None, LossWeights())
    model.zero_grad(set_to_none=True)
    parts.total.backward()


def encoder_step(model: MSCT, tokens: torch.Tensor) -> None:
    """Forward + backward of the transformer stack alone on pre-encoder-shaped tokens."""
    za, zv = model.encoder(tokens, tokens.flip(1))
    model.zero_grad(set_to_none=True)
    (za.square().mean() + zv.square().mean()).backward()


def alternate(steps: dict[str, Callable[[], None]], repeats: int, warmup: int = 2) -> dict:
    """Time each step ``repeats`` times, interleaved, reversing the order every round (ABBA)
    so that load drifts and cache warmth hit all steps alike.

    Returns per step the median wall seconds and median process CPU seconds per call. CPU
    time is the steadier measure on a shared machine: time spent waiting for a core while
    another process runs is not counted.
    """
    names = list(steps)
    wall: dict[str, list[float]] = {n: [] for n in names}
    cpu: dict[str, list[float]] = {n: [] for n in names}
    for i in range(warmup + repeats):
        for name in names if i % 2 == 0 else names[::-1]:
            w0, c0 = time.perf_counter(), time.process_time()
            steps[name]()
            if i >= warmup:
                wall[name].append(time.perf_counter() - w0)
                cpu[name].append(time.process_time() - c0)
    return {
        n: {"wall": statistics.median(wall[n]), "cpu": statistics.median(cpu[n])} for n in names
    }


def cpu_timing(preset: str, batch: int, frames: int, repeats: int) -> dict:
    models, x = {}, None
    for name, (cross, self_attn) in VARIANTS.items():
        torch.manual_seed(0)
        cfg = variant(preset, cross, self_attn)
        models[name] = MSCT(cfg).train()
        x = x or inputs(cfg, batch, frames)
    dim = models["ca+sa"].cfg.dim
    tokens = torch.randn(batch, frames, dim)
    full = alternate({n: (lambda m=m: train_step(m, x)) for n, m in models.items()}, repeats)
    enc = alternate({n: (lambda m=m: encoder_step(m, tokens)) for n, m in models.items()}, repeats)
    result: dict = {"preset": preset, "batch": batch, "frames": frames, "repeats": repeats}
    for label, med in (("full", full), ("encoder", enc)):
        result[label] = {
            "s_per_sample_wall": {n: t["wall"] / batch for n, t in med.items()},
            "s_per_sample_cpu": {n: t["cpu"] / batch for n, t in med.items()},
            "ratio_wall": med["dca+mssa"]["wall"] / med["ca+sa"]["wall"],
            "ratio_cpu": med["dca+mssa"]["cpu"] / med["ca+sa"]["cpu"],
        }
    result["target_ratio"] = 1.3
    result["meets_target"] = result["full"]["ratio_cpu"] <= 1.3
    return result


def size_and_flops(preset: str, frames: int) -> dict:
    """Parameters and forward FLOPs of one clip (batch 1, ``frames`` frames)."""
    report = {}
    for name, (cross, self_attn) in VARIANTS.items():
        cfg = variant(preset, cross, self_attn)
        torch.manual_seed(0)
        model = MSCT(cfg).eval()
        x = inputs(cfg, 1, frames)
        counter = FlopCounterMode(display=False)
        with torch.no_grad(), counter:
            model(x["audio"], x["video"])
        by_module = counter.get_flop_counts()
        report[name] = {
            "params": sum(p.numel() for p in model.parameters()),
            "visual_params": sum(p.numel() for p in model.visual_encoder.parameters()),
            "gflops_per_clip": counter.get_total_flops() / 1e9,
            "gflops_visual": sum(by_module.get("MSCT.visual_encoder", {}).values()) / 1e9,
            "crop_size": CROP,
            "frames": frames,
        }
    return report


#: aten operators that only make views or empty tensors: they launch no kernel.
NO_KERNEL_OPS = frozenset(
    f"aten::{name}"
    for name in (
        "view", "_unsafe_view", "reshape", "as_strided", "expand", "transpose", "t", "permute",
        "slice", "select", "unsqueeze", "squeeze", "split", "split_with_sizes", "chunk",
        "unbind", "narrow", "detach", "alias", "empty", "empty_strided", "resolve_conj",
        "resolve_neg", "lift_fresh", "result_type",
    )
)  # fmt: skip


def _count_aten(fn: Callable[[], object]) -> dict[str, int]:
    """aten operators ``fn`` calls on the CPU (torch.profiler): ``all`` (nested ones too),
    ``top_level`` (those the model's code calls itself) and ``top_level_kernels`` (the
    top-level ones that compute something, not views: about the kernels a GPU launches)."""
    from torch.profiler import ProfilerActivity, profile

    with torch.no_grad(), profile(activities=[ProfilerActivity.CPU]) as prof:
        fn()
    aten = [e for e in prof.events() if e.name.startswith("aten::")]
    top = [e for e in aten if e.cpu_parent is None or not e.cpu_parent.name.startswith("aten::")]
    kernels = [e for e in top if e.name not in NO_KERNEL_OPS]
    return {"all": len(aten), "top_level": len(top), "top_level_kernels": len(kernels)}


def op_counts(preset: str, batch: int, frames: int, crop: int = CROP) -> dict:
    """aten operators of one forward of each attention variant, for the whole model and the
    transformer stack alone (where the variants differ), and the stacks' ratio of kernels."""
    report: dict = {"preset": preset, "batch": batch, "frames": frames}
    for name, (cross, self_attn) in VARIANTS.items():
        cfg = variant(preset, cross, self_attn)
        torch.manual_seed(0)
        model = MSCT(cfg).train()
        x = inputs(cfg, batch, frames, crop=crop)
        tokens = torch.randn(batch, frames, cfg.dim)
        report[name] = {
            "model": _count_aten(partial(model, x["audio"], x["video"])),
            "encoder": _count_aten(partial(model.encoder, tokens, tokens.flip(1))),
        }
    report["encoder_kernels_dca_mssa_over_ca_sa"] = (
        report["dca+mssa"]["encoder"]["top_level_kernels"]
        / report["ca+sa"]["encoder"]["top_level_kernels"]
    )
    return report


def gpu_throughput(preset: str, batch: int, frames: int, steps: int) -> dict:
    """Training samples/s with bf16 autocast and Adam on CUDA, both attention variants."""
    if not torch.cuda.is_available():
        return {"available": False, "reason": "no CUDA device present"}
    device = "cuda"
    result: dict = {"available": True, "device": torch.cuda.get_device_name(), "preset": preset}
    result |= {"batch": batch, "frames": frames, "steps": steps, "samples_per_s": {}}
    for name, (cross, self_attn) in VARIANTS.items():
        torch.manual_seed(0)
        cfg = variant(preset, cross, self_attn)
        model = MSCT(cfg).to(device).train()
        opt = torch.optim.Adam(model.parameters(), lr=1e-4)
        x = inputs(cfg, batch, frames, device)

        def step(model: MSCT = model, opt: torch.optim.Optimizer = opt, x: dict = x) -> None:
            with torch.autocast("cuda", dtype=torch.bfloat16):
                out = model(x["audio"], x["video"])
                parts = msct_loss(
                    out, x["audio_label"], x["video_label"], x["label"], None, LossWeights()
                )
            opt.zero_grad(set_to_none=True)
            parts.total.backward()
            opt.step()

        for _ in range(3):
            step()
        torch.cuda.synchronize()
        start = time.perf_counter()
        for _ in range(steps):
            step()
        torch.cuda.synchronize()
        result["samples_per_s"][name] = batch * steps / (time.perf_counter() - start)
    sps = result["samples_per_s"]
    result["ratio_time_dca_mssa_over_ca_sa"] = sps["ca+sa"] / sps["dca+mssa"]
    result["peak_memory_gib"] = torch.cuda.max_memory_allocated() / 2**30
    return result


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--preset", default="tiny", help="preset timed on CPU (default tiny)")
    parser.add_argument("--batch", type=int, default=4)
    parser.add_argument("--frames", type=int, default=16)
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument(
        "--threads",
        type=int,
        default=1,
        help="CPU threads for the timing (default 1: on a shared machine, multi-threaded "
        "timings mostly measure the neighbours' load)",
    )
    parser.add_argument("--gpu", action="store_true", help="also measure bf16 training on CUDA")
    parser.add_argument("--gpu-preset", default="paper")
    parser.add_argument("--gpu-batch", type=int, default=16)
    parser.add_argument("--gpu-steps", type=int, default=20)
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "model.json")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)

    result = {
        "torch": torch.__version__,
        "machine": platform.machine(),
        "cpu_threads": torch.get_num_threads(),
        "cpu_timing": cpu_timing(args.preset, args.batch, args.frames, args.repeats),
        "presets": {p: size_and_flops(p, args.frames) for p in ModelConfig.PRESETS},
        "aten_ops_per_forward": {
            p: op_counts(p, args.batch, args.frames) for p in ModelConfig.PRESETS
        },
    }
    if args.gpu:
        result["gpu"] = gpu_throughput(args.gpu_preset, args.gpu_batch, args.frames, args.gpu_steps)
    save_result(result, args.out)
    return result


if __name__ == "__main__":
    main()
