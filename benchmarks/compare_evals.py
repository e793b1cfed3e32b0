"""Two `kinema eval` runs of the same benchmark compared item by item (paired), e.g. a speed
change against the run before it: per report row, B − A with its 95% interval and a verdict
(worse / better / same within the interval).

    python benchmarks/compare_evals.py RUN_A RUN_B [--names A B] [-o comparison.md]

RUN_A and RUN_B are eval output folders or their samples.jsonl(.gz) files.
"""

from __future__ import annotations

import argparse
from pathlib import Path


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("run_a")
    ap.add_argument("run_b")
    ap.add_argument("--names", nargs=2, metavar=("A", "B"), default=None, help="what to call the two runs")
    ap.add_argument("-o", "--output", default=None, help="also write the Markdown table here")
    args = ap.parse_args()

    from kinema.eval.compare import compare, markdown, samples_or_exit

    names = args.names or [args.run_a, args.run_b]
    result = compare(samples_or_exit(args.run_a, "compare_evals"), samples_or_exit(args.run_b, "compare_evals"))
    text = markdown(result, *names)
    print(text)
    if args.output:
        Path(args.output).write_text(text, encoding="utf-8")


if __name__ == "__main__":
    main()
