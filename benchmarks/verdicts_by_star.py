"""How much of each verdict the star costs, from `kinema eval` samples: every prompt of the
one-object and two-object categories is put in one of three groups, by the stars it asks for (none,
only large ones, at least one small one), and each group's rate of the category's own verdict and
of "everything right" is printed with its 95% interval, per split.

A group far below "no star" is a shape the model (or its autoencoder) cannot draw; the last column
is what the category's rate would be if that group did as well as prompts without a star.

    python benchmarks/verdicts_by_star.py RUN_OR_SAMPLES [--out FILE]
"""

from __future__ import annotations

import argparse

from kinema.eval.compare import samples_or_exit
from kinema.eval.stats import wilson_interval

VERDICT = {"single": "shape", "binding": "binding", "relation": "relation"}
GROUPS = ("no star", "large stars only", "a small star")


def star_group(spec: dict) -> str:
    """Which of GROUPS a scene falls in."""
    stars = [o for o in spec["objects"] if o["shape"] == "star"]
    if not stars:
        return GROUPS[0]
    return GROUPS[2] if any(o["size"] == "small" for o in stars) else GROUPS[1]


def tally(rows: list[dict], category: str, split: str, verdict: str) -> dict[str, tuple[int, int]]:
    """group -> (videos with `verdict` true, videos), for one category and split."""
    counts = {g: [0, 0] for g in GROUPS}
    for row in rows:
        if row["category"] == category and row["split"] == split:
            c = counts[star_group(row["spec"])]
            c[0] += bool(row["verdict"].get(verdict))
            c[1] += 1
    return {g: (k, n) for g, (k, n) in counts.items()}


def _pct(k: int, n: int) -> str:
    if n == 0:
        return "–"
    lo, hi = wilson_interval(k, n)
    return f"{100 * k / n:.1f}% ({100 * lo:.1f}–{100 * hi:.1f}), {k}/{n}"


def report(rows: list[dict]) -> str:
    lines = ["| category | split | verdict | " + " | ".join(GROUPS) + " | all | all, stars as good as none |",
             "|---|---|---|" + "---|" * (len(GROUPS) + 2)]
    for category, own in VERDICT.items():
        for split in ("seen", "heldout"):
            for verdict in (own, "everything"):
                t = tally(rows, category, split, verdict)
                k_all, n_all = sum(k for k, _ in t.values()), sum(n for _, n in t.values())
                if n_all == 0:
                    continue
                k0, n0 = t[GROUPS[0]]
                if_none = f"{100 * (k0 / n0):.1f}%" if n0 else "–"
                lines.append(f"| {category} | {split} | {verdict} | "
                             + " | ".join(_pct(*t[g]) for g in GROUPS)
                             + f" | {_pct(k_all, n_all)} | {if_none} |")
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("run", help="a `kinema eval` output folder or its samples.jsonl(.gz)")
    ap.add_argument("--out", default=None, help="also write the table to this file")
    args = ap.parse_args()
    text = f"# python benchmarks/verdicts_by_star.py {args.run}\n\n{report(samples_or_exit(args.run, 'verdicts_by_star'))}\n"
    print(text)
    if args.out:
        with open(args.out, "w") as f:
            f.write(text)


if __name__ == "__main__":
    main()
