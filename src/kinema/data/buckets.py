"""Buckets: the (width, height, frames) shapes a training batch may take, and fitting clips to them.

Every sample of a batch comes from one bucket, so a batch is one dense tensor and the models see
every size, aspect ratio and duration natively (DESIGN §2). Widths and heights are multiples of
16 (the autoencoder's ×8 times the transformer's 2×2 patches); frame counts are 1+4k (the
autoencoder's causal ×4 in time; 1 is a still image).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Iterable, Sequence

import torch
import torch.nn.functional as F

from ..errors import KinemaError

SIDE_MULTIPLE = 16


@dataclass(frozen=True)
class Bucket:
    width: int
    height: int
    frames: int
    batch_size: int | None = None  # None: the run's batch_size

    @property
    def aspect(self) -> float:
        return self.width / self.height

    def as_tuple(self) -> tuple[int, ...]:
        if self.batch_size is None:
            return (self.width, self.height, self.frames)
        return (self.width, self.height, self.frames, self.batch_size)

    def __str__(self) -> str:
        s = f"{self.width}x{self.height}x{self.frames}"
        return s if self.batch_size is None else f"{s} (batch {self.batch_size})"


def parse_buckets(items: Iterable[Any], where: str = "data.buckets") -> list[Bucket]:
    """Buckets from [width, height, frames] or [width, height, frames, batch_size] lists (or
    "WxHxT" strings); raises KinemaError naming the first bad one."""
    out: list[Bucket] = []
    items = list(items)
    if not items:
        raise KinemaError(f"{where}: needs at least one bucket")
    for i, item in enumerate(items):
        if isinstance(item, Bucket):
            b = item
        else:
            if isinstance(item, str):
                try:
                    item = [int(v) for v in item.lower().split("x")]
                except ValueError:
                    raise KinemaError(f"{where}[{i}]: {item!r} is not WIDTHxHEIGHTxFRAMES") from None
            if not isinstance(item, (list, tuple)) or len(item) not in (3, 4) or not all(
                    isinstance(v, int) and not isinstance(v, bool) for v in item):
                raise KinemaError(f"{where}[{i}]: expected [width, height, frames] or "
                                  f"[width, height, frames, batch_size] integers, got {item!r}")
            b = Bucket(*item)
        if b.width % SIDE_MULTIPLE or b.height % SIDE_MULTIPLE or b.width < 32 or b.height < 32:
            raise KinemaError(f"{where}[{i}]: {b.width}x{b.height}: width and height must be multiples of "
                              f"{SIDE_MULTIPLE} and at least 32")
        if b.frames < 1 or (b.frames - 1) % 4:
            raise KinemaError(f"{where}[{i}]: {b.frames} frames: a clip has 1+4k frames (1, 5, 9, ..., 25, ...)")
        if b.batch_size is not None and b.batch_size < 1:
            raise KinemaError(f"{where}[{i}]: batch_size must be at least 1")
        out.append(b)
    return out


def largest_valid_frames(n: int) -> int:
    """The largest 1+4k not above n (n >= 1)."""
    return 1 + 4 * ((max(1, n) - 1) // 4)


def home_buckets(buckets: Sequence[Bucket], width: int, height: int, frames: int) -> list[int]:
    """Indices of the buckets a clip of this size and length fits best: among the buckets whose
    frame count the clip can fill, those of the nearest aspect ratio (log scale)."""
    import math

    fit = [i for i, b in enumerate(buckets) if b.frames <= frames]
    if not fit:
        return []
    aspect = width / height
    dist = {i: abs(math.log(buckets[i].aspect / aspect)) for i in fit}
    best = min(dist.values())
    return [i for i in fit if dist[i] <= best + 1e-9]


def resize_crop(video: torch.Tensor, width: int, height: int) -> torch.Tensor:
    """Scale a float video [3, T, H, W] so it covers width x height, then crop the centre."""
    c, t, h, w = video.shape
    if (w, h) == (width, height):
        return video
    scale = max(width / w, height / h)
    nw, nh = max(width, round(w * scale)), max(height, round(h * scale))
    frames = video.permute(1, 0, 2, 3)  # [T, 3, H, W]
    if (nw, nh) != (w, h):
        frames = F.interpolate(frames, size=(nh, nw), mode="bilinear", align_corners=False,
                               antialias=nw < w or nh < h)
    top, left = (nh - height) // 2, (nw - width) // 2
    frames = frames[:, :, top:top + height, left:left + width]
    return frames.permute(1, 0, 2, 3).clamp(-1, 1).contiguous()
