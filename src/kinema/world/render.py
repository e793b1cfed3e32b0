"""Render a scene spec to frames: flat background, solid anti-aliased shapes drawn from signed
distances (coverage = clip(0.5 - distance_in_pixels, 0, 1)), so edges are smooth at any size."""

from __future__ import annotations

import math
from functools import lru_cache

import numpy as np

from .spec import BACKGROUNDS, COLORS, SceneSpec

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
    canvas = np.empty((t, h, w, 3), dtype=np.float32)
    canvas[:] = np.asarray(BACKGROUNDS[spec.background], dtype=np.float32)
    for obj in spec.objects:
        color = np.asarray(COLORS[obj.color], dtype=np.float32)
        half = spec.object_width_px(obj) / 2.0
        for f in range(t):
            cx, cy = spec.center(obj, f)
            cx, cy = cx * w, cy * h
            x0, x1 = max(0, int(math.floor(cx - half - 1))), min(w, int(math.ceil(cx + half + 1)))
            y0, y1 = max(0, int(math.floor(cy - half - 1))), min(h, int(math.ceil(cy + half + 1)))
            if x0 >= x1 or y0 >= y1:
                continue
            xs = np.arange(x0, x1, dtype=np.float64) + 0.5 - cx
            ys = np.arange(y0, y1, dtype=np.float64) + 0.5 - cy
            dx, dy = np.meshgrid(xs, ys)
            alpha = shape_coverage(obj.shape, half, dx, dy).astype(np.float32)[..., None]
            region = canvas[f, y0:y1, x0:x1]
            region += (color - region) * alpha
    return np.clip(np.round(canvas), 0, 255).astype(np.uint8)


def render_video(spec: SceneSpec, caption: str | None = None):
    """The spec rendered as a `Video`, with the spec (and caption) in its metadata."""
    from ..video import Video

    meta = {"spec": spec.to_dict()}
    if caption is not None:
        meta["caption"] = caption
    return Video(render(spec), fps=spec.fps, metadata=meta)
