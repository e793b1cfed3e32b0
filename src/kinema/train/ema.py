"""Exponential moving average of a model's weights.

The average lives in a second copy of the model (`ema.model`), made before the trained model is
wrapped for DDP, or sharded like it under FSDP, so its parameters pair one to one with the
trained ones and the update is one fused lerp. The decay warms up as min(decay, (1+n)/(10+n))
so the average is useful early in short runs.
"""

from __future__ import annotations

import copy

import torch
import torch.nn as nn


class EMA:
    def __init__(self, model: nn.Module, decay: float):
        self.decay = float(decay)
        self.model = copy.deepcopy(model).eval().requires_grad_(False)
        self.updates = 0

    def current_decay(self) -> float:
        n = self.updates
        return min(self.decay, (1 + n) / (10 + n))

    @torch.no_grad()
    def update(self, model: nn.Module) -> None:
        d = self.current_decay()
        src = [_local(p.detach()) for p in model.parameters()]
        dst = [_local(p) for p in self.model.parameters()]
        if len(src) != len(dst):
            raise RuntimeError("EMA and model have different parameters")
        torch._foreach_lerp_(dst, src, 1.0 - d)
        for b_dst, b_src in zip(self.model.buffers(), model.buffers()):
            b_dst.copy_(b_src)
        self.updates += 1


def _local(t: torch.Tensor) -> torch.Tensor:
    """The local shard of an FSDP (DTensor) parameter; the tensor itself otherwise."""
    return t.to_local() if hasattr(t, "to_local") else t
