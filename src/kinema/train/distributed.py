"""Process groups for training under `torchrun`: DDP or FSDP, gloo on CPU, NCCL on CUDA.

One process (no WORLD_SIZE in the environment, or 1) runs without a process group; the helpers
below then do nothing, so the trainer has one code path.
"""

from __future__ import annotations

import datetime
import os
from dataclasses import dataclass

import torch
import torch.distributed as dist
import torch.nn as nn


@dataclass
class DistInfo:
    rank: int = 0
    local_rank: int = 0
    world_size: int = 1
    device: torch.device = torch.device("cpu")

    @property
    def enabled(self) -> bool:
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def pick_device(local_rank: int = 0) -> torch.device:
    forced = os.environ.get("KINEMA_DEVICE")
    if forced:
        return torch.device(forced)
    if torch.cuda.is_available():
        return torch.device("cuda", local_rank % torch.cuda.device_count())
    return torch.device("cpu")


def init() -> DistInfo:
    """Start the process group when launched by torchrun (WORLD_SIZE > 1)."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    local = int(os.environ.get("LOCAL_RANK", "0"))
    device = pick_device(local)
    if device.type == "cuda":
        torch.cuda.set_device(device)
    if world > 1 and not dist.is_initialized():
        backend = "nccl" if device.type == "cuda" else "gloo"
        kwargs = {"device_id": device} if device.type == "cuda" else {}
        dist.init_process_group(backend=backend, timeout=datetime.timedelta(minutes=30), **kwargs)
    return DistInfo(rank=rank, local_rank=local, world_size=world, device=device)


def shutdown(clean: bool = True) -> None:
    """Destroy the process group; after a clean run, first wait for every rank (a failed rank
    must not wait: the others may be stuck in a collective, torchrun stops them)."""
    if dist.is_available() and dist.is_initialized():
        if clean:
            if torch.cuda.is_available() and torch.cuda.is_initialized():
                torch.cuda.synchronize()
            dist.barrier()
        dist.destroy_process_group()


def barrier(info: DistInfo) -> None:
    if info.enabled:
        if info.device.type == "cuda":
            dist.barrier(device_ids=[info.device.index])
        else:
            dist.barrier()


def all_mean(info: DistInfo, values: list[float]) -> list[float]:
    """Mean of each value over all processes."""
    if not info.enabled:
        return list(values)
    t = torch.tensor(values, dtype=torch.float64, device=info.device)
    dist.all_reduce(t)
    return (t / info.world_size).tolist()


def all_sum_tensor(info: DistInfo, t: torch.Tensor) -> torch.Tensor:
    if info.enabled:
        t = t.to(info.device)
        dist.all_reduce(t)
    return t


def all_gather_objects(info: DistInfo, obj):
    if not info.enabled:
        return [obj]
    out = [None] * info.world_size
    dist.all_gather_object(out, obj)
    return out


def broadcast_object(info: DistInfo, obj):
    if not info.enabled:
        return obj
    box = [obj]
    dist.broadcast_object_list(box, src=0)
    return box[0]


def wrap(model: nn.Module, info: DistInfo, parallel: str) -> nn.Module:
    """DDP or FSDP (fully_shard per block, then the root) around `model`; itself in one process."""
    if not info.enabled:
        return model
    if parallel == "fsdp":
        from torch.distributed.fsdp import fully_shard

        # innermost lists first: an outer unit then manages only what its inner units do not
        for module in reversed(list(model.modules())):
            if isinstance(module, nn.ModuleList):
                for block in module:
                    # a unit must be called (its forward runs the gather); plain containers are not
                    called = type(block).forward is not nn.Module.forward
                    if called and any(p.numel() for p in block.parameters()):
                        fully_shard(block)
        fully_shard(model)
        return model
    from torch.nn.parallel import DistributedDataParallel as DDP

    ids = [info.device.index] if info.device.type == "cuda" else None
    return DDP(model, device_ids=ids)


def unwrap(model: nn.Module) -> nn.Module:
    inner = getattr(model, "_orig_mod", model)  # torch.compile
    inner = getattr(inner, "module", inner)     # DDP
    return getattr(inner, "_orig_mod", inner)
