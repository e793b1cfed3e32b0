"""Where a two-object video goes wrong: each planned object is found in the video by where the plan
put it (the detected object whose first position lies nearest the planned start), and its colour
and shape are read as its own, the other object's, a third one, or the object as missing.

A model that follows the layout's positions but reads colour and shape from the words alone swaps
them between the two objects about as often as it keeps them; one that reads them from the layout
keeps its own.

    python benchmarks/two_object_binding.py v10=benchmarks/results/kinema-tiny-v10 v11=runs/eval

Each argument is LABEL=PATH, PATH a `kinema eval` output folder or its samples.jsonl(.gz); the
samples must carry plans (a layout model, sampled with its planner).
"""

from __future__ import annotations

import argparse
import collections

from kinema.errors import KinemaError
from kinema.eval.compare import read_samples

NEAR = 0.15          # the farthest a detected first position may lie from the planned start
EARLY_FRAMES = 2     # a detected object that first appears later is not the planned one


def attribute_verdict(found: str, own: str, other: str) -> str:
    if found == own:
        return "own"
    return "other's" if found == other else "third"


def binding_counts(samples: list[dict]) -> dict:
    """Per planned object of the two-object plans: counts of own / other's / third colour (over the
    plans whose two colours differ) and shape (whose two shapes differ), how many objects were missing,
    and how many videos had both objects wholly their own."""
    colour, shape = collections.Counter(), collections.Counter()
    missing = videos = both_own = 0
    for sample in samples:
        plan = sample.get("plan") or {}
        objects, starts = plan.get("objects") or [], plan.get("starts") or []
        if len(objects) != 2 or len(starts) != 2:
            continue
        videos += 1
        early = [d for d in sample.get("detected", []) if d.get("first_frame", 0) <= EARLY_FRAMES]
        own_both = True
        for k, (planned, start) in enumerate(zip(objects, starts)):
            other = objects[1 - k]
            near = [(sum((a - b) ** 2 for a, b in zip(d["first_xy"], start)) ** 0.5, i)
                    for i, d in enumerate(early)]
            distance, nearest = min(near, default=(float("inf"), -1))
            if distance > NEAR:
                missing += 1
                own_both = False
                continue
            found = early[nearest]
            c = attribute_verdict(found["color"], planned["color"], other["color"])
            s = attribute_verdict(found["shape"], planned["shape"], other["shape"])
            if planned["color"] != other["color"]:
                colour[c] += 1
            if planned["shape"] != other["shape"]:
                shape[s] += 1
            own_both = own_both and c == "own" and s == "own"
        both_own += own_both
    return {"videos": videos, "objects": 2 * videos, "missing": missing, "colour": dict(colour),
            "shape": dict(shape), "both_own": both_own}


def table(results: dict[str, dict]) -> str:
    def pct(n: int, total: int) -> str:
        return f"{100 * n / total:.1f}%" if total else "-"

    head = "| row | " + " | ".join(results) + " |"
    rows = [head, "|---|" + "---|" * len(results)]
    lines = [("two-object videos", lambda r: str(r["videos"])),
             ("object missing at its planned place", lambda r: pct(r["missing"], r["objects"]))]
    for attr in ("colour", "shape"):
        for verdict in ("own", "other's", "third"):
            lines.append((f"{attr}: {verdict}",
                          lambda r, a=attr, v=verdict: pct(r[a].get(v, 0), sum(r[a].values()))))
    lines.append(("both objects wholly their own", lambda r: pct(r["both_own"], r["videos"])))
    for name, cell in lines:
        rows.append(f"| {name} | " + " | ".join(cell(r) for r in results.values()) + " |")
    return "\n".join(rows)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("runs", nargs="+", metavar="LABEL=PATH")
    args = parser.parse_args()
    results = {}
    for item in args.runs:
        label, sep, path = item.partition("=")
        if not sep:
            parser.error(f"{item!r}: expected LABEL=PATH")
        try:
            samples = read_samples(path)
        except KinemaError as exc:
            parser.error(str(exc))
        counts = binding_counts(samples)
        if not counts["videos"]:
            parser.error(f"{path}: no samples with a two-object plan (was the model sampled with a planner?)")
        results[label] = counts
    print("Planned objects of the two-object prompts, found where the plan put them (nearest first "
          f"position within {NEAR}). Colour rows: share of the objects found whose partner differs in colour; "
          "shape rows: in shape.\n")
    print(table(results))


if __name__ == "__main__":
    main()
