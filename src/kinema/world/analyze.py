"""Read world videos back into facts: background, objects (colour, shape, size), per-frame tracks,
motion, count and relations. This is the judge of every quality figure, so it is deliberately
simple and deterministic:

1. background = the palette background nearest to the median border colour;
2. foreground = pixels far from the background colour, split into connected components; a
   component whose core holds two palette colours (touching objects) is split by colour;
3. per component: colour = palette colour nearest to its core pixels; coverage (alpha) is the
   projection of each pixel onto the background→colour line; size from the bounding-box width
   relative to the frame's shorter side; shape = the renderer's template (at the same centre and
   width) that best overlaps the coverage;
4. detections are linked across frames into tracks (optimal assignment on distance, colour and
   shape); motion is the straight-line fit of the track; relations compare the first frame in
   which both objects are seen, with the rule captions use.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from functools import lru_cache

import numpy as np
from scipy import ndimage
from scipy.optimize import linear_sum_assignment

from .captions import relation_of_offset
from .render import shape_coverage
from .spec import BACKGROUNDS, COLORS, SHAPES, SIZES

_COLOR_NAMES = list(COLORS)
_COLOR_RGB = np.array([COLORS[c] for c in _COLOR_NAMES], dtype=np.float32)
_BG_NAMES = list(BACKGROUNDS)
_BG_RGB = np.array([BACKGROUNDS[b] for b in _BG_NAMES], dtype=np.float32)
_SIZE_THRESHOLD = (SIZES["small"] + SIZES["large"]) / 2.0
FOREGROUND_DISTANCE = 38.0   # RGB distance from the background that counts as foreground
MIN_AREA_FRACTION = 0.2      # of the smallest object's area (a small star), below which blobs are noise
STILL_THRESHOLD = 0.12       # displacement (fraction of the frame) below which an object is still
MIN_TRACK_PRESENCE = 0.2     # tracks seen in fewer frames than this fraction are dropped as noise


@dataclass
class Detection:
    color: str
    shape: str
    size: str
    x: float  # centre, pixels
    y: float
    width: float  # pixels
    area: float
    shape_scores: np.ndarray  # template overlap per shape in SHAPES order


def background_of(frame: np.ndarray) -> str:
    border = np.concatenate([frame[0], frame[-1], frame[:, 0], frame[:, -1]]).astype(np.float32)
    med = np.median(border, axis=0)
    return _BG_NAMES[int(np.argmin(((_BG_RGB - med) ** 2).sum(1)))]


def _nearest_colors(pixels: np.ndarray) -> np.ndarray:
    d = ((pixels[:, None, :] - _COLOR_RGB[None]) ** 2).sum(-1)
    return np.argmin(d, axis=1)


def _alpha(pixels: np.ndarray, color: np.ndarray, bg: np.ndarray) -> np.ndarray:
    direction = color - bg
    return np.clip(((pixels - bg) @ direction) / float(direction @ direction), 0.0, 1.0)


def detect(frame: np.ndarray, background: str) -> list[Detection]:
    """Objects in one frame [H, W, 3] uint8."""
    h, w = frame.shape[:2]
    shorter = min(h, w)
    img = frame.astype(np.float32)
    bg = np.asarray(BACKGROUNDS[background], dtype=np.float32)
    dist = np.sqrt(((img - bg) ** 2).sum(-1))
    fg = dist > FOREGROUND_DISTANCE
    labels, n = ndimage.label(fg, structure=np.ones((3, 3)))
    min_area = MIN_AREA_FRACTION * 0.36 * (SIZES["small"] * shorter) ** 2
    detections: list[Detection] = []
    for k, sl in enumerate(ndimage.find_objects(labels), start=1):
        if sl is None:
            continue
        comp = labels[sl] == k
        if comp.sum() < min_area:
            continue
        for color_idx, mask, (y0, x0) in _split_by_color(img[sl], dist[sl], comp, sl):
            det = _describe(img, bg, color_idx, mask, y0, x0, shorter, min_area)
            if det is not None:
                detections.append(det)
    return detections


def _split_by_color(patch: np.ndarray, dist: np.ndarray, comp: np.ndarray, sl):
    """Yield (colour index, mask, offset) for each single-coloured part of a component."""
    y0, x0 = sl[0].start, sl[1].start
    d = dist[comp]
    core = comp & (dist >= 0.7 * np.percentile(d, 90))
    core_colors = _nearest_colors(patch[core])
    counts = Counter(core_colors.tolist())
    ranked = counts.most_common()
    if len(ranked) >= 2 and ranked[1][1] >= max(15, 0.25 * core.sum()):
        pair = np.array([ranked[0][0], ranked[1][0]])
        pix = patch[comp]
        dd = ((pix[:, None, :] - _COLOR_RGB[pair][None]) ** 2).sum(-1)
        owner = np.full(comp.shape, -1)
        owner[comp] = pair[np.argmin(dd, axis=1)]
        for ci in pair:
            sub, m = ndimage.label(owner == ci, structure=np.ones((3, 3)))
            for j in range(1, m + 1):
                yield int(ci), sub == j, (y0, x0)
        return
    yield int(ranked[0][0]), comp, (y0, x0)


def _describe(img, bg, color_idx, mask, y0, x0, shorter, min_area) -> Detection | None:
    if mask.sum() < min_area:
        return None
    color = _COLOR_RGB[color_idx]
    ys, xs = np.nonzero(mask)
    # Coverage over the mask's box grown by two pixels (to include faint anti-aliased edges).
    H, W = img.shape[:2]
    by0, by1 = max(0, y0 + ys.min() - 2), min(H, y0 + ys.max() + 3)
    bx0, bx1 = max(0, x0 + xs.min() - 2), min(W, x0 + xs.max() + 3)
    region = img[by0:by1, bx0:bx1]
    alpha = _alpha(region.reshape(-1, 3), color, bg).reshape(region.shape[:2])
    own = np.zeros(alpha.shape, dtype=bool)
    own[ys + y0 - by0, xs + x0 - bx0] = True
    own = ndimage.binary_dilation(own, iterations=1)
    alpha = np.where(own, alpha, 0.0)
    solid_cols = np.nonzero(alpha.max(0) >= 0.5)[0]
    solid_rows = np.nonzero(alpha.max(1) >= 0.5)[0]
    if len(solid_cols) == 0 or len(solid_rows) == 0:
        return None
    # Sub-pixel edges: the partial coverage of the outermost columns adds to the solid width.
    left, right = solid_cols[0], solid_cols[-1]
    width = float(right - left + 1)
    width += float(alpha[:, left - 1].max()) if left > 0 else 0.0
    width += float(alpha[:, right + 1].max()) if right + 1 < alpha.shape[1] else 0.0
    width = max(width - 1.0, 1.0)  # a half-covered pixel on each side is the true edge
    top, bottom = solid_rows[0], solid_rows[-1]
    cx = bx0 + (left + right + 1) / 2.0
    cy = by0 + (top + bottom + 1) / 2.0
    scores = _shape_scores(alpha, cx - bx0, cy - by0, width)
    size = "large" if width / shorter >= _SIZE_THRESHOLD else "small"
    return Detection(_COLOR_NAMES[color_idx], SHAPES[int(np.argmax(scores))], size, cx, cy, width,
                     float(alpha.sum()), scores)


_GRID = 33          # canonical sampling grid for shape matching
_GRID_EXTENT = 1.3  # half-widths covered on each side of the centre


def _canonical_coords() -> np.ndarray:
    return np.linspace(-_GRID_EXTENT, _GRID_EXTENT, _GRID)


@lru_cache(maxsize=1)
def _templates() -> np.ndarray:
    """Templates [shapes, variants, G, G] in canonical units (half width = 1): each shape at a few
    scales, vertical offsets and blurs, so compressed or blurry renderings still match their shape."""
    fine = 4
    coords = np.linspace(-_GRID_EXTENT, _GRID_EXTENT, _GRID * fine)
    dx, dy = np.meshgrid(coords, coords)
    step = coords[1] - coords[0]
    out = []
    for shape in SHAPES:
        variants = []
        for scale in (0.9, 1.0, 1.1, 1.2):
            for off in (-0.12, 0.0, 0.12):
                cov = shape_coverage(shape, scale / step, dx / step, (dy - off) / step)
                for blur in (0.0, 0.12, 0.24):
                    t = ndimage.gaussian_filter(cov, blur / step) if blur else cov
                    variants.append(t.reshape(_GRID, fine, _GRID, fine).mean(axis=(1, 3)))
        out.append(np.stack(variants))
    return np.stack(out).astype(np.float32)


def _shape_scores(alpha: np.ndarray, cx: float, cy: float, width: float) -> np.ndarray:
    """Best overlap (soft IoU) of the coverage, resampled to the canonical grid around the
    object's centre, with each shape's templates."""
    half = width / 2.0
    c = _canonical_coords() * half
    yy, xx = np.meshgrid(cy + c - 0.5, cx + c - 0.5, indexing="ij")
    patch = ndimage.map_coordinates(alpha, [yy, xx], order=1, mode="constant", cval=0.0).astype(np.float32)
    t = _templates()
    inter = np.minimum(t, patch).sum(axis=(2, 3))
    union = np.maximum(t, patch).sum(axis=(2, 3))
    return (inter / np.maximum(union, 1e-6)).max(axis=1)


def _link(per_frame: list[list[Detection]], diag: float) -> list[list[Detection | None]]:
    """Link detections into tracks by optimal assignment against each track's last position."""
    tracks: list[list[Detection | None]] = []
    for f, dets in enumerate(per_frame):
        last = [next((d for d in reversed(tr) if d is not None), None) for tr in tracks]
        assigned: set[int] = set()
        if tracks and dets:
            cost = np.zeros((len(tracks), len(dets)))
            for i, prev in enumerate(last):
                for j, d in enumerate(dets):
                    c = np.hypot(prev.x - d.x, prev.y - d.y) / diag
                    c += 0.5 * (prev.color != d.color) + 0.25 * (prev.shape != d.shape)
                    cost[i, j] = c
            rows, cols = linear_sum_assignment(cost)
            for i, j in zip(rows, cols):
                if cost[i, j] < 0.6:
                    tracks[i].append(dets[j])
                    assigned.add(j)
        for tr in tracks:
            if len(tr) < f + 1:
                tr.append(None)
        for j, d in enumerate(dets):
            if j not in assigned:
                tracks.append([None] * f + [d])
    return tracks


