"""Render a scene spec to frames: flat background, solid anti-aliased shapes drawn from signed
distances (coverage = clip(0.5 - distance_in_pixels, 0, 1)), so edges are smooth at any size."""

from __future__ import annotations

import math
from functools import lru_cache

import numpy as np

from .spec import BACKGROUNDS, COLORS, ObjectSpec, SceneSpec

STAR_INNER_RATIO = 0.45


@lru_cache(maxsize=None)
def shape_polygon(shape: str) -> np.ndarray | None:
    """Vertices of a polygonal shape whose bounding box is [-1, 1] wide, centred on (0, 0);
    y grows downwards as in images. None for the circle, which is drawn exactly."""
    if shape == "square":
        return np.array([[-1, -1], [1, -1], [1, 1], [-1, 1]], dtype=np.float64)
    if shape == "triangle":
        return np.array([[0, -1], [1, 1], [-1, 1]], dtype=np.float64)
    if shape == "star":
        pts = []
        for k in range(10):
            r = 1.0 if k % 2 == 0 else STAR_INNER_RATIO
            ang = -math.pi / 2 + k * math.pi / 5
            pts.append((r * math.cos(ang), r * math.sin(ang)))
        pts = np.array(pts)
        width = pts[:, 0].max() - pts[:, 0].min()
        pts = pts * (2.0 / width)
        pts[:, 1] -= (pts[:, 1].max() + pts[:, 1].min()) / 2.0  # centre the bounding box
        return pts
    if shape == "circle":
        return None
    raise ValueError(f"unknown shape {shape!r}")


def shape_coverage(shape: str, half_width: float, dx: np.ndarray, dy: np.ndarray) -> np.ndarray:
    """Anti-aliased coverage in [0, 1] of a shape of half width `half_width` pixels, at pixel
    offsets (dx, dy) from its centre."""
    if shape == "circle":
        sd = np.sqrt(dx * dx + dy * dy) - half_width
    else:
        sd = _polygon_sdf(shape_polygon(shape) * half_width, dx, dy)
    return np.clip(0.5 - sd, 0.0, 1.0)


def _polygon_sdf(poly: np.ndarray, px: np.ndarray, py: np.ndarray) -> np.ndarray:
    """Signed distance (negative inside) from points to a simple polygon."""
    dist2 = np.full(px.shape, np.inf)
    inside = np.zeros(px.shape, dtype=bool)
    n = len(poly)
    for i in range(n):
        ax, ay = poly[i]
        bx, by = poly[(i + 1) % n]
        ex, ey = bx - ax, by - ay
        wx, wy = px - ax, py - ay
        t = np.clip((wx * ex + wy * ey) / (ex * ex + ey * ey), 0.0, 1.0)
        qx, qy = wx - ex * t, wy - ey * t
        dist2 = np.minimum(dist2, qx * qx + qy * qy)
        crosses = (ay > py) != (by > py)
        x_at = ax + (py - ay) * ex / np.where(ey == 0, 1e-12, ey)
        inside ^= crosses & (px < x_at)
    d = np.sqrt(dist2)
    return np.where(inside, -d, d)


def render(spec: SceneSpec) -> np.ndarray:
    """Frames [T, H, W, 3] uint8 for a valid spec."""
    spec.validate()
    w, h, t = spec.width, spec.height, spec.num_frames
    background = np.asarray(BACKGROUNDS[spec.background], dtype=np.float32)
    # filling from a whole row is much faster than broadcasting a 3-vector over the clip
    canvas = np.empty((t, h, w, 3), dtype=np.float32)
    canvas[:] = np.tile(background, (w, 1))
    drawn = [_draw_object(canvas, spec, obj) for obj in spec.objects]
    # only drawn pixels need rounding; the rest is the background, a palette colour in whole levels
    frames = np.empty((t, h, w, 3), dtype=np.uint8)
    frames[:] = np.tile(background.astype(np.uint8), (w, 1))
    f, rows, cols = (np.concatenate(parts) for parts in zip(*drawn))  # a valid spec has an object
    frames[f, rows, cols] = np.clip(np.round(canvas[f, rows, cols]), 0, 255).astype(np.uint8)
    return frames


def _draw_object(canvas: np.ndarray, spec: SceneSpec, obj: ObjectSpec) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Blend one object into every frame of `canvas` at once. Each frame's window is the box
    around the object's centre; pixels outside the frame are computed but never written, and
    pixels inside the window but outside the shape have coverage 0, so the result is the same
    as blending frame by frame. Returns the (frame, row, column) indices it drew."""
    t, h, w = canvas.shape[:3]
    color = np.asarray(COLORS[obj.color], dtype=np.float32)
    half = spec.object_width_px(obj) / 2.0
    centres = [spec.center(obj, f) for f in range(t)]
    cx = np.array([c[0] * w for c in centres])
    cy = np.array([c[1] * h for c in centres])
    x0 = np.floor(cx - half - 1).astype(np.int64)
    y0 = np.floor(cy - half - 1).astype(np.int64)
    size_x = int((np.ceil(cx + half + 1).astype(np.int64) - x0).max())
    size_y = int((np.ceil(cy + half + 1).astype(np.int64) - y0).max())
    xs = x0[:, None] + np.arange(size_x)                       # [T, size_x] pixel columns
    ys = y0[:, None] + np.arange(size_y)                       # [T, size_y] pixel rows
    dx = (xs.astype(np.float64) + 0.5 - cx[:, None])[:, None, :]
    dy = (ys.astype(np.float64) + 0.5 - cy[:, None])[:, :, None]
    dx, dy = np.broadcast_arrays(dx, dy)
    alpha = shape_coverage(obj.shape, half, dx, dy).astype(np.float32)
    inside = ((xs >= 0) & (xs < w))[:, None, :] & ((ys >= 0) & (ys < h))[:, :, None]
    f, r, c = np.nonzero(inside & (alpha > 0))
    rows, cols = ys[f, r], xs[f, c]
    a = alpha[f, r, c][:, None]
    region = canvas[f, rows, cols]
    canvas[f, rows, cols] = region + (color - region) * a
    return f, rows, cols


def render_video(spec: SceneSpec, caption: str | None = None):
    """The spec rendered as a `Video`, with the spec (and caption) in its metadata."""
    from ..video import Video

    meta = {"spec": spec.to_dict()}
    if caption is not None:
        meta["caption"] = caption
    return Video(render(spec), fps=spec.fps, metadata=meta)
