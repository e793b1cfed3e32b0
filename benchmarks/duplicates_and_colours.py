"""The two failure counts the README quotes, read from `kinema eval` samples: one-object prompts
whose video shows more than one object (and how many of those show extra objects of the asked
colour), and two-object prompts with two different colours whose video shows both colours.

    python benchmarks/duplicates_and_colours.py RUN_OR_SAMPLES [RUN_OR_SAMPLES ...]

Each argument is an eval output folder or its samples.jsonl(.gz) file.
"""

from __future__ import annotations

import sys

from kinema.errors import KinemaError
from kinema.eval.compare import read_samples


def counts(rows: list[dict]) -> dict[str, int]:
    one = [r for r in rows if len(r["spec"]["objects"]) == 1]
    shown_more = [r for r in one if r["verdict"]["num_detected"] > 1]
    extra_same_colour = [r for r in shown_more
                         if sum(d["color"] == r["spec"]["objects"][0]["color"] for d in r["detected"]) > 1]
    two_colours = [r for r in rows if len(r["spec"]["objects"]) == 2
                   and r["spec"]["objects"][0]["color"] != r["spec"]["objects"][1]["color"]]
    both_shown = [r for r in two_colours
                  if {o["color"] for o in r["spec"]["objects"]} <= {d["color"] for d in r["detected"]}]
    return {"one_object": len(one), "shown_more": len(shown_more), "extra_same_colour": len(extra_same_colour),
            "two_colours": len(two_colours), "both_colours_shown": len(both_shown)}


def main() -> None:
    if len(sys.argv) < 2:
        sys.exit(__doc__)
    for path in sys.argv[1:]:
        try:
            c = counts(read_samples(path))
        except KinemaError as exc:
            sys.exit(f"duplicates_and_colours: {exc}")
        print(f"{path}: one-object videos {c['one_object']}, showing more than one {c['shown_more']} "
              f"(extra of the asked colour {c['extra_same_colour']}); two-colour prompts {c['two_colours']}, "
              f"both colours shown {c['both_colours_shown']}")


if __name__ == "__main__":
    main()
