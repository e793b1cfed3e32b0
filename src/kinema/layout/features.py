"""Scene specs -> layout channels on the latent grid [K, t, h, w].

Per latent cell and latent frame: how much of the cell each object's bounding box covers, and,
weighted by that coverage, the object's colour, shape, size and motion (one-hot), where its centre
lies relative to the cell, and the background colour everywhere; the one-hot words make unseen
combinations (a green triangle) sums of seen parts. Optionally (`outline` = s > 0) s x s more
channels give the objects' outline inside each cell: how much of each of its s x s sub-cells the
shapes cover, so a small star, which fills one or two cells, is drawn from where its points are
rather than from a word.

Latent frame 0 stands for video frame 0 and latent frame k >= 1 for the group of `temporal_factor`
frames ending at frame k * temporal_factor (the causal autoencoder); a group is placed at its
middle frame.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np
import torch

from ..models.vae import ConfigError
from ..world.masks import sampled_coverage
from ..world.spec import BACKGROUNDS, COLORS, MOTIONS, SHAPES, SIZES, SceneSpec

_COLORS, _SHAPES, _SIZES, _MOTIONS, _BACKGROUNDS = (list(COLORS), list(SHAPES), list(SIZES), list(MOTIONS),
                                                      list(BACKGROUNDS))
COVER = 0
COLOR0 = 1
SHAPE0 = COLOR0 + len(_COLORS)
SIZE0 = SHAPE0 + len(_SHAPES)
MOTION0 = SIZE0 + len(_SIZES)
OFFSET0 = MOTION0 + len(_MOTIONS)  # centre offset from the cell, x then y
BACKGROUND0 = OFFSET0 + 2
LAYOUT_CHANNELS = BACKGROUND0 + len(_BACKGROUNDS)
OUTLINE0 = LAYOUT_CHANNELS  # then outline * outline sub-cell channels, row by row
MAX_OUTLINE = 8


def layout_channels(outline: int = 0) -> int:
    """The number of layout channels with an outline of `outline` x `outline` sub-cells (0: none)."""
    return LAYOUT_CHANNELS + outline * outline


def outline_side(channels: int) -> int:
    """The outline's sub-cells per side that a transformer with `channels` layout channels takes."""
    if not isinstance(channels, int) or isinstance(channels, bool):
        raise ConfigError(f"layout_channels must be a whole number, got {channels!r}")
    extra = channels - LAYOUT_CHANNELS
    side = int(round(max(extra, 0) ** 0.5))
    if extra < 0 or side * side != extra or side > MAX_OUTLINE:
        raise ConfigError(f"layout_channels {channels}: a layout has {LAYOUT_CHANNELS} channels, plus s * s for an "
                          f"outline of s x s sub-cells per cell (s from 1 to {MAX_OUTLINE}), e.g. "
                          f"{layout_channels(4)} for s = 4")
    return side


def latent_frame_times(latent_frames: int, num_frames: int, temporal_factor: int,
                       start_frame: int = 0) -> list[float]:
    """The video frame (fractional) each latent frame is placed at, clamped to the scene's frames,
    for latents that begin at video frame `start_frame` (a later window of a long clip)."""
    last = max(0, num_frames - 1)
    times = [float(start_frame)] + [start_frame + k * temporal_factor - (temporal_factor - 1) / 2.0
                                    for k in range(1, latent_frames)]
    return [min(max(t, 0.0), float(last)) for t in times]


def _overlap(lo: float, hi: float, cells: int) -> np.ndarray:
    """The share of each unit cell 0..cells-1 that the interval [lo, hi] covers."""
    edges = np.arange(cells, dtype=np.float64)
    return np.clip(np.minimum(hi, edges + 1.0) - np.maximum(lo, edges), 0.0, 1.0)


def _check_outline(outline: int) -> None:
    if not (isinstance(outline, int) and not isinstance(outline, bool) and 0 <= outline <= MAX_OUTLINE):
        raise ConfigError(f"outline must be a whole number from 0 to {MAX_OUTLINE}, got {outline!r}")


