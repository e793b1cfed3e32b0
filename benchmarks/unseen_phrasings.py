"""How the shipped model's scene planner reads prompts phrased in ways the world's captions never are.

`kinema eval` asks for every scene in one fixed phrasing, and the planner was trained on the ten
sentence patterns the world writes (`kinema.world.captions.PATTERNS`). People write otherwise. This
rewrites each benchmark prompt (the same scenes, seen and held-out apart) in sentence patterns
that are not among the world's, with the world's own words, and reads every one with the
planner, the first thing `kinema generate` does with a prompt:

- right: the plan names every object (colour, shape, size, motion, in order), the relation and
  the background as asked;
- unsure: the planner gives no plan (a part below its confidence), and the video is made from the
  words alone, which the README's investigations show loses placement and count;
- wrong: a confident plan that differs from the prompt, and the video follows it.

    python benchmarks/unseen_phrasings.py [--model PATH] [--n 50] [--categories single,count,relation,binding]
                                          [--examples 3] [-o OUT.md]

It reads text only (no video is made): a few seconds for the default 1,600 prompts a phrasing.
"""

from __future__ import annotations

import argparse
import sys
from collections import Counter
from dataclasses import dataclass
from typing import Callable

from kinema.world.captions import (MOTION_FINITE, MOTION_PARTICIPLE, MOTION_PLURAL, RELATION_PHRASES,
                                   caption_relation, group_objects)
from kinema.world.spec import ObjectSpec, SceneSpec

INVERSE = {"left of": "right of", "right of": "left of", "above": "below", "below": "above"}
NUMBER = {1: "a", 2: "two", 3: "three"}


@dataclass
class Asked:
    """What a phrasing asks for, in the order it names things: objects, the relation of the first
    named to the second (None: none), the background."""

    objects: list[tuple[str, str, str, str]]  # (colour, shape, size, motion)
    relation: str | None
    background: str


def _noun(obj: ObjectSpec, count: int, adjectives: str = "size colour") -> str:
    words = {"size": obj.size, "colour": obj.color}
    article = NUMBER[count] if count > 1 else ("an" if words[adjectives.split()[0]][0] in "aeiou" else "a")
    return " ".join([article, *(words[a] for a in adjectives.split()), obj.shape + ("s" if count > 1 else "")])


def _finite(obj: ObjectSpec, count: int) -> str:
    return (MOTION_FINITE if count == 1 else MOTION_PLURAL)[obj.motion][0]


def _participle(obj: ObjectSpec) -> str:
    return MOTION_PARTICIPLE[obj.motion][0]


def _list(parts: list[str]) -> str:
    return parts[0] if len(parts) == 1 else ", ".join(parts[:-1]) + " and " + parts[-1]


def _asked(spec: SceneSpec, relation: str | None, reverse: bool = False) -> Asked:
    objects = [(o.color, o.shape, o.size, o.motion) for o in spec.objects]
    if reverse:
        objects, relation = objects[::-1], INVERSE[relation] if relation else None
    return Asked(objects, relation, spec.background)


# Each phrasing: (name, function(spec, relation or None) -> (prompt, what it asks for)). None of
# these sentence patterns is among the world's captions; every word is one the world uses.
def _nominal(spec, rel) -> str:
    """'a large red circle moving right below a small blue square moving up', or the groups listed."""
    if rel:
        a, b = spec.objects
        return f"{_noun(a, 1)} {_participle(a)} {RELATION_PHRASES[rel][0]} {_noun(b, 1)} {_participle(b)}"
    return _list([f"{_noun(o, n)} {_participle(o)}" for o, n in group_objects(spec)])


def _show(spec, rel):
    return f"show {_nominal(spec, rel)}, on {spec.background}", _asked(spec, rel)


def _background_first(spec, rel):
    return f"a {spec.background} backdrop with {_nominal(spec, rel)}", _asked(spec, rel)


def _phrasing(relation: Callable, groups: Callable) -> Callable:
    """A phrasing from its two templates: relation(spec, a, b, relation words) for a relation
    prompt's two objects, groups(spec, [(object, count), …]) for any other scene."""
    def phrase(spec, rel):
        if rel:
            return relation(spec, *spec.objects, RELATION_PHRASES[rel][0]), _asked(spec, rel)
        return groups(spec, group_objects(spec)), _asked(spec, rel)
    return phrase


_two_sentences = _phrasing(
    lambda spec, a, b, words: (f"The background is {spec.background}. {_noun(a, 1).capitalize()} {_finite(a, 1)} "
                               f"{words} {_noun(b, 1)}. The {b.shape} {_finite(b, 1)}."),
    lambda spec, groups: f"The background is {spec.background}. " + " ".join(
        f"{_noun(o, n).capitalize()} {_finite(o, n)}." for o, n in groups))

_colour_first = _phrasing(
    lambda spec, a, b, words: (f"{_noun(a, 1, 'colour size')} {_finite(a, 1)} {words} "
                               f"{_noun(b, 1, 'colour size')} that {_finite(b, 1)}, {spec.background} background"),
    lambda spec, groups: _list([f"{_noun(o, n, 'colour size')} {_finite(o, n)}" for o, n in groups])
    + f", {spec.background} background")

