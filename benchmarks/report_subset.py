"""A `kinema eval` report's rows restricted to its first N prompts per category and split.

The benchmark's prompt sets are nested (prompt i is the same for every n > i), so this compares a
large run with a smaller one on the very same prompts:

    python benchmarks/report_subset.py benchmarks/results/kinema-tiny-v0/samples.jsonl.gz 50
"""

from __future__ import annotations

import argparse


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("samples", help="samples.jsonl or samples.jsonl.gz of a kinema eval report")
    ap.add_argument("n", type=int, help="prompts per category and split to keep")
    args = ap.parse_args()

    from kinema.eval.compare import samples_or_exit
    from kinema.eval.run import markdown, summarize

    records = samples_or_exit(args.samples, "report_subset")
    kept = [r for r in records if r["index"] < args.n]
    seeds = sorted({r["seed"] for r in kept})
    report = summarize(kept, n=args.n, seeds=seeds, elapsed=0.0, model=f"{args.samples}, first {args.n} prompts")
    print(markdown(report))


if __name__ == "__main__":
    main()
