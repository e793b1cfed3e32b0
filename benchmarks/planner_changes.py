"""The benchmark prompts two scene planners read differently.

A plan (objects, relation, background; or none, where the planner is unsure) is all a planner
hands on: the objects' places come from the request's seed, so two pipelines with the same
transformer and autoencoder whose planners plan every benchmark prompt alike draw the very same
benchmark videos, and a new planner needs no new `kinema eval` for the prompts it reads as the old
one did. This lists the prompts where the plans differ.

    python benchmarks/planner_changes.py PLANNER_A PLANNER_B [--n 200] [-o OUT.md]

PLANNER_A and B: pipeline folders, or planner folders (OUT/planner of `kinema train planner`).
"""

from __future__ import annotations

import argparse
from pathlib import Path


def load_planner(path: str):
    """The scene planner of a pipeline folder, or a planner folder itself (loaded and checked as a
    pipeline loads its planner)."""
    from kinema.layout.planner import PlannerConfig, ScenePlanner
    from kinema.pipeline import _load_component

    folder = Path(path)
    if (folder / "planner").is_dir():
        folder = folder / "planner"
    if not (folder / "config.json").is_file():
        raise SystemExit(f"{path}: neither a pipeline folder with a planner/ nor a planner folder")
    return _load_component(folder.parent, folder.name, PlannerConfig, ScenePlanner)


def text_length(path: str) -> int:
    """The tokens a pipeline folder's text encoder reads (32, the shipped model's, for a planner folder)."""
    import json

    config = Path(path) / "text_encoder" / "config.json"
    return int(json.loads(config.read_text()).get("max_length", 32)) if config.is_file() else 32


def plans(planner, text_encoder, prompts: list[str]) -> list[dict | None]:
    """Each prompt's plan as a dict without its confidence (None where the planner is unsure)."""
    from kinema.layout.planner import plan_prompts

    return [None if plan is None else {k: v for k, v in plan.to_dict().items() if k != "confidence"}
            for plan in plan_prompts(planner, text_encoder, prompts)]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("planner_a")
    ap.add_argument("planner_b")
    ap.add_argument("--n", type=int, default=200, help="benchmark prompts per category and split")
    ap.add_argument("-o", "--out", default=None, help="also write the Markdown here")
    args = ap.parse_args()

    from kinema.eval.prompts import benchmark_items
    from kinema.layout.planner import describe_plan
    from kinema.train.components import load_text_encoder

    text_encoder = load_text_encoder("", text_length(args.planner_a))
    items = benchmark_items(args.n)
    prompts = [it.prompt for it in items]
    a = plans(load_planner(args.planner_a), text_encoder, prompts)
    b = plans(load_planner(args.planner_b), text_encoder, prompts)
    changed = [(it, pa, pb) for it, pa, pb in zip(items, a, b) if pa != pb]
    lines = [f"# python benchmarks/planner_changes.py {args.planner_a} {args.planner_b} --n {args.n}", "",
             f"{len(items)} benchmark prompts (every category, seen and held-out); "
             f"**{len(changed)} planned differently**.", ""]
    say = lambda p: "no plan" if p is None else describe_plan(p)
    lines += [f"- {it.category}/{it.split}/{it.index}: “{it.prompt}”: A {say(pa)}; B {say(pb)}"
              for it, pa, pb in changed]
    text = "\n".join(lines) + "\n"
    print(text)
    if args.out:
        Path(args.out).write_text(text)


if __name__ == "__main__":
    main()