_there_is = _phrasing(
    lambda spec, a, b, words: (f"there is {_noun(a, 1)} {words} {_noun(b, 1)} on a {spec.background} "
                               f"background; the {a.shape} {_finite(a, 1)} and the {b.shape} {_finite(b, 1)}"),
    lambda spec, groups: f"on a {spec.background} background there is "
    + _list([f"{_noun(o, n)} that {_finite(o, n)}" for o, n in groups]))


def _named_second_first(spec, rel):
    """The second object named first, the first placed relative to it ('B, and A left of it')."""
    if rel:
        a, b = spec.objects
        text = (f"{_noun(b, 1)} {_participle(b)} on {spec.background}, with {_noun(a, 1)} {_participle(a)} "
                f"{RELATION_PHRASES[rel][0]} it")
        return text, _asked(spec, rel, reverse=True)
    return _show(spec, rel)


_please = _phrasing(
    lambda spec, a, b, words: (f"please animate {_noun(a, 1)} that {_finite(a, 1)} {words} {_noun(b, 1)} that "
                               f"{_finite(b, 1)}, with a {spec.background} background"),
    lambda spec, groups: "please animate " + _list([f"{_noun(o, n)} that {_finite(o, n)}" for o, n in groups])
    + f", with a {spec.background} background")


def _listed(spec, rel):
    """'Objects: a large red circle (moving right), a small blue square (moving up). Background: navy.'"""
    parts = [f"{_noun(o, n)} ({_participle(o)})" for o, n in group_objects(spec)]
    if rel:
        text = f"Objects: {parts[0]} {RELATION_PHRASES[rel][0]} {parts[1]}. Background: {spec.background}."
    else:
        text = f"Objects: {', '.join(parts)}. Background: {spec.background}."
    return text, _asked(spec, rel)


PHRASINGS: dict[str, Callable] = {
    "show …, on BG": _show,
    "a BG backdrop with …": _background_first,
    "The background is BG. Sentences.": _two_sentences,
    "colour before size": _colour_first,
    "there is …": _there_is,
    "the second named first (relation)": _named_second_first,
    "please animate …, with a BG background": _please,
    "Objects: … (moving). Background: BG.": _listed,
}


def canonical(spec, rel):
    from kinema.world.captions import canonical_caption

    return canonical_caption(spec, with_relation=rel is not None), _asked(spec, rel)


def judge(plan, asked: Asked) -> str:
    if plan is None:
        return "unsure"
    got = [(o.color, o.shape, o.size, o.motion) for o in plan.objects]
    ok = got == asked.objects and plan.relation == asked.relation and plan.background == asked.background
    return "right" if ok else "wrong"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", default=None, help="pipeline folder (default: the shipped kinema-tiny)")
    ap.add_argument("--n", type=int, default=50, help="benchmark prompts per category and split")
    ap.add_argument("--categories", default="single,count,relation,binding")
    ap.add_argument("--examples", type=int, default=3, help="wrong or unsure readings shown per phrasing")
    ap.add_argument("-o", "--out", default=None, help="also write the Markdown here")
    args = ap.parse_args()

    from kinema.eval.prompts import benchmark_items
    from kinema.layout.planner import plan_prompts
    from kinema.pipeline import Pipeline

    pipe = Pipeline.from_pretrained(args.model)
    if pipe.planner is None:
        sys.exit("this model has no scene planner")
    items = benchmark_items(args.n, categories=args.categories.split(","))
    lines = [f"# python benchmarks/unseen_phrasings.py --n {args.n} --categories {args.categories}", "",
             f"{len(items)} benchmark scenes, each asked in the benchmark's phrasing and in "
             f"{len(PHRASINGS)} sentence patterns the world's captions never use; the scene planner "
             f"of {args.model or 'kinema-tiny'} reads each.", "",
             "| phrasing | split | prompts | right | unsure (words alone) | wrong |", "|---|---|---|---|---|---|"]
    examples = []
    for name, phrase in {"the benchmark's own": canonical, **PHRASINGS}.items():
        if name.endswith("(relation)"):
            chosen = [it for it in items if it.category == "relation"]
        else:
            chosen = items
        if not chosen:
            continue
        prompts, asked = zip(*(phrase(it.spec, caption_relation(it.spec) if it.category == "relation" else None)
                               for it in chosen))
        plans = plan_prompts(pipe.planner, pipe.text_encoder, list(prompts))
        verdicts = [judge(p, a) for p, a in zip(plans, asked)]
        for split in ("seen", "heldout"):
            counts = Counter(v for v, it in zip(verdicts, chosen) if it.split == split)
            total = sum(counts.values())
            lines.append(f"| {name} | {split} | {total} | " + " | ".join(
                f"{100 * counts[v] / total:.1f}%" for v in ("right", "unsure", "wrong")) + " |")
        shown = 0
        for v, prompt, plan in zip(verdicts, prompts, plans):
            if v != "right" and shown < args.examples:
                from kinema.layout.planner import describe_plan

                read = "no plan" if plan is None else describe_plan(plan.to_dict())
                examples.append(f"- {name}, {v}: “{prompt}” → {read}")
                shown += 1
    lines += ["", "Readings that were not right (the first few a phrasing):", "", *examples, ""]
    text = "\n".join(lines)
    print(text)
    if args.out:
        from pathlib import Path

        Path(args.out).write_text(text)


if __name__ == "__main__":
    main()
