"""Random scene specs with `train` and `heldout` splits.

The train split never produces an object with a held-out combination (spec.HELDOUT_*); every
scene of the heldout split has at least one such object. Placement keeps objects inside the
frame for the whole clip and apart from each other by a margin, so the analyzer can tell them apart.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

from .spec import (BACKGROUNDS, COLORS, MOTIONS, SHAPES, SIZES, ObjectSpec, SceneSpec, SpecError)

SPLITS = ("train", "heldout")
GAP_FRACTION = 0.06  # minimum gap between objects, as a fraction of the shorter side


def _choice(rng: np.random.Generator, options) -> str:
    options = list(options)
    return options[int(rng.integers(len(options)))]


def sample_object(rng: np.random.Generator, split: str, size_p: np.ndarray | None = None,
                  shape_p: np.ndarray | None = None) -> ObjectSpec:
    """A random object of `split`; `size_p` and `shape_p` give the probability of each of SIZES and
    SHAPES (None: uniform)."""
    while True:
        shape = _choice(rng, SHAPES) if shape_p is None else SHAPES[int(rng.choice(len(SHAPES), p=shape_p))]
        color = _choice(rng, COLORS)
        size = _choice(rng, SIZES) if size_p is None else list(SIZES)[int(rng.choice(len(SIZES), p=size_p))]
        obj = ObjectSpec(shape=shape, color=color, size=size, motion=_choice(rng, MOTIONS))
        if split == "heldout" or not obj.is_heldout():
            return obj


def sample_heldout_object(rng: np.random.Generator, size_p: np.ndarray | None = None,
                          shape_p: np.ndarray | None = None) -> ObjectSpec:
    while True:
        obj = sample_object(rng, "heldout", size_p, shape_p)
        if obj.is_heldout():
            return obj


def place_objects(spec: SceneSpec, rng: np.random.Generator, tries: int = 60) -> bool:
    """Choose start positions (and distances) so every object stays in frame and apart."""
    gap_px = GAP_FRACTION * spec.shorter_side
    placed: list[int] = []
    for idx, obj in enumerate(spec.objects):
        hx, hy = spec.half_extent(obj)
        for _ in range(tries):
            obj.distance = float(rng.uniform(0.35, 0.5)) if obj.motion != "still" else 0.45
            dx = obj.distance if obj.motion in ("left", "right") else 0.0
            dy = obj.distance if obj.motion in ("up", "down") else 0.0
            if 2 * hx + dx > 0.98 or 2 * hy + dy > 0.98:
                obj.distance = 0.35
                dx, dy = (min(dx, 0.35), min(dy, 0.35))
            lo_x, hi_x = hx + 0.01, 1 - hx - 0.01
            lo_y, hi_y = hy + 0.01, 1 - hy - 0.01
            if obj.motion == "right":
                hi_x -= dx
            elif obj.motion == "left":
                lo_x += dx
            elif obj.motion == "down":
                hi_y -= dy
            elif obj.motion == "up":
                lo_y += dy
            if lo_x > hi_x or lo_y > hi_y:
                return False
            obj.start = (float(rng.uniform(lo_x, hi_x)), float(rng.uniform(lo_y, hi_y)))
            if all(spec.min_gap(j, idx) >= gap_px for j in placed):
                placed.append(idx)
                break
        else:
            return False
    return True


def sample_spec(rng: np.random.Generator, split: str = "train", width: int = 128, height: int = 128,
                fps: float = 12.0, num_frames: int = 25, max_objects: int = 3,
                seed: int = 0, num_objects: int | None = None,
                count_weights: Sequence[float] | None = None,
                size_weights: Sequence[float] | None = None, group_probability: float = 0.0,
                shape_weights: Sequence[float] | None = None, weights_scope: str = "all") -> SceneSpec:
    """A random valid scene. `num_objects` fixes the count; otherwise 1–`max_objects`, drawn with
    `count_weights` (one weight per count from 1; default 45 / 35 / 20 %). `size_weights` weighs
    each of SIZES (small, large; default even), `shape_weights` each of SHAPES (default even). `group_probability` is the chance that a scene of
    two or more objects is one group of identical objects ("three small red circles"); otherwise
    each object after the first repeats the one before with chance 0.2. `weights_scope` "distinct"
    applies the size and shape weights only to scenes of two or more objects that are not one group,
    so single objects and groups (the scenes count prompts ask for) keep the even mix."""
    if split not in SPLITS:
        raise SpecError(f"split: unknown value {split!r}; allowed: {', '.join(SPLITS)}")
    check_group_probability(group_probability)
    check_weights_scope(weights_scope)
    p = _count_weights(max_objects) if count_weights is None else count_probabilities(count_weights, max_objects)
    size_p = None if size_weights is None else size_probabilities(size_weights)
    shape_p = None if shape_weights is None else shape_probabilities(shape_weights)
    for _ in range(200):
        n = num_objects or int(rng.choice(np.arange(1, max_objects + 1), p=p))
        # drawn only when asked for, so the default mix keeps its random stream
        one_group = n > 1 and group_probability > 0 and rng.random() < group_probability
        weighted = weights_scope == "all" or (n > 1 and not one_group)
        scene_size_p, scene_shape_p = (size_p, shape_p) if weighted else (None, None)
        objects: list[ObjectSpec] = []
        for k in range(n):
            if k > 0 and (one_group or rng.random() < 0.2):
                prev = objects[-1]
                objects.append(ObjectSpec(prev.shape, prev.color, prev.size, prev.motion))
            elif split == "heldout" and k == 0:
                objects.append(sample_heldout_object(rng, scene_size_p, scene_shape_p))
            else:
                objects.append(sample_object(rng, split, scene_size_p, scene_shape_p))
        if split == "heldout":
            order = rng.permutation(n)
            objects = [objects[i] for i in order]
        spec = SceneSpec(width=width, height=height, fps=fps, num_frames=num_frames,
                         background=_choice(rng, BACKGROUNDS), seed=seed, objects=objects)
        if place_objects(spec, rng):
            return spec.validate()
    raise SpecError(f"could not place {max_objects} objects in a {width}x{height} frame")


def _count_weights(max_objects: int) -> np.ndarray:
    w = np.array([0.45, 0.35, 0.20][:max_objects])
    return w / w.sum()


def _probabilities(weights: Sequence[float], length: int, what: str, one_per: str) -> np.ndarray:
    """`length` weights as probabilities; a clear error, naming `what` they weigh, for a bad list."""
    w = np.asarray(list(weights), dtype=np.float64)
    if w.ndim != 1 or len(w) != length:
        raise SpecError(f"{what} weights: one per {one_per} wanted, got {list(weights)}")
    if not np.all(np.isfinite(w)) or (w < 0).any() or w.sum() <= 0:
        raise SpecError(f"{what} weights: must be non-negative with a positive sum, got {list(weights)}")
    return w / w.sum()


def count_probabilities(weights: Sequence[float], max_objects: int) -> np.ndarray:
    """Weights for 1..max_objects objects as probabilities; a clear error for a bad list."""
    return _probabilities(weights, max_objects, "count", f"object count from 1 to {max_objects}")


def check_group_probability(probability: float) -> float:
    """The chance of a scene being one group of identical objects; a clear error outside 0–1."""
    if isinstance(probability, bool) or not isinstance(probability, (int, float)) \
            or not 0.0 <= float(probability) <= 1.0:
        raise SpecError(f"group probability: must be a number from 0 to 1, got {probability!r}")
    return float(probability)


WEIGHTS_SCOPES = ("all", "distinct")


def check_weights_scope(scope: str) -> str:
    """Which scenes the size and shape weights apply to; a clear error for an unknown scope."""
    if scope not in WEIGHTS_SCOPES:
        raise SpecError(f"weights scope: unknown value {scope!r}; allowed: {', '.join(WEIGHTS_SCOPES)} "
                        "(distinct: only scenes of two or more objects that are not one group)")
    return scope


def size_probabilities(weights: Sequence[float]) -> np.ndarray:
    """Weights for each of SIZES (small, large) as probabilities; a clear error for a bad list."""
    return _probabilities(weights, len(SIZES), "size", f"size ({', '.join(SIZES)})")


def sample_specs(n: int, seed: int = 0, split: str = "train", **kwargs) -> list[SceneSpec]:
    """`n` specs, each drawn from its own stream seeded by (seed, index): reproducible and
    independent of how many were drawn before."""
    return [sample_spec(np.random.default_rng([seed, i]), split=split, seed=seed * 1_000_003 + i, **kwargs)
            for i in range(n)]


def shape_probabilities(weights: Sequence[float]) -> np.ndarray:
    """Weights for each of SHAPES as probabilities; a clear error for a bad list."""
    return _probabilities(weights, len(SHAPES), "shape", f"shape ({', '.join(SHAPES)})")
