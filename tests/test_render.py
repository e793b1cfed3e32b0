"""The renderer checked from pixels alone, without the analyzer."""

import numpy as np
import pytest

from kinema.world import SceneSpec, render
from kinema.world.spec import BACKGROUNDS, COLORS


def _spec(**obj):
    base = {"shape": "square", "color": "red", "size": "large", "motion": "still", "start": [0.5, 0.5]}
    base.update(obj)
    return SceneSpec.from_dict({"width": 128, "height": 96, "fps": 12, "num_frames": 13,
                                "background": "sand", "objects": [base]})


def _mask(frame, bg):
    return np.abs(frame.astype(int) - np.array(BACKGROUNDS[bg])).sum(-1) > 30


def test_background_and_object_colours_are_exact():
    frames = render(_spec(color="purple"))
    assert tuple(frames[0, 0, 0]) == BACKGROUNDS["sand"]
    assert tuple(frames[0, 48, 64]) == COLORS["purple"]


@pytest.mark.parametrize("size,frac", [("small", 0.15), ("large", 0.30)])
def test_object_width_is_its_fraction_of_the_shorter_side(size, frac):
    frame = render(_spec(size=size))[0].astype(float)
    bg, fg = np.array(BACKGROUNDS["sand"], float), np.array(COLORS["red"], float)
    coverage = ((frame - bg) @ (fg - bg)) / ((fg - bg) @ (fg - bg))
    assert coverage[48].sum() == pytest.approx(frac * 96, abs=0.5)  # the centre row, in pixels


@pytest.mark.parametrize("motion,axis,sign", [("right", 1, 1), ("left", 1, -1), ("down", 0, 1), ("up", 0, -1)])
def test_motion_moves_the_centre_by_the_distance(motion, axis, sign):
    start = {"right": [0.25, 0.5], "left": [0.75, 0.5], "down": [0.5, 0.25], "up": [0.5, 0.75]}[motion]
    spec = _spec(motion=motion, start=start, size="small")
    frames = render(spec)
    def centre(f):
        ys, xs = np.nonzero(_mask(f, "sand"))
        return (ys.mean(), xs.mean())[axis]
    moved = centre(frames[-1]) - centre(frames[0])
    extent = spec.height if axis == 0 else spec.width
    assert moved == pytest.approx(sign * 0.45 * extent, abs=1.0)


def test_shapes_fill_their_boxes_as_expected():
    fills = {}
    for shape in ("square", "circle", "triangle", "star"):
        frame = render(_spec(shape=shape))[0]
        m = _mask(frame, "sand")
        ys, xs = np.nonzero(m)
        fills[shape] = m.sum() / ((np.ptp(ys) + 1) * (np.ptp(xs) + 1))
    assert fills["square"] > 0.95
    assert 0.72 < fills["circle"] < 0.85
    assert 0.42 < fills["triangle"] < 0.58
    assert fills["star"] < fills["triangle"]
    # the triangle points up: its top row is narrower than its bottom row
    m = _mask(render(_spec(shape="triangle"))[0], "sand")
    rows = np.nonzero(m.any(1))[0]
    assert m[rows[0]].sum() < m[rows[-1]].sum()


def test_edges_are_anti_aliased():
    frame = render(_spec(shape="circle"))[0].astype(int)
    levels = {tuple(p) for p in frame.reshape(-1, 3)}
    assert len(levels) > 10  # partial-coverage blends exist between the two flat colours


@pytest.mark.parametrize("w,h,t", [(32, 32, 1), (224, 128, 5), (128, 224, 3), (306, 128, 2), (33, 65, 4)])
def test_any_size_aspect_and_length(w, h, t):
    spec = SceneSpec.from_dict({"width": w, "height": h, "num_frames": t, "background": "black",
                                "objects": [{"shape": "star", "color": "white", "size": "small"}]})
    frames = render(spec)
    assert frames.shape == (t, h, w, 3) and frames.dtype == np.uint8


def test_deterministic():
    assert np.array_equal(render(_spec(shape="star")), render(_spec(shape="star")))


def _render_frame_by_frame(spec: SceneSpec) -> np.ndarray:
    """The plain definition: each object blended into each frame in turn over its bounding box."""
    import math

    from kinema.world.render import shape_coverage

    w, h, t = spec.width, spec.height, spec.num_frames
    canvas = np.empty((t, h, w, 3), dtype=np.float32)
    canvas[:] = np.asarray(BACKGROUNDS[spec.background], dtype=np.float32)
    for obj in spec.objects:
        color = np.asarray(COLORS[obj.color], dtype=np.float32)
        half = spec.object_width_px(obj) / 2.0
        for f in range(t):
            cx, cy = spec.center(obj, f)
            cx, cy = cx * w, cy * h
            x0, x1 = max(0, math.floor(cx - half - 1)), min(w, math.ceil(cx + half + 1))
            y0, y1 = max(0, math.floor(cy - half - 1)), min(h, math.ceil(cy + half + 1))
            if x0 >= x1 or y0 >= y1:
                continue
            dx, dy = np.meshgrid(np.arange(x0, x1) + 0.5 - cx, np.arange(y0, y1) + 0.5 - cy)
            alpha = shape_coverage(obj.shape, half, dx, dy).astype(np.float32)[..., None]
            region = canvas[f, y0:y1, x0:x1]
            region += (color - region) * alpha
    return np.clip(np.round(canvas), 0, 255).astype(np.uint8)


def test_whole_clip_drawing_equals_frame_by_frame_blending():
    from kinema.world.sample import sample_spec

    rng = np.random.default_rng(7)
    sizes = [(128, 128, 25), (224, 128, 9), (96, 176, 2), (33, 47, 1), (64, 64, 24)]
    for i in range(60):
        w, h, t = sizes[i % len(sizes)]
        spec = sample_spec(rng, split=("train", "heldout")[i % 2], width=w, height=h, num_frames=t)
        assert np.array_equal(render(spec), _render_frame_by_frame(spec)), spec.to_dict()
