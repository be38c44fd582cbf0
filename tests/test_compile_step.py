"""``compile=true``: the training step's model and loss under ``torch.compile`` train as the
eager step does (same seed, same losses within rtol 1e-4), compute the eager step's
parameter gradients (each within a relative norm of ``GRAD_RTOL`` = 1e-3, dropout off, fp32,
for every backend ``compile=true`` may use on the CPU), and the run wires it in."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

import pytest
import torch
from test_train_run import _window_batch
from trainer_fixtures import build_store

from trainer.config.settings import TrainConfig, load_config
from trainer.model import MSCT
from trainer.train import distributed as ddp
from trainer.train.compile_check import GRAD_RTOL, compare_compiled
from trainer.train.optim import build_optimizer
from trainer.train.run import TrainingRun
from trainer.train.step import forward_loss, step_forward, train_step

STEPS = 3
RTOL = 1e-4  # compiled kernels may reorder float sums; the losses must agree to this


def _losses(cfg: TrainConfig, forward: Callable, steps: int = STEPS) -> tuple[list[float], float]:
    """Each step's total loss from seed 0, and the first step's seconds (the compilation)."""
    torch.manual_seed(0)
    model = MSCT(cfg.model)
    optimizer = build_optimizer(cfg, model)
    batch = _window_batch()
    losses, first = [], 0.0
    for i in range(steps):
        t0 = time.perf_counter()
        out = train_step(model, batch, optimizer, cfg, torch.device("cpu"), None, forward=forward)
        losses.append(float(out["total"]))
        if i == 0:
            first = time.perf_counter() - t0
    return losses, first


def _compare(backend: str, record_property: Callable[[str, object], None]) -> None:
    cfg = load_config("tiny", ["device=cpu", "compile=true"])
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # a busy shared machine: one thread spins less
    torch._dynamo.reset()
    try:
        eager, _ = _losses(cfg, forward_loss)
        compiled, compile_s = _losses(cfg, step_forward(cfg, backend=backend))
    finally:
        # Restored for the tests after this one in the process: a run in process and one
        # in a subprocess must use the same thread count to give the same floats.
        torch.set_num_threads(threads)
        torch._dynamo.reset()
    record_property(f"compile_s_{backend}", round(compile_s, 1))
    print(f"compile ({backend}) took {compile_s:.1f}s; losses eager {eager} compiled {compiled}")
    assert compiled == pytest.approx(eager, rel=RTOL)
    assert eager[-1] < eager[0]  # it trains: the comparison is of steps that move weights


def test_the_compile_key_defaults_to_eager() -> None:
    for preset in ("tiny", "paper"):
        cfg = load_config(preset)
        assert cfg.compile is False and cfg.sync_every == 50
        assert step_forward(cfg) is forward_loss
    assert step_forward(load_config("tiny", ["compile=true"])) is not forward_loss


def test_compiled_step_trains_like_eager(record_property: Callable[[str, object], None]) -> None:
    # Dynamo's graph capture and AOT autograd, the compiled path without inductor's C++ build.
    _compare("aot_eager", record_property)


# A model as small as keeps every kind of layer of the tiny preset: two Res2Net stages
# with CBAM between them, the stem and WTConv (whose near-zero gradients a review took for
# an inductor fault: trainer/train/compile_check.py), MSSA, DCA. Inductor compiles one C++ kernel
# per fused group, so fewer layers compile faster (its compiled code is cached on disk).
SMALL = [
    "device=cpu", "model.dim=16", "model.depth=1", "model.heads=4", "model.mlp_ratio=1.0",
    "model.visual_stem=8", "model.visual_widths=[8,16]", "model.visual_depths=[1,1]",
]  # fmt: skip
BACKENDS = ("aot_eager", "inductor")  # what compile=true may use on the CPU


@pytest.mark.parametrize("backend", BACKENDS)
def test_compiled_step_computes_the_eager_gradients(
    backend: str, record_property: Callable[[str, object], None]
) -> None:
    cfg = load_config("tiny", SMALL)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        report = compare_compiled(cfg, _window_batch(), torch.device("cpu"), backend)
    finally:
        torch.set_num_threads(threads)
        torch._dynamo.reset()
    record_property(f"max_grad_rel_error_{backend}", report["max_rel_error"])
    print(report)
    assert report["parameters"] == sum(1 for _ in MSCT(cfg.model).parameters())
    assert report["loss_compiled"] == pytest.approx(report["loss_eager"], rel=RTOL)
    assert report["ok"] and report["max_rel_error"] <= GRAD_RTOL, report


def test_the_gradient_check_sees_a_wrong_backward() -> None:
    """The comparison can fail: a backward that doubles the visual encoder's gradients (as
    the inductor fault did) is caught, though the loss is the same."""
    from trainer.train.compile_check import gradient_errors, step_gradients
    from trainer.train.step import forward_loss

    cfg = load_config("tiny", [*SMALL, "grad_clip=0", "model.dropout=0"])
    loss, eager = step_gradients(cfg, _window_batch(), torch.device("cpu"), forward_loss)

    def doubled(model: torch.nn.Module, *args: object) -> object:
        parts = forward_loss(model, *args)  # type: ignore[arg-type]
        for p in model.visual_encoder.parameters():  # type: ignore[union-attr]
            p.register_hook(lambda g: 2 * g)
        return parts

    same_loss, wrong = step_gradients(cfg, _window_batch(), torch.device("cpu"), doubled)  # type: ignore[arg-type]
    assert same_loss == loss
    errors = gradient_errors(eager, wrong)
    visual = [n for n in errors if n.startswith("visual_encoder.")]
    caught = [n for n in visual if errors[n] > GRAD_RTOL]
    assert len(caught) > 0.8 * len(visual), sorted(set(visual) - set(caught))
    assert max(errors[n] for n in visual) == pytest.approx(1.0)  # a gradient above the floor
    assert all(errors[n] == 0 for n in errors if not n.startswith("visual_encoder."))


def test_gradients_that_are_rounding_noise_do_not_count() -> None:
    """A gradient that is zero but for rounding (the WTConv bias before a train-mode
    BatchNorm) differs by 100 % between any two correct computations; against the floor,
    that is nothing."""
    from trainer.train.compile_check import GRAD_FLOOR, gradient_errors

    reference = {"weight": torch.tensor([3.0, 4.0]), "bias": torch.tensor([1e-9])}
    noisy = {"weight": torch.tensor([3.0, 4.0]), "bias": torch.tensor([-1e-9])}
    assert gradient_errors(reference, noisy)["bias"] == pytest.approx(2e-9 / (GRAD_FLOOR * 5))
    assert gradient_errors(reference, noisy, floor=0.0)["bias"] == pytest.approx(2.0)
    wrong = {"weight": torch.tensor([6.0, 8.0]), "bias": torch.tensor([1e-9])}
    assert gradient_errors(reference, wrong)["weight"] == pytest.approx(1.0)


def test_a_run_with_compile_true_steps_through_the_compiled_forward(tmp_path: Path) -> None:
    store = build_store(
        tmp_path / "store", crop_size=24, frames=16, counts={"train": 1, "val": 1, "test": 1}
    )
    cfg = load_config("tiny", ["device=cpu", "compile=true", "batch_size=4", "window=16"])
    training = TrainingRun(
        cfg, store, "default", tmp_path / "run", resume=False, log=lambda _: None,
        runs_root=tmp_path, info=ddp.DistInfo(), device=torch.device("cpu"),
    )  # fmt: skip
    training.setup()
    assert training.forward is not forward_loss and callable(training.forward)
    # Static shapes: every training batch is full (the last partial one is dropped).
    assert training.loader.drop_last and len(training.loader.dataset) >= cfg.batch_size  # type: ignore[arg-type]
