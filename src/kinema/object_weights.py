"""Weights over object masks that let every object count about the same, whatever its size.

Used by the autoencoder's object term (pixels) and the transformer's (latent positions): a mean
over an object mask weighs a large object about four times a small one, and it is the small
objects whose shapes come back wrong.
"""

from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor


def area_balanced_weights(mask: Tensor) -> Tensor:
    """[B, T, H, W] float weights for `mask`'s pixels such that every object counts about the same,
    whatever its size: each marked pixel is weighted by 1 / the share of marked pixels in a window
    about as wide as the world's large objects (0.3 of the shorter side). A pooled mean over
    foreground pixels would otherwise weigh a large object 4x a small one, and it is the small
    ones whose shapes come back as blobs."""
    B, T, H, W = mask.shape
    k = max(3, int(round(0.3 * min(H, W))) | 1)
    m = mask.float().reshape(B * T, 1, H, W)
    density = F.avg_pool2d(m, k, stride=1, padding=k // 2, count_include_pad=False)
    return (m / density.clamp(min=1.0 / (k * k))).reshape(B, T, H, W)
