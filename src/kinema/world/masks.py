"""Where each object of a scene is, as the share of each cell of a coarse grid it covers.

The transformer's grounding loss compares where a word's cross-attention goes with where the
object it names lies; the grid is the transformer's token grid, so a cell is the patch of
pixels one token stands for. The layout's outline channels (`kinema.layout.features`) sample the
same coverage on a grid of sub-cells.
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
    sy = spec.height // grid_h if samples is None else samples
    sx = spec.width // grid_w if samples is None else samples
    cover = sampled_coverage(spec, frames, grid_h * sy, grid_w * sx)
    visible = cover.copy()
    for k in range(len(spec.objects) - 2, -1, -1):  # what later objects hide of the earlier ones
        visible[k] *= np.prod(1.0 - cover[k + 1:], axis=0)
    cells = visible.reshape(len(spec.objects), len(frames), grid_h, sy, grid_w, sx)
    return cells.mean(axis=(3, 5)).astype(np.float32)


def sampled_coverage(spec: SceneSpec, times: Sequence[float], rows: int, cols: int) -> np.ndarray:
    """float64 [num_objects, len(times), rows, cols]: each object's coverage at the centres of a
    rows x cols subdivision of the frame, at each of `times` (video frames, fractions allowed).

    Measured in sample spacings, the renderer's one-pixel anti-aliasing becomes one spacing wide:
    each sample stands for the square around it, so edges stay soft however coarse the samples.
    Only the samples within a spacing of an object's box are computed; the others are exactly 0.
    """
    h, w = spec.height, spec.width
    px = (np.arange(cols, dtype=np.float64) + 0.5) * (w / cols)
    py = (np.arange(rows, dtype=np.float64) + 0.5) * (h / rows)
    step = 0.5 * (w / cols + h / rows)
    cover = np.zeros((len(spec.objects), len(times), rows, cols), dtype=np.float64)
    for k, obj in enumerate(spec.objects):
        half = spec.object_width_px(obj) / 2.0
        for i, f in enumerate(times):
            cx, cy = spec.center(obj, f)
            c0, c1 = np.searchsorted(px, [cx * w - half - step, cx * w + half + step])
            r0, r1 = np.searchsorted(py, [cy * h - half - step, cy * h + half + step])
            if c0 >= c1 or r0 >= r1:
                continue
            dx, dy = np.broadcast_arrays(px[None, c0:c1] - cx * w, py[r0:r1, None] - cy * h)
            cover[k, i, r0:r1, c0:c1] = shape_coverage(obj.shape, half / step, dx / step, dy / step)
    return cover