def _majority(values: list[str]) -> str:
    return Counter(values).most_common(1)[0][0]


def _motion(points: list[tuple[int, float, float]], width: int, height: int, num_frames: int) -> str:
    if len(points) < 2 or num_frames < 2:
        return "still"
    f = np.array([p[0] for p in points], dtype=np.float64)
    x = np.array([p[1] for p in points]) / width
    y = np.array([p[2] for p in points]) / height
    span = (num_frames - 1)
    if f.max() - f.min() < 1:
        return "still"
    dx = np.polyfit(f, x, 1)[0] * span
    dy = np.polyfit(f, y, 1)[0] * span
    if max(abs(dx), abs(dy)) < STILL_THRESHOLD:
        return "still"
    if abs(dx) >= abs(dy):
        return "right" if dx > 0 else "left"
    return "down" if dy > 0 else "up"


def relation(ax: float, ay: float, bx: float, by: float, shorter: int) -> str | None:
    """Relation of a to b from centres in pixels (the rule captions use)."""
    return relation_of_offset(ax - bx, ay - by, shorter)


def analyze_frames(frames: np.ndarray) -> dict:
    """Facts about frames [T, H, W, 3] uint8 (see module docstring)."""
    frames = np.asarray(frames)
    if frames.ndim != 4 or frames.shape[-1] != 3 or frames.shape[0] == 0:
        raise ValueError(f"frames must have shape [T, H, W, 3], got {frames.shape}")
    t, h, w = frames.shape[:3]
    background = _majority([background_of(fr) for fr in frames])
    per_frame = [detect(fr, background) for fr in frames]
    tracks = _link(per_frame, float(np.hypot(w, h)))
    min_presence = max(1, int(np.ceil(MIN_TRACK_PRESENCE * t)))
    tracks = [tr for tr in tracks if sum(d is not None for d in tr) >= min_presence]
    tracks.sort(key=lambda tr: next(i for i, d in enumerate(tr) if d is not None))
    objects = []
    for tr in tracks:
        seen = [d for d in tr if d is not None]
        points = [(i, d.x, d.y) for i, d in enumerate(tr) if d is not None]
        objects.append({
            "color": _majority([d.color for d in seen]),
            "shape": SHAPES[int(np.argmax(sum(d.shape_scores for d in seen)))],
            "size": _majority([d.size for d in seen]),
            "motion": _motion(points, w, h, t),
            "track": [[round(d.x / w, 4), round(d.y / h, 4)] if d is not None else None for d in tr],
            "frames_seen": len(seen),
        })
    relations = []
    for i in range(len(tracks)):
        for j in range(len(tracks)):
            if i == j:
                continue
            both = [k for k in range(t) if tracks[i][k] is not None and tracks[j][k] is not None]
            if not both:
                continue
            a, b = tracks[i][both[0]], tracks[j][both[0]]
            rel = relation(a.x, a.y, b.x, b.y, min(w, h))
            if rel is not None:
                relations.append({"subject": i, "relation": rel, "object": j})
    counts = Counter((o["color"], o["shape"]) for o in objects)
    return {
        "background": background,
        "num_frames": int(t),
        "width": int(w),
        "height": int(h),
        "count": len(objects),
        "objects": objects,
        "groups": [{"color": c, "shape": s, "count": n} for (c, s), n in counts.items()],
        "relations": relations,
    }


def analyze_video(video) -> dict:
    """Facts about a `kinema.Video`, a path to a video file, or a frame array."""
    from ..video import Video

    if isinstance(video, Video):
        facts = analyze_frames(video.frames)
        facts["fps"] = video.fps
        return facts
    if isinstance(video, (str, bytes)) or hasattr(video, "__fspath__"):
        return analyze_video(Video.read(video))
    return analyze_frames(np.asarray(video))
