"""Where the objects are in latent clips of the world, for the transformer's object loss.

A world clip is objects on a flat background of one of a few colours. A latent position holds an
object (or the encoder's trace of one) when its latent differs from the latent of an empty clip
of that background colour and size; the empty clip's latent is not flat itself (the encoder's
padding marks the borders), so comparing with it, not with the frame's median latent, is what
separates objects from background. The background colour is the reference that the clip matches
best, so cached latents need no captions or pixels.
"""

from __future__ import annotations

from typing import Callable, Iterable

import torch
from torch import Tensor

# In normalised latent units (per-channel std 1). On world clips encoded by the tiny VAE this
# marks 90% of the latent positions that lie under an object's pixels, and 14% of all positions.
DEFAULT_THRESHOLD = 0.75


class LatentForeground:
    """Callable: latents [B, C, t, h, w] -> bool [B, t, h, w], True where an object is."""

    def __init__(self, encode: Callable[[Tensor], Tensor], backgrounds: Iterable[tuple[int, int, int]],
                 spatial_factor: int, temporal_factor: int, threshold: float = DEFAULT_THRESHOLD):
        self.encode = encode  # video [B, 3, T, H, W] in [-1, 1] -> latents [B, C, t, h, w]
        self.colors = [tuple(int(v) for v in c) for c in backgrounds]
        if not self.colors:
            raise ValueError("LatentForeground needs at least one background colour")
        self.spatial_factor, self.temporal_factor = int(spatial_factor), int(temporal_factor)
        self.threshold = float(threshold)
        self._references: dict[tuple[int, int, int], Tensor] = {}

    def reference(self, t: int, h: int, w: int) -> Tensor:
        """Latents [K, C, t, h, w] of empty clips, one per background colour, encoded once per size
        and kept where the encoder put them (the training device: no copy each step)."""
        key = (t, h, w)
        if key not in self._references:
            frames = 1 + self.temporal_factor * (t - 1)
            size = (frames, h * self.spatial_factor, w * self.spatial_factor)
            refs = []
            for color in self.colors:
                rgb = torch.tensor(color, dtype=torch.float32) / 127.5 - 1.0
                clip = rgb[None, :, None, None, None].expand(1, 3, *size).contiguous()
                with torch.no_grad():
                    refs.append(self.encode(clip).float())
            self._references[key] = torch.cat(refs)
        return self._references[key]

    def __call__(self, z: Tensor) -> Tensor:
        if z.ndim != 5:
            raise ValueError(f"latents must be [B, C, t, h, w], got {tuple(z.shape)}")
        ref = self.reference(*z.shape[2:]).to(z.device, torch.float32)
        dist = (z.float()[:, None] - ref[None]).abs().amax(dim=2)  # [B, K, t, h, w]
        best = dist.flatten(2).median(dim=2).values.argmin(dim=1)  # the clip's background
        return dist[torch.arange(z.shape[0], device=z.device), best] > self.threshold
