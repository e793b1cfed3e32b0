"""Left-right mirror images of world scenes, for paired training (`data.mirror_pairs`).

The mirror of a scene has every start x at 1 - x and "left" and "right" motions swapped; its
caption then says "right" (or "right of") wherever the scene's says "left", and the reverse. Every
world shape is left-right symmetric, so rendering the mirrored spec gives exactly the scene's
frames flipped (the tests check it), and a training stream can flip instead of rendering again.
"""

from __future__ import annotations

import copy

from .spec import SceneSpec

MIRRORED_MOTION = {"left": "right", "right": "left"}


def mirror_spec(spec: SceneSpec) -> SceneSpec:
    """The scene with left and right swapped (a new spec; `spec` is unchanged)."""
    out = copy.deepcopy(spec)
    for obj in out.objects:
        obj.start = (1.0 - float(obj.start[0]), float(obj.start[1]))
        obj.motion = MIRRORED_MOTION.get(obj.motion, obj.motion)
    return out


def has_heldout_object(spec: SceneSpec) -> bool:
    """True when an object of the scene shows a held-out combination (so the train split never
    holds it: the mirror of a train scene can, e.g. a purple object moving right)."""
    return any(obj.is_heldout() for obj in spec.objects)
