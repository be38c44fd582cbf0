"""``model.dca_form``: the paper's Eq. 1 against a hand-written reference, the Differential
Transformer's form against the computation before the switch (bit for bit), the default,
and the legacy reading of configs saved before the key."""

from __future__ import annotations

import math
import types
from pathlib import Path

import frozen_attention as old
import pytest
import torch

from trainer.config.settings import TrainConfig, load_config
from trainer.evaluate.inference import model_from_checkpoint
from trainer.model import MSCT, ModelConfig
from trainer.model.attention import (
    DifferentialCrossAttention,
    MultiScaleKeys,
    PaperDifferentialCrossAttention,
)
from trainer.train.checkpoint import save_checkpoint


def tiny(**overrides: object) -> ModelConfig:
    return ModelConfig.from_dict(ModelConfig.preset("tiny").to_dict() | overrides)


def test_paper_dca_is_eq_1_written_out_by_hand() -> None:
    """Eq. 1 for one small case, every product spelt as a loop over heads and rows."""
    torch.manual_seed(0)
    dim, heads, n = 8, 2, 4
    dca = PaperDifferentialCrossAttention(dim, heads).eval()
    a, b = torch.randn(1, n, dim), torch.randn(1, n, dim)
    mask = torch.tensor([[True, True, True, False]])
    with torch.no_grad():
        expected = _eq_1_by_hand(dca, a, b, mask)
        got = dca(a, b, mask)[0]
    torch.testing.assert_close(got, expected, rtol=0, atol=1e-5)
    assert not any("lambda" in name or "norm" in name for name, _ in dca.named_parameters())


def _eq_1_by_hand(
    dca: PaperDifferentialCrossAttention, a: torch.Tensor, b: torch.Tensor, mask: torch.Tensor
) -> torch.Tensor:
    """Eq. 1 of the paper for batch item 0 of a, b (1, n, dim) → (n, dim), after ``proj``."""
    n, dim, heads = a.shape[1], a.shape[2], dca.heads
    w_qkv, b_qkv = dca.qkv.weight, dca.qkv.bias
    q_a = a[0] @ w_qkv[:dim].T + b_qkv[:dim]  # (n, dim) each
    k_a = a[0] @ w_qkv[dim : 2 * dim].T + b_qkv[dim : 2 * dim]
    v_a = a[0] @ w_qkv[2 * dim :].T + b_qkv[2 * dim :]
    q_b = b[0] @ dca.q_cross.weight.T + dca.q_cross.bias
    d = dim // heads
    heads_out = []
    for h in range(heads):
        cols = slice(h * d, (h + 1) * d)
        out = torch.zeros(n, d)
        for i in range(n):
            s_aa = torch.tensor([q_a[i, cols] @ k_a[j, cols] / math.sqrt(d) for j in range(n)])
            s_ba = torch.tensor([q_b[i, cols] @ k_a[j, cols] / math.sqrt(d) for j in range(n)])
            s_aa[~mask[0]] = s_ba[~mask[0]] = float("-inf")  # the padded key
            attn_aa, attn_ba = s_aa.softmax(0), s_ba.softmax(0)  # "traditional attention"
            out[i] = (attn_aa - attn_ba) @ v_a[:, cols]  # weight 1, no λ, no norm
        heads_out.append(out)
    return torch.cat(heads_out, dim=1) @ dca.proj.weight.T + dca.proj.bias


def test_paper_dca_is_the_default_and_differs_from_the_diff_transformer_form() -> None:
    for preset in ("tiny", "paper"):
        assert load_config(preset).model.dca_form == "paper"
    paper, diff = MSCT(tiny()), MSCT(tiny(dca_form="diff_transformer"))
    assert isinstance(paper.encoder.blocks[0].audio.cross_attn, PaperDifferentialCrossAttention)
    assert isinstance(diff.encoder.blocks[0].audio.cross_attn, DifferentialCrossAttention)
    extra = {n for n, _ in diff.named_parameters()} - {n for n, _ in paper.named_parameters()}
    assert extra and all("lambda" in n or "head_norm" in n for n in extra)
    with pytest.raises(ValueError, match="dca_form"):
        tiny(dca_form="lambda")


def _frozen_forwards(model: MSCT) -> None:
    """Give ``model``'s attention layers the forward of the frozen pre-switch code."""
    for module in model.modules():
        for new, frozen in (
            (DifferentialCrossAttention, old.DifferentialCrossAttention),
            (MultiScaleKeys, old.MultiScaleKeys),
        ):
            if isinstance(module, new):
                module.forward = types.MethodType(frozen.forward, module)  # type: ignore[method-assign]
        if isinstance(module, DifferentialCrossAttention):
            module.lam = types.MethodType(old.DifferentialCrossAttention.lam, module)  # type: ignore[method-assign]
            frozen_norm = old.HeadRMSNorm.forward
            module.head_norm.forward = types.MethodType(frozen_norm, module.head_norm)  # type: ignore[method-assign]


