"""Where each object of a scene is, as the share of each cell of a coarse grid it covers.

The transformer's grounding loss compares where a word's cross-attention goes with where the
object it names lies; the grid is the transformer's token grid, so a cell is the patch of
pixels one token stands for.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

from .render import shape_coverage
from .spec import SceneSpec


def object_coverage(spec: SceneSpec, frames: Sequence[int], grid_h: int, grid_w: int,
                    samples: int | None = 4) -> np.ndarray:
    """float32 [num_objects, len(frames), grid_h, grid_w]: the share of each cell that object k
    covers at each of `frames`, after the objects drawn after it (on top) are taken off.

    Each cell is sampled on a `samples` x `samples` grid of points (None: at every pixel, exact
    but slow: a batch of 256 clips of 128x128 then takes seconds, which would hold up a GPU's
    training step). The frame must split into whole cells (height a multiple of grid_h, width of
    grid_w).
    """
    if grid_h < 1 or grid_w < 1 or spec.height % grid_h or spec.width % grid_w:
        raise ValueError(f"a {spec.width}x{spec.height} frame does not split into a {grid_w}x{grid_h} grid")
    for f in frames:
        if not 0 <= f < spec.num_frames:
            raise ValueError(f"frame {f} is outside the scene's {spec.num_frames} frames")
    h, w = spec.height, spec.width
    sy = h // grid_h if samples is None else samples
    sx = w // grid_w if samples is None else samples
    # sample points at the centres of a (grid_h*sy) x (grid_w*sx) subdivision, in pixels
    px = (np.arange(grid_w * sx, dtype=np.float64) + 0.5) * (w / (grid_w * sx))
    py = (np.arange(grid_h * sy, dtype=np.float64) + 0.5) * (h / (grid_h * sy))
    # measured in sample spacings, the renderer's one-pixel anti-aliasing becomes one spacing wide:
    # each sample stands for the square around it, so edges stay soft however coarse the samples
    step = 0.5 * (w / len(px) + h / len(py))
    cover = np.zeros((len(spec.objects), len(frames), len(py), len(px)), dtype=np.float64)
    for k, obj in enumerate(spec.objects):
        half = spec.object_width_px(obj) / 2.0
        for i, f in enumerate(frames):
            cx, cy = spec.center(obj, f)
            dx, dy = np.broadcast_arrays(px[None, :] - cx * w, py[:, None] - cy * h)
            cover[k, i] = shape_coverage(obj.shape, half / step, dx / step, dy / step)
    visible = cover.copy()
    for k in range(len(spec.objects) - 2, -1, -1):  # what later objects hide of the earlier ones
        visible[k] *= np.prod(1.0 - cover[k + 1:], axis=0)
    cells = visible.reshape(len(spec.objects), len(frames), grid_h, sy, grid_w, sx)
    return cells.mean(axis=(3, 5)).astype(np.float32)
