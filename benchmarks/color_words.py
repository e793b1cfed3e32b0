"""Does a model draw the colour a word names? One colour, one-object scenes, read by the analyzer.

N one-object scenes of the world's train split whose object has colour COLOR, each written in the
benchmark's canonical phrasing (with `--rename-word OLD=NEW`, NEW for OLD, as for a model trained
by `probe_train.py --rename-word`) and generated with seed i for scene i. Per model it prints how
many videos hold an object of COLOR, and which colours the analyzer found in the others.

    python benchmarks/color_words.py --model v9=shipped --color red --n 48 --size 64x64
    python benchmarks/color_words.py --model ft=runs/ft/final --rename-word red=table --color red
"""

from __future__ import annotations

import argparse
import sys
from collections import Counter
from dataclasses import replace
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from probe_train import rename_words, renames_or_exit  # noqa: E402
from relation_placement import share  # noqa: E402
from relation_stills import load_model, models_and_guidance, size_or_exit  # noqa: E402


def scenes(n: int, color: str, seed: int, width: int, height: int) -> list:
    """N one-object train-split scenes, their object recoloured to `color` where that keeps the
    scene in the train split (a held-out combination is drawn again); colour does not change
    where the world places an object."""
    from kinema.world.sample import sample_spec

    rng = np.random.default_rng([seed, 29])
    out = []
    while len(out) < n:
        spec = sample_spec(rng, split="train", width=width, height=height, num_objects=1)
        obj = replace(spec.objects[0], color=color)
        if obj.is_heldout():
            continue
        out.append(replace(spec, objects=[obj], seed=len(out)).validate())
    return out


def probe(pipe, specs: list, renames: dict[str, str], guidance: float | None) -> tuple[int, Counter]:
    """(videos holding an object of the scenes' colour, the colours found in the others)."""
    from kinema.world.analyze import analyze_video
    from kinema.world.captions import canonical_caption

    color = specs[0].objects[0].color
    texts = [rename_words(canonical_caption(s), renames) for s in specs]
    videos = pipe.generate_batch(texts, seeds=list(range(len(specs))), guidance=guidance,
                                 size=f"{specs[0].width}x{specs[0].height}")
    hits, others = 0, Counter()
    for v in videos:
        found = {d["color"] for d in analyze_video(v)["objects"]}
        if color in found:
            hits += 1
        else:
            others.update(found or {"nothing"})
    return hits, others


def main() -> None:
    from kinema.world.spec import COLORS

    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", nargs="+", action="extend", default=[], metavar="NAME=PATH", required=True,
                    help="pipeline folders to probe (PATH 'shipped' for the shipped model)")
    ap.add_argument("--guidance", nargs="+", action="extend", default=[], metavar="NAME=G")
    ap.add_argument("--color", required=True, choices=list(COLORS))
    ap.add_argument("--rename-word", action="append", default=[], metavar="OLD=NEW",
                    help="prompts say NEW for the word OLD (benchmarks/probe_train.py --rename-word)")
    ap.add_argument("--n", type=int, default=48)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--size", default="64x64")
    args = ap.parse_args()
    models, guidance = models_and_guidance("color_words", args.model, args.guidance)
    if args.n < 1:
        sys.exit("color_words: --n must be at least 1")
    renames = renames_or_exit("color_words", args.rename_word)

    width, height = size_or_exit("color_words", args.size)
    specs = scenes(args.n, args.color, args.seed, width, height)
    said = rename_words(args.color, renames)
    for name, path in models.items():
        pipe = load_model("color_words", name, path)
        hits, others = probe(pipe, specs, renames, guidance.get(name))
        found = ", ".join(f"{c} {k}" for c, k in others.most_common()) or "none"
        print(f"{name} ({path}): {len(specs)} one-object scenes at {width}x{height} asking for {args.color} "
              f"(prompts say {said!r}): {args.color} drawn in {share(hits, len(specs))}; "
              f"the others show: {found}", flush=True)


if __name__ == "__main__":
    main()
