"""Why relation and binding prompts fail, from an eval's samples: too few objects, an asked object
drawn as another shape or colour, or every object right and only the relation wrong.

    python benchmarks/relation_failures.py RUN_OR_SAMPLES [--out FILE] [--top 8]

RUN_OR_SAMPLES is a `kinema eval` (or `autoencoder_ceiling.py`) report folder, or its
samples.jsonl(.gz). For each relation and binding prompt that fails its verdict, every asked
(colour, shape) pair the video lacks is named by what came instead: the same colour in another
shape (size and still/moving of the asked object given), another colour in the asked shape, or
nothing of either.
"""

from __future__ import annotations

import argparse
from collections import Counter
from pathlib import Path

from kinema.eval.compare import samples_or_exit


def failure_kind(sample: dict) -> str:
    """'right', 'fewer than two objects', 'an asked object drawn wrong' or 'objects right, relation wrong'."""
    verdict = sample["verdict"][sample["category"]]
    if verdict:
        return "right"
    if sample["verdict"]["num_detected"] < 2:
        return "fewer than two objects"
    if not sample["verdict"]["binding"]:
        return "an asked object drawn wrong"
    return "objects right, relation wrong"


def what_came_instead(sample: dict) -> list[str]:
    """For each asked (colour, shape) the video lacks: what the analyzer found instead."""
    found = sample["detected"]
    pairs = {(d["color"], d["shape"]) for d in found}
    out = []
    for o in sample["spec"]["objects"]:
        if (o["color"], o["shape"]) in pairs:
            continue
        moving = "still" if o["motion"] == "still" else "moving"
        same_colour = [d["shape"] for d in found if d["color"] == o["color"]]
        same_shape = [d["color"] for d in found if d["shape"] == o["shape"]]
        if same_colour:
            out.append(f"{o['size']} {moving} {o['shape']} drawn as a {same_colour[0]}")
        elif same_shape:
            out.append(f"{o['color']} drawn as {same_shape[0]}")
        else:
            out.append(f"{o['color']} {o['shape']} not drawn")
    return out


def report(samples: list[dict], top: int = 8) -> str:
    lines = []
    for category in ("relation", "binding"):
        for split in ("seen", "heldout"):
            rows = [s for s in samples if s["category"] == category and s["split"] == split]
            if not rows:
                continue
            kinds = Counter(failure_kind(s) for s in rows)
            lines += [f"## {category}, {split}: {len(rows)} videos", "",
                      "| outcome | videos | share |", "|---|---|---|"]
            for kind in ("right", "an asked object drawn wrong", "fewer than two objects",
                         "objects right, relation wrong"):
                lines.append(f"| {kind} | {kinds[kind]} | {kinds[kind] / len(rows):.1%} |")
            instead = Counter(x for s in rows if failure_kind(s) == "an asked object drawn wrong"
                              for x in what_came_instead(s))
            lines += ["", "| asked object lacking, and what came instead | objects |", "|---|---|"]
            lines += [f"| {k} | {n} |" for k, n in instead.most_common(top)]
            lines.append("")
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("run", help="eval report folder or samples.jsonl(.gz)")
    ap.add_argument("--out", default=None, help="also write the Markdown here")
    ap.add_argument("--top", type=int, default=8, help="rows of the 'what came instead' tables")
    args = ap.parse_args()
    samples = samples_or_exit(args.run, "relation_failures.py")
    text = f"# python benchmarks/relation_failures.py {args.run}\n\n" + report(samples, args.top)
    print(text)
    if args.out:
        Path(args.out).write_text(text + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