def _outline(spec: SceneSpec, times: list[float], lat_h: int, lat_w: int, side: int) -> np.ndarray:
    """[side * side, latent_frames, lat_h, lat_w]: the share of each sub-cell the scene's shapes cover
    (anti-aliased over one sub-cell, overlapping shapes adding up to at most 1)."""
    grid = np.minimum(sampled_coverage(spec, times, lat_h * side, lat_w * side).sum(axis=0), 1.0)
    # [t, h*s, w*s] -> [s*s, t, h, w], sub-cells row by row
    cells = grid.astype(np.float32).reshape(len(times), lat_h, side, lat_w, side).transpose(2, 4, 0, 1, 3)
    return cells.reshape(side * side, len(times), lat_h, lat_w)


def layout_for_spec(spec: SceneSpec, latent_frames: int, lat_h: int, lat_w: int,
                    temporal_factor: int = 4, start_frame: int = 0, outline: int = 0) -> np.ndarray:
    """float32 [layout_channels(outline), latent_frames, lat_h, lat_w] for one scene, from video frame
    `start_frame` on."""
    _check_outline(outline)
    out = np.zeros((layout_channels(outline), latent_frames, lat_h, lat_w), dtype=np.float32)
    out[BACKGROUND0 + _BACKGROUNDS.index(spec.background)] = 1.0
    times = latent_frame_times(latent_frames, spec.num_frames, temporal_factor, start_frame)
    col_centres = np.arange(lat_w) + 0.5
    row_centres = np.arange(lat_h) + 0.5
    for obj in spec.objects:
        hx, hy = spec.half_extent(obj)
        attrs = np.zeros(LAYOUT_CHANNELS, dtype=np.float32)
        attrs[COVER] = 1.0
        attrs[COLOR0 + _COLORS.index(obj.color)] = 1.0
        attrs[SHAPE0 + _SHAPES.index(obj.shape)] = 1.0
        attrs[SIZE0 + _SIZES.index(obj.size)] = 1.0
        attrs[MOTION0 + _MOTIONS.index(obj.motion)] = 1.0
        for k, f in enumerate(times):
            cx, cy = spec.center(obj, f)
            ox = _overlap((cx - hx) * lat_w, (cx + hx) * lat_w, lat_w)
            oy = _overlap((cy - hy) * lat_h, (cy + hy) * lat_h, lat_h)
            cover = (oy[:, None] * ox[None, :]).astype(np.float32)
            if not cover.any():
                continue
            out[:OFFSET0, k] += attrs[:OFFSET0, None, None] * cover
            dx = np.clip((cx * lat_w - col_centres) / 2.0, -1.0, 1.0)
            dy = np.clip((cy * lat_h - row_centres) / 2.0, -1.0, 1.0)
            out[OFFSET0, k] += cover * dx[None, :].astype(np.float32)
            out[OFFSET0 + 1, k] += cover * dy[:, None].astype(np.float32)
    if outline:
        out[OUTLINE0:] = _outline(spec, times, lat_h, lat_w, outline)
    return out


def layout_batch(specs: Sequence[SceneSpec | None], latent_frames: int, lat_h: int, lat_w: int,
                 temporal_factor: int = 4, start_frame: int = 0, outline: int = 0) -> torch.Tensor:
    """float32 [B, layout_channels(outline), latent_frames, lat_h, lat_w] from video frame
    `start_frame` on; a None spec gives all zeros (no layout: the transformer then goes by the text
    alone)."""
    _check_outline(outline)
    out = np.zeros((len(specs), layout_channels(outline), latent_frames, lat_h, lat_w), dtype=np.float32)
    for i, spec in enumerate(specs):
        if spec is not None:
            out[i] = layout_for_spec(spec, latent_frames, lat_h, lat_w, temporal_factor, start_frame, outline)
    return torch.from_numpy(out)
