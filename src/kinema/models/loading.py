"""Building a model whose weights a file replaces at once: no random initialisation to pay for,
and a cheap check that the file holds no NaN or infinity."""

from __future__ import annotations

import contextlib
import threading

import torch

_INIT_FUNCTIONS = ("uniform_", "normal_", "trunc_normal_", "constant_", "ones_", "zeros_", "eye_",
                   "xavier_uniform_", "xavier_normal_", "kaiming_uniform_", "kaiming_normal_", "orthogonal_")


_ORIGINAL_INIT = {name: getattr(torch.nn.init, name) for name in _INIT_FUNCTIONS}
_init_lock = threading.Lock()
_init_depth = 0


def _no_init(tensor, *args, **kwargs):
    return tensor


@contextlib.contextmanager
def skip_weight_init():
    """Build modules without paying for random initialisation (torch.nn.init does nothing inside),
    for weights that a state dict replaces at once. Faster than building on the meta device on a
    fresh process, whose first use imports torch's decompositions. Safe to nest and to enter from
    several threads (e.g. a server loading two models): the last one out restores torch's own."""
    global _init_depth
    with _init_lock:
        if _init_depth == 0:
            for name in _INIT_FUNCTIONS:
                setattr(torch.nn.init, name, _no_init)
        _init_depth += 1
    try:
        yield
    finally:
        with _init_lock:
            _init_depth -= 1
            if _init_depth == 0:
                for name, fn in _ORIGINAL_INIT.items():
                    setattr(torch.nn.init, name, fn)


def all_finite(t: torch.Tensor) -> bool:
    """No NaN or infinity in `t`. A float32 sum is one cheap pass and turns NaN or inf on any element
    into a non-finite total; only then is the exact element-wise test paid for."""
    if not t.is_floating_point() or t.numel() == 0:
        return True
    if bool(torch.isfinite(t.sum(dtype=torch.float32))):
        return True
    return bool(torch.isfinite(t).all())
