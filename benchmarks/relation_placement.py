"""Does the model place two objects as the relation words say, apart from drawing them right?

The benchmark's relation verdict needs both objects with the right colour and shape and the right
relation, so it cannot tell "ignores the relation words" from "draws the wrong shapes". This reads
the relation prompts of a `kinema eval` run and, where the video shows both asked colours (each
object found by its colour alone: the two colours of a relation prompt differ), judges their
placement where they were first seen by the analyzer's rule. It prints how often that placement is
the asked relation, the reverse of it (e.g. "right of" for "left of"), another relation, or
unclear: a model that ignores the words places the pair right about as often as reversed. Each
split is also told by axis: "left of" / "right of" prompts apart from "above" / "below" ones.

    python benchmarks/relation_placement.py RUN_OR_SAMPLES [RUN_OR_SAMPLES ...]

Needs samples from `kinema eval` that keep where objects were first seen (`first_xy`).
"""

from __future__ import annotations

import sys
from collections import Counter

from kinema.errors import KinemaError
from kinema.eval.compare import read_samples
from kinema.eval.stats import wilson_interval
from kinema.world.analyze import relation
from kinema.world.captions import relation_between
from kinema.world.spec import SceneSpec

REVERSE = {"left of": "right of", "right of": "left of", "above": "below", "below": "above"}
OUTCOMES = ("asked", "reversed", "other", "unclear")
AXES = {"left of": "left/right", "right of": "left/right", "above": "above/below", "below": "above/below"}


def placement(record: dict) -> str | None:
    """'asked', 'reversed', 'other' or 'unclear' for one relation sample; None when the video
    does not show both asked colours."""
    spec = SceneSpec.from_dict(record["spec"])
    want = relation_between(spec, 0, 1)
    found = []
    for obj in spec.objects:
        same_colour = [d for d in record["detected"] if d["color"] == obj.color]
        if not same_colour:
            return None
        best = max(same_colour, key=lambda d: d["frames_seen"])
        if "first_xy" not in best:
            raise KinemaError("these samples do not keep where objects were first seen (first_xy); "
                              "run kinema eval again with this version")
        found.append(best["first_xy"])
    (ax, ay), (bx, by) = found
    w, h = spec.width, spec.height
    got = relation(ax * w, ay * h, bx * w, by * h, min(w, h))
    if got is None:
        return "unclear"
    return "asked" if got == want else "reversed" if got == REVERSE[want] else "other"


def asked_axis(record: dict) -> str:
    """'left/right' or 'above/below': the axis the prompt's relation is on."""
    return AXES[relation_between(SceneSpec.from_dict(record["spec"]), 0, 1)]


def _counts(rows: list[dict]) -> dict:
    placed = [p for p in map(placement, rows) if p is not None]
    return {"prompts": len(rows), "both_colours": len(placed), **Counter(placed)}


def tally(rows: list[dict]) -> dict:
    relation_rows = [r for r in rows if r["category"] == "relation"]
    return {split: _counts([r for r in relation_rows if r["split"] == split])
            for split in sorted({r["split"] for r in relation_rows})}


def tally_by_axis(rows: list[dict]) -> dict:
    """{(split, axis): counts} for the relation prompts, axis as in `asked_axis`."""
    groups: dict[tuple[str, str], list[dict]] = {}
    for r in rows:
        if r["category"] == "relation":
            groups.setdefault((r["split"], asked_axis(r)), []).append(r)
    return {key: _counts(groups[key]) for key in sorted(groups)}


def share(k: int, n: int) -> str:
    """'k (p%, lo–hi)': a count, its share of n and the share's 95% Wilson interval."""
    lo, hi = wilson_interval(k, n) if n else (0.0, 0.0)
    return f"{k} ({100 * k / max(n, 1):.1f}%, {100 * lo:.1f}–{100 * hi:.1f})"


def main() -> None:
    if len(sys.argv) < 2:
        sys.exit(__doc__)
    for path in sys.argv[1:]:
        try:
            rows = read_samples(path)
            result, by_axis = tally(rows), tally_by_axis(rows)
        except KinemaError as exc:
            sys.exit(f"relation_placement: {exc}")
        print(path)
        for split, c in result.items():
            print(f"  {split}: {_line(c)}")
            for (axis_split, axis), c_axis in by_axis.items():
                if axis_split == split:
                    print(f"    {axis}: {_line(c_axis)}")


def _line(c: dict) -> str:
    n = c["both_colours"]
    parts = [f"{outcome} {share(c.get(outcome, 0), n)}" for outcome in OUTCOMES]
    return f"{c['prompts']} videos, both colours shown in {n}; placement: " + ", ".join(parts)


if __name__ == "__main__":
    main()