def _step(model: MSCT, masked: bool) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """Fused logits and every parameter gradient of one forward and backward, fixed input."""
    g = torch.Generator().manual_seed(1)
    audio = torch.randn(3, 6, 104, generator=g)
    video = torch.randn(3, 3, 6, 24, 24, generator=g)
    mask = torch.ones(3, 6, dtype=torch.bool)
    if masked:
        mask[1, 4:] = False
    out = model(audio, video, mask)
    (out.fused_logits.sum() + out.audio_logits.sum() + out.video_tokens.square().mean()).backward()
    grads = {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}
    return out.fused_logits.detach(), grads


@pytest.mark.parametrize("masked", [False, True])
def test_diff_transformer_form_is_todays_model_bit_for_bit(masked: bool) -> None:
    cfg = tiny(dca_form="diff_transformer", dropout=0.0)
    torch.manual_seed(0)
    model = MSCT(cfg)
    torch.manual_seed(0)
    reference = MSCT(cfg)
    # The same initialisation as before the switch: parameter for parameter, bit for bit.
    for (name, p), (_, q) in zip(
        model.named_parameters(), reference.named_parameters(), strict=True
    ):
        assert torch.equal(p, q), name
    _frozen_forwards(reference)
    # The frozen forward really is another computation path (it has the cast calls).
    ops = torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CPU])
    with torch.no_grad(), ops:
        reference.encoder(torch.randn(1, 4, cfg.dim), torch.randn(1, 4, cfg.dim))
    assert any(e.name == "aten::to" for e in ops.events())
    logits, grads = _step(model, masked)
    ref_logits, ref_grads = _step(reference, masked)
    assert torch.equal(logits, ref_logits)
    assert grads.keys() == ref_grads.keys()
    for name, grad in grads.items():
        assert torch.equal(grad, ref_grads[name]), name


def test_a_checkpoint_config_from_before_the_key_loads_as_diff_transformer() -> None:
    saved = load_config("tiny").to_dict()
    del saved["model"]["dca_form"]  # as every checkpoint before the key
    assert TrainConfig.from_stored(saved).model.dca_form == "diff_transformer"
    assert TrainConfig.from_dict(saved).model.dca_form == "paper"  # a user's file: the default
    saved["model"]["dca_form"] = "paper"
    assert TrainConfig.from_stored(saved).model.dca_form == "paper"


def test_a_checkpoint_from_before_the_key_evaluates_with_its_own_dca(tmp_path: Path) -> None:
    cfg = load_config("tiny", ["model.dca_form=diff_transformer"])
    torch.manual_seed(0)
    trained = MSCT(cfg.model)
    config = cfg.to_dict()
    del config["model"]["dca_form"]
    payload = {"model": trained.state_dict(), "epoch": 0, "config": config}
    save_checkpoint(tmp_path / "old.pt", payload | {"store_fingerprint": "f", "recipe": {}})
    model, _, loaded = model_from_checkpoint(tmp_path / "old.pt")
    assert loaded.model.dca_form == "diff_transformer"
    cross = model.encoder.blocks[0].audio.cross_attn
    assert isinstance(cross, DifferentialCrossAttention)
    assert torch.equal(cross.lambda_q1, trained.encoder.blocks[0].audio.cross_attn.lambda_q1)


@pytest.mark.parametrize("form", ["paper", "diff_transformer"])
def test_the_fp32_encoder_makes_no_cast_calls(form: str) -> None:
    """The op-count cut stays cut: in fp32 no attention layer calls ``.to``/``.float()``
    (each was an operator call even when it changed nothing; 123 per paper-size forward)."""
    cfg = tiny(dca_form=form)
    encoder = MSCT(cfg).encoder.train()
    mask = torch.ones(2, 5, dtype=torch.bool)
    mask[1, 3:] = False
    ops = torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CPU])
    with torch.no_grad(), ops:
        encoder(torch.randn(2, 5, cfg.dim), torch.randn(2, 5, cfg.dim), mask)
    # The calls the model's code makes itself (those inside an operator are its own).
    top = [
        e.name
        for e in ops.events()
        if not (e.cpu_parent and e.cpu_parent.name.startswith("aten::"))
    ]
    assert "aten::scaled_dot_product_attention" in top
    assert "aten::to" not in top
