"""Captions in sentence structures the world's own captions (`captions.caption`) never use, for
the scene planner to learn to read prompts as people write them.

The world captions every clip as one clause (or its nominal form) in one of ten frames. People
also say an object's motion after naming it ("a red circle left of a blue square; the circle
rises"), place the second object relative to the first ("a red circle, and above it a blue
square"), and name the background in a sentence of its own. Each caption here names the objects
in the order `captions.object_groups` gives and the relation `captions.caption_relation` names,
so the planner's targets (`train.planner.plan_targets`) are unchanged. The words for colours,
shapes, sizes, motions, relations and backgrounds are the world's (its synonyms included).

These captions are only the planner's (`kinema train planner --people-captions SHARE`): the
transformer's training captions, and so its recipes, are unchanged.
"""

from __future__ import annotations

import numpy as np

from .captions import (MOTION_FINITE, MOTION_PARTICIPLE, MOTION_PLURAL, RELATION_PHRASES, _join, _noun, _pick,
                       caption_relation, group_objects)
from .spec import ObjectSpec, SceneSpec

INVERSE = {"left of": "right of", "right of": "left of", "above": "below", "below": "above"}


def _background_sentence(bg: str, rng) -> str:
    return _pick(rng, [f"Background: {bg}.", f"Backdrop: {bg}.", f"All on {bg}.", f"It is all on {bg}.",
                       f"A plain {bg} background."])


def _background_part(bg: str, rng) -> str:
    return _pick(rng, [f" on {bg}", f" over a {bg} background", f", {bg} background", f" in front of {bg}",
                       f" in front of a {bg} backdrop"])


def _name(obj: ObjectSpec, others: list[ObjectSpec], count: int = 1) -> str | None:
    """The shortest 'the …' that tells `obj` from `others` (None if nothing does)."""
    for keys in (("shape",), ("color", "shape"), ("size", "shape"), ("size", "color", "shape")):
        if not any(all(getattr(o, k) == getattr(obj, k) for k in keys) for o in others):
            return "the " + " ".join(getattr(obj, k) for k in keys) + ("s" if count > 1 else "")
    return None


def _motion_after(spec: SceneSpec, rel: str | None, rng) -> str | None:
    """'a red circle left of a blue square on navy; the circle rises and the square falls'."""
    groups = group_objects(spec)
    objs = [o for o, _ in groups]
    names = [_name(o, objs[:i] + objs[i + 1:], n) for i, (o, n) in enumerate(groups)]
    if any(name is None for name in names):
        return None
    if rel is not None:
        nouns = f"{_noun(objs[0], 1, rng)} {_pick(rng, RELATION_PHRASES[rel])} {_noun(objs[1], 1, rng)}"
    else:
        nouns = _join([_noun(o, n, rng) for o, n in groups])
    motions = _join([f"{name} {_pick(rng, (MOTION_FINITE if n == 1 else MOTION_PLURAL)[o.motion])}"
                     for name, (o, n) in zip(names, groups)])
    return f"{nouns}{_background_part(spec.background, rng)}; {motions}"


def _placed_after(spec: SceneSpec, rel: str, rng) -> str:
    """'a red circle moving right, and above it a blue square falling': the second object placed
    relative to the first named, the relation said from the second's side."""
    a, b = spec.objects
    back = _pick(rng, RELATION_PHRASES[INVERSE[rel]])
    na = f"{_noun(a, 1, rng)} {_pick(rng, MOTION_PARTICIPLE[a.motion])}"
    nb = f"{_noun(b, 1, rng)} {_pick(rng, MOTION_PARTICIPLE[b.motion])}"
    body = _pick(rng, [f"{na}, and {back} it {nb}", f"{na}; {nb} is {back} it", f"{na}. {nb} is {back} it"])
    return body + _background_part(spec.background, rng)


def _related(a: ObjectSpec, b: ObjectSpec, rel: str, rng, motions: dict[str, list[str]]) -> str:
    """'a big red circle <a's motion in `motions`' form> left of a small blue square'."""
    return f"{_noun(a, 1, rng)} {_pick(rng, motions[a.motion])} {_pick(rng, RELATION_PHRASES[rel])} {_noun(b, 1, rng)}"


def _sentences(spec: SceneSpec, rel: str | None, rng) -> str:
    """One sentence per object (the relation in the first), the background in its own."""
    groups = group_objects(spec)
    if rel is not None:
        a, b = spec.objects
        first = _related(a, b, rel, rng, MOTION_FINITE) + "."
        name = _name(b, [a]) or "the other one"
        parts = [first, f"{name} {_pick(rng, MOTION_FINITE[b.motion])}."]
    else:
        parts = [f"{_noun(o, n, rng)} {_pick(rng, (MOTION_FINITE if n == 1 else MOTION_PLURAL)[o.motion])}."
                 for o, n in groups]
    parts = [p[0].upper() + p[1:] for p in parts]
    bg = _background_sentence(spec.background, rng)
    return " ".join([bg, *parts] if rng.random() < 0.5 else [*parts, bg])


def _nominal_frames(spec: SceneSpec, rel: str | None, rng) -> str:
    """The objects as a noun phrase in frames the world does not write."""
    groups = group_objects(spec)
    if rel is not None:
        a, b = spec.objects
        nominal = f"{_related(a, b, rel, rng, MOTION_PARTICIPLE)} {_pick(rng, MOTION_PARTICIPLE[b.motion])}"
    else:
        nominal = _join([f"{_noun(o, n, rng)} {_pick(rng, MOTION_PARTICIPLE[o.motion])}" for o, n in groups])
    bg = spec.background
    return _pick(rng, [f"we see {nominal} in front of a {bg} background", f"{bg} scene: {nominal}",
                       f"{nominal}, all over {bg}", f"in this clip, {nominal} on {bg}",
                       f"{nominal} together, {bg} backdrop"])


def people_caption(spec: SceneSpec, rng: np.random.Generator) -> str:
    """A caption of `spec` in one of the structures above, chosen at random (those that cannot
    describe this scene unambiguously are skipped)."""
    rel = caption_relation(spec)
    makers = [lambda: _motion_after(spec, rel, rng), lambda: _sentences(spec, rel, rng),
              lambda: _nominal_frames(spec, rel, rng)]
    if rel is not None:
        makers.append(lambda: _placed_after(spec, rel, rng))
    for k in rng.permutation(len(makers)):
        text = makers[int(k)]()
        if text is not None:
            return text
    raise AssertionError("the sentence and nominal structures describe every scene")
