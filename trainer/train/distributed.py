"""Data-parallel training on several GPUs / nodes with torchrun (DDP).

The exact command, on one machine with N GPUs (or N CPU processes)::

    torchrun --standalone --nproc_per_node N -m trainer.cli run --store STORE --out runs/ddp

and on several nodes (same command on every node, ``--node_rank`` 0..M-1; ``--out``
must be on a filesystem all nodes share, since every rank reloads ``best.pt``)::

    torchrun --nnodes M --nproc_per_node N --node_rank R \\
        --rdzv_backend c10d --rdzv_endpoint HOST:29400 -m trainer.cli run --store STORE --out DIR

torchrun sets ``RANK``, ``WORLD_SIZE`` and ``LOCAL_RANK``; without them the
trainer runs as a single process. The backend is NCCL on CUDA and gloo on CPU.

Choices:

* training uses ``DistributedSampler`` (shuffled by seed and epoch), so the global
  batch is ``batch_size × world_size``;
* evaluation shards the eval windows round-robin over the ranks *without padding*
  (``DistributedSampler`` would repeat windows to even the shards out and bias the
  means), and every rank's per-window outputs are gathered with
  ``all_gather_object``, so all ranks compute identical metrics;
* only rank 0 writes logs, TensorBoard, checkpoints, plots and the report.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import torch
import torch.distributed as dist


@dataclass(frozen=True)
class DistInfo:
    """Where this process sits in the job (``world_size == 1``: not distributed)."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def enabled(self) -> bool:
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def detect() -> DistInfo:
    """Read the torchrun environment variables (absent → single process)."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return DistInfo()
    return DistInfo(
        rank=int(os.environ["RANK"]),
        world_size=world,
        local_rank=int(os.environ.get("LOCAL_RANK", "0")),
    )


def init(info: DistInfo, device: torch.device) -> None:
    """Join the process group (no-op for a single process)."""
    if not info.enabled or dist.is_initialized():
        return
    backend = "nccl" if device.type == "cuda" else "gloo"
    if device.type == "cuda":
        torch.cuda.set_device(device)
    dist.init_process_group(backend=backend, timeout=timedelta(minutes=30))


def shutdown() -> None:
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


def wrap(model: torch.nn.Module, info: DistInfo, device: torch.device) -> torch.nn.Module:
    """DDP-wrap the model when distributed; return it unchanged otherwise."""
    if not info.enabled:
        return model
    from torch.nn.parallel import DistributedDataParallel

    ids = [device.index] if device.type == "cuda" else None
    return DistributedDataParallel(model, device_ids=ids)


def unwrap(model: torch.nn.Module) -> torch.nn.Module:
    inner = getattr(model, "module", model)  # DDP wraps the model as .module
    return inner if isinstance(inner, torch.nn.Module) else model


def barrier(info: DistInfo) -> None:
    if info.enabled:
        dist.barrier()


def all_sum(values: list[float], info: DistInfo) -> list[float]:
    """Sum a short list of floats over all ranks (float64 on CPU; fine for gloo and NCCL)."""
    if not info.enabled:
        return values
    device = torch.device("cuda", info.local_rank) if dist.get_backend() == "nccl" else None
    t = torch.tensor(values, dtype=torch.float64, device=device)
    dist.all_reduce(t, op=dist.ReduceOp.SUM)
    return t.cpu().tolist()


def gather_objects(obj: Any, info: DistInfo) -> list[Any]:
    """Every rank's ``obj``, in rank order, on every rank."""
    if not info.enabled:
        return [obj]
    out: list[Any] = [None] * info.world_size
    dist.all_gather_object(out, obj)
    return out


def broadcast_object(obj: Any, info: DistInfo) -> Any:
    """Rank 0's ``obj`` on every rank: a value only the main rank can decide, such as the
    fresh run directory it created (:func:`trainer.train.run_dir.shared_new_run_dir`)."""
    if not info.enabled:
        return obj
    box = [obj]
    dist.broadcast_object_list(box, src=0)
    return box[0]
