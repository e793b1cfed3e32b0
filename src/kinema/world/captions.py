"""Captions for scene specs in many phrasings. Canonical words (DESIGN §3) are always possible;
synonyms add variety. `canonical_caption` is the one fixed phrasing used by the benchmark."""

from __future__ import annotations

import numpy as np

from .spec import SceneSpec, ObjectSpec

NUMBER_WORDS = {1: "a", 2: "two", 3: "three"}
SIZE_WORDS = {"large": ["large", "large", "big"], "small": ["small", "small", "little"]}
MOTION_FINITE = {
    "still": ["stays still", "stays still", "sits still", "does not move", "rests in place"],
    "left": ["moves left", "moves left", "slides to the left", "drifts left", "travels left"],
    "right": ["moves right", "moves right", "slides to the right", "drifts right", "travels right"],
    "up": ["moves up", "moves up", "rises", "drifts upward", "travels up"],
    "down": ["moves down", "moves down", "falls", "drifts downward", "travels down"],
}
MOTION_PLURAL = {
    "still": ["stay still", "stay still", "sit still", "do not move"],
    "left": ["move left", "move left", "slide to the left", "drift left"],
    "right": ["move right", "move right", "slide to the right", "drift right"],
    "up": ["move up", "move up", "rise", "drift upward"],
    "down": ["move down", "move down", "fall", "drift downward"],
}
MOTION_PARTICIPLE = {
    "still": ["staying still", "standing still", "not moving"],
    "left": ["moving left", "moving left", "sliding to the left"],
    "right": ["moving right", "moving right", "sliding to the right"],
    "up": ["moving up", "moving up", "rising"],
    "down": ["moving down", "moving down", "falling"],
}
RELATION_PHRASES = {
    "left of": ["to the left of", "left of"],
    "right of": ["to the right of", "right of"],
    "above": ["above"],
    "below": ["below", "beneath"],
}

# Sentence patterns: {c} a finite clause ("a red circle moves right"), {n} a nominal phrase
# ("a red circle moving right"), {bg} the background colour.
PATTERNS = [
    "{c} on a {bg} background",
    "on a {bg} background, {c}",
    "{c} against a {bg} backdrop",
    "{bg} background: {c}",
    "a video of {n} on {bg}",
    "{C}. The background is {bg}.",
    "a shot where {c}, over a {bg} background",
    "{n}, {bg} background",
    "in front of a {bg} background, {c}",
    "{c} in a {bg} scene",
]


def object_groups(spec: SceneSpec) -> list[list[int]]:
    """Indices of identical objects (same shape, colour, size, motion), each group in the order of
    its first object: the order captions name them in."""
    groups: dict[tuple, list[int]] = {}
    for i, o in enumerate(spec.objects):
        groups.setdefault((o.shape, o.color, o.size, o.motion), []).append(i)
    return list(groups.values())


def group_objects(spec: SceneSpec) -> list[tuple[ObjectSpec, int]]:
    """Identical objects (same shape, colour, size, motion) merged with their count, in order."""
    return [(spec.objects[members[0]], len(members)) for members in object_groups(spec)]


def relation_between(spec: SceneSpec, i: int, j: int, frame: int = 0) -> str | None:
    """'left of' / 'right of' / 'above' / 'below' for object i relative to j, or None if unclear."""
    ax, ay = spec.center(spec.objects[i], frame)
    bx, by = spec.center(spec.objects[j], frame)
    return relation_of_offset((ax - bx) * spec.width, (ay - by) * spec.height, spec.shorter_side)


def caption_relation(spec: SceneSpec) -> str | None:
    """The relation a caption of `spec` names when it may name one: two distinct single objects in
    a clear relation (else None)."""
    groups = group_objects(spec)
    if len(groups) == 2 and all(n == 1 for _, n in groups):
        return relation_between(spec, 0, 1)
    return None


def relation_of_offset(dx: float, dy: float, shorter: float) -> str | None:
    """The relation rule, from a's centre minus b's in pixels: one axis must dominate the other by
    1.5 and exceed a tenth of the shorter side. The analyzer judges videos with the same rule."""
    if abs(dx) >= 1.5 * abs(dy) and abs(dx) > 0.1 * shorter:
        return "left of" if dx < 0 else "right of"
    if abs(dy) >= 1.5 * abs(dx) and abs(dy) > 0.1 * shorter:
        return "above" if dy < 0 else "below"
    return None


def _pick(rng: np.random.Generator | None, options: list[str]) -> str:
    return options[0] if rng is None else options[int(rng.integers(len(options)))]


def _noun(obj: ObjectSpec, count: int, rng) -> str:
    size = _pick(rng, SIZE_WORDS[obj.size])
    shape = obj.shape + ("s" if count > 1 else "")
    article = NUMBER_WORDS[count]
    if count == 1 and size[0] in "aeiou":
        article = "an"
    return f"{article} {size} {obj.color} {shape}"


def _clauses(spec: SceneSpec, rng, with_relation: bool = True) -> tuple[str, str]:
    rel = caption_relation(spec) if with_relation else None
    if rel is not None:
        a, b = spec.objects
        rel_words = _pick(rng, RELATION_PHRASES[rel])
        na, nb = _noun(a, 1, rng), _noun(b, 1, rng)
        finite = f"{na} {_pick(rng, MOTION_FINITE[a.motion])} {rel_words} {nb} that {_pick(rng, MOTION_FINITE[b.motion])}"
        nominal = f"{na} {_pick(rng, MOTION_PARTICIPLE[a.motion])} {rel_words} {nb} {_pick(rng, MOTION_PARTICIPLE[b.motion])}"
        return finite, nominal
    groups = group_objects(spec)
    finite_parts, nominal_parts = [], []
    for obj, n in groups:
        noun = _noun(obj, n, rng)
        verbs = MOTION_FINITE if n == 1 else MOTION_PLURAL
        finite_parts.append(f"{noun} {_pick(rng, verbs[obj.motion])}")
        nominal_parts.append(f"{noun} {_pick(rng, MOTION_PARTICIPLE[obj.motion])}")
    return _join(finite_parts), _join(nominal_parts)


def _join(parts: list[str]) -> str:
    if len(parts) == 1:
        return parts[0]
    return ", ".join(parts[:-1]) + " and " + parts[-1]


def caption(spec: SceneSpec, rng: np.random.Generator | None = None, with_relation: bool = True) -> str:
    """A caption in a random phrasing (or the canonical one when rng is None). Two distinct
    objects in a clear relation are described with it unless `with_relation` is False."""
    finite, nominal = _clauses(spec, rng, with_relation)
    pattern = PATTERNS[0] if rng is None else PATTERNS[int(rng.integers(len(PATTERNS)))]
    return pattern.format(c=finite, C=finite[0].upper() + finite[1:], n=nominal, bg=spec.background)


def canonical_caption(spec: SceneSpec, with_relation: bool = True) -> str:
    """The fixed phrasing: canonical words, first pattern."""
    return caption(spec, None, with_relation)
