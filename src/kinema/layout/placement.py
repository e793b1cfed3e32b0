"""Where the planned objects go: the world's placement prior, kept to the asked relation.

Positions are drawn as the world draws them (each object inside the frame for the whole clip,
apart from the others), again until the first object stands to the second as the plan's
relation says (by the rule the captions and the analyzer use).
"""

from __future__ import annotations

import copy

import numpy as np

from ..world.captions import relation_between
from ..world.sample import place_objects
from ..world.spec import SceneSpec, SpecError
from .planner import Plan


def place_plan(plan: Plan, width: int, height: int, num_frames: int, rng: np.random.Generator,
               fps: float = 12.0, tries: int = 400) -> SceneSpec | None:
    """A scene spec of `plan` for a width x height clip of num_frames frames; None when no
    placement fits (too many large objects for a small frame)."""
    objects = [copy.copy(o) for o in plan.objects]
    spec = SceneSpec(width=width, height=height, fps=fps, num_frames=num_frames, background=plan.background,
                     objects=objects)
    for _ in range(tries):
        if not place_objects(spec, rng):
            continue
        if plan.relation is None or relation_between(spec, 0, 1) == plan.relation:
            try:
                return spec.validate()
            except SpecError:
                continue
    return None
