"""The benchmark's prompt sets (DESIGN §4): per category, specs of the intended scene and their
canonical captions, seen (train-split combinations) and held-out apart."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..world.captions import canonical_caption, relation_between
from ..world.sample import place_objects, sample_heldout_object, sample_object
from ..world.spec import ObjectSpec, SceneSpec

CATEGORIES = ("single", "count", "relation", "binding", "static")
SPLITS = ("seen", "heldout")
# Which categories are measured on held-out combinations too (static is about temporal quality).
HELDOUT_CATEGORIES = ("single", "count", "relation", "binding")


@dataclass
class Item:
    category: str
    split: str
    index: int
    prompt: str
    spec: SceneSpec

    def to_dict(self) -> dict:
        return {"category": self.category, "split": self.split, "index": self.index, "prompt": self.prompt,
                "spec": self.spec.to_dict()}


def _objects(rng, n, split, distinct=False):
    objs: list[ObjectSpec] = []
    while len(objs) < n:
        if split == "heldout" and not objs:
            o = sample_heldout_object(rng)
        else:
            o = sample_object(rng, "train" if split == "seen" else "heldout")
        if distinct and any(o.color == p.color or o.shape == p.shape for p in objs):
            continue
        objs.append(o)
    if split == "heldout":
        objs = [objs[i] for i in rng.permutation(n)]
    return objs


def make_item(category: str, split: str, index: int, seed: int = 0, width: int = 128, height: int = 128,
              fps: float = 12.0, num_frames: int = 24) -> Item:
    rng = np.random.default_rng([seed, CATEGORIES.index(category), SPLITS.index(split), index])
    for _ in range(500):
        if category == "single":
            objs = _objects(rng, 1, split)
        elif category == "count":
            k = 1 + index % 3
            first = _objects(rng, 1, split)[0]
            objs = [ObjectSpec(first.shape, first.color, first.size, first.motion) for _ in range(k)]
        elif category in ("relation", "binding"):
            objs = _objects(rng, 2, split, distinct=True)
        elif category == "static":
            objs = _objects(rng, 1 + index % 2, split)
            for o in objs:
                o.motion = "still"
        else:
            raise ValueError(f"unknown category {category!r}")
        spec = SceneSpec(width=width, height=height, fps=fps, num_frames=num_frames,
                         background=str(rng.choice(["black", "gray", "navy", "sand"])), seed=index, objects=objs)
        if not place_objects(spec, rng):
            continue
        if category == "relation" and relation_between(spec, 0, 1) is None:
            continue
        spec.validate()
        prompt = canonical_caption(spec, with_relation=(category == "relation"))
        return Item(category, split, index, prompt, spec)
    raise RuntimeError(f"could not build a {category} prompt")


def check_categories(categories) -> tuple[str, ...]:
    """The benchmark categories asked for, in the benchmark's order; unknown names are refused by name."""
    if isinstance(categories, str) or not categories:
        raise ValueError(f"categories must be a non-empty list of {', '.join(CATEGORIES)}, got {categories!r}")
    unknown = [c for c in categories if c not in CATEGORIES]
    if unknown:
        raise ValueError(f"unknown benchmark categor{'y' if len(unknown) == 1 else 'ies'} "
                         f"{', '.join(map(repr, unknown))}: choose from {', '.join(CATEGORIES)}")
    return tuple(c for c in CATEGORIES if c in categories)


def benchmark_items(n: int, seed: int = 0, categories=None, **size) -> list[Item]:
    """`n` prompts per category and split (static: seen only). `categories` keeps only those
    categories; their prompts and scenes are the same as in the whole benchmark, so a run on a few
    categories pairs item by item with a whole run (`compare_evals`)."""
    chosen = CATEGORIES if categories is None else check_categories(categories)
    items = []
    for category in chosen:
        for split in SPLITS:
            if split == "heldout" and category not in HELDOUT_CATEGORIES:
                continue
            items.extend(make_item(category, split, i, seed, **size) for i in range(n))
    return items


