"""How often an asked object's shape comes out right, from `kinema eval` samples: one-object
prompts against two-object prompts (binding and relation), by size and by still or moving, and
the shapes that two-object videos draw instead.

Each asked object is matched to the most persistent detected object of its colour (prompts of
two objects always ask for two colours); an object whose colour is not shown is left out, so
the figures are about drawing the shape, not about drawing the object at all.

    python benchmarks/shape_by_scene.py RUN_OR_SAMPLES [--out FILE]
"""

from __future__ import annotations

import argparse
from collections import Counter

from kinema.eval.compare import samples_or_exit
from kinema.eval.stats import wilson_interval

GROUPS = {"one object": ("single",), "two objects": ("binding", "relation")}


def matched_shapes(rows: list[dict], categories: tuple[str, ...]) -> list[tuple[dict, str]]:
    """(asked object, shape drawn) for every asked object whose colour the video shows."""
    out = []
    for row in rows:
        if row["category"] not in categories:
            continue
        detected = sorted(row["detected"], key=lambda d: -d["frames_seen"])
        for want in row["spec"]["objects"]:
            got = next((d for d in detected if d["color"] == want["color"]), None)
            if got is not None:
                out.append((want, got["shape"]))
    return out


def tally(pairs: list[tuple[dict, str]]) -> dict[tuple[str, str], tuple[int, int]]:
    """(size, "still"/"moving") -> (shape right, objects); ("all", "all") for every object."""
    right, total = Counter(), Counter()
    for want, shape in pairs:
        for key in ((want["size"], "still" if want["motion"] == "still" else "moving"), ("all", "all")):
            total[key] += 1
            right[key] += shape == want["shape"]
    return {key: (right[key], total[key]) for key in total}


def confusion(pairs: list[tuple[dict, str]]) -> Counter:
    return Counter((want["shape"], shape) for want, shape in pairs)


def _pct(k: int, n: int) -> str:
    lo, hi = wilson_interval(k, n)
    return f"{100 * k / n:.1f}% ({100 * lo:.1f}–{100 * hi:.1f}), {k}/{n}"


def report(rows: list[dict]) -> str:
    lines = ["| objects asked | size | still or moving | shape right (95% interval), right/objects |",
             "|---|---|---|---|"]
    pairs = {name: matched_shapes(rows, cats) for name, cats in GROUPS.items()}
    for name, group in pairs.items():
        counts = tally(group)
        for key in sorted(counts, key=lambda k: (k == ("all", "all"), k)):
            k, n = counts[key]
            lines.append(f"| {name} | {key[0]} | {key[1]} | {_pct(k, n)} |")
    lines += ["", "Two-object prompts, shape asked (rows) against shape drawn (columns):", ""]
    matrix = confusion(pairs["two objects"])
    shapes = sorted({s for pair in matrix for s in pair})
    lines += ["| asked \\ drawn | " + " | ".join(shapes) + " |", "|---" * (len(shapes) + 1) + "|"]
    lines += [f"| {a} | " + " | ".join(str(matrix[(a, b)]) for b in shapes) + " |" for a in shapes]
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("samples", help="an eval output folder or its samples.jsonl(.gz)")
    ap.add_argument("--out", help="also write the tables here")
    args = ap.parse_args()
    text = report(samples_or_exit(args.samples, "shape_by_scene"))
    print(text)
    if args.out:
        with open(args.out, "w") as f:
            f.write(f"# python benchmarks/shape_by_scene.py {args.samples}\n\n{text}\n")


if __name__ == "__main__":
    main()
