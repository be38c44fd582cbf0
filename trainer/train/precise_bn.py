"""Precise BatchNorm: running statistics recomputed with the current weights before evaluation."""

from __future__ import annotations

import torch
from torch.utils.data import DataLoader

from trainer.data.inputs import model_inputs
from trainer.train import distributed as ddp
from trainer.train.runtime import autocast


@torch.no_grad()
def recalibrate_bn(
    model: torch.nn.Module,
    loader: DataLoader,
    max_batches: int,
    device: torch.device,
    amp: torch.dtype | None,
    info: ddp.DistInfo,
) -> None:
    """Recompute BatchNorm running statistics with the current weights ("precise BN").

    The running averages lag behind weights that move fast (few steps, high lr), and an
    eval-mode model then sees stale statistics; a pass over up to ``max_batches``
    training batches (collated windows, as :func:`trainer.data.inputs.model_inputs` takes
    them) with cumulative averaging fixes that. Only BatchNorm layers are put in train
    mode, so dropout draws no random numbers and resumption stays exact. With several
    ranks the statistics are averaged over ranks.
    """
    net = ddp.unwrap(model)
    norms = [m for m in net.modules() if isinstance(m, torch.nn.modules.batchnorm._BatchNorm)]
    if not norms or max_batches <= 0:
        return
    net.eval()
    momenta = [m.momentum for m in norms]
    for m in norms:
        m.reset_running_stats()
        m.momentum = None  # cumulative average over the batches below
        m.train()
    for i, batch in enumerate(loader):
        if i >= max_batches:
            break
        with autocast(device, amp):
            net(*model_inputs(batch, device, getattr(net.cfg, "visual_input", None)))
    for m, momentum in zip(norms, momenta, strict=True):
        m.momentum = momentum
        m.eval()
        if info.enabled:
            for buf in (m.running_mean, m.running_var):
                assert buf is not None  # reset_running_stats above: they are tracked
                torch.distributed.all_reduce(buf, op=torch.distributed.ReduceOp.SUM)
                buf.div_(info.world_size)
