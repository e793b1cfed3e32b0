"""Re-test rows of a paired comparison on prompts the benchmark has not used.

`kinema eval --n 200` judges prompts 0–199 of each category and split. A row that came out worse
(or better) there can be checked on the next ones, which no decision has looked at yet: this
runs prompts START to START+N−1 of the chosen categories and splits under two sampling settings
of one model, judges them like `kinema eval`, and prints the paired comparison.

    python benchmarks/fresh_prompts.py --categories relation binding --splits heldout \\
        --start 200 --n 200 --a shift=auto --b shift=6 -o runs/fresh

A setting is KEY=VALUE with KEY one of steps, guidance, sampler, shift; VALUE "auto" means the
model's default. Each side's report and samples are written under OUT/a and OUT/b.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

SETTING_TYPES = {"steps": int, "guidance": float, "sampler": str, "shift": float}


def parse_setting(words: list[str]) -> dict:
    setting = {}
    for word in words:
        key, sep, value = word.partition("=")
        if not sep or key not in SETTING_TYPES:
            raise ValueError(f"setting {word!r}: use KEY=VALUE with KEY one of {', '.join(SETTING_TYPES)}")
        if value != "auto":
            try:
                setting[key] = SETTING_TYPES[key](value)
            except ValueError:
                raise ValueError(f"setting {word!r}: {value!r} is not a valid {key}") from None
    return setting


def main() -> None:
    from kinema.eval.prompts import CATEGORIES, HELDOUT_CATEGORIES, SPLITS

    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", default=None, help="pipeline folder (default: the shipped model)")
    ap.add_argument("--categories", nargs="+", choices=CATEGORIES, required=True)
    ap.add_argument("--splits", nargs="+", choices=SPLITS, default=list(SPLITS))
    ap.add_argument("--start", type=int, default=200, help="first prompt index (default 200: after kinema eval's)")
    ap.add_argument("--n", type=int, default=200, help="prompts per category and split")
    ap.add_argument("--seeds", type=int, default=2)
    ap.add_argument("--a", nargs="+", default=[], metavar="KEY=VALUE", help="setting A (default: the model's)")
    ap.add_argument("--b", nargs="+", required=True, metavar="KEY=VALUE", help="setting B")
    ap.add_argument("-o", "--output", required=True, help="folder for both runs' reports")
    args = ap.parse_args()
    try:
        settings = {"a": parse_setting(args.a), "b": parse_setting(args.b)}
    except ValueError as exc:
        sys.exit(f"fresh_prompts: {exc}")
    if args.start < 0 or args.n < 1 or args.seeds < 1:
        sys.exit("fresh_prompts: --start must be at least 0, --n and --seeds at least 1")

    from kinema.eval.compare import compare, markdown, read_samples
    from kinema.eval.prompts import make_item
    from kinema.eval.run import run_eval
    from kinema.pipeline import Pipeline

    items = [make_item(category, split, i) for category in args.categories for split in args.splits
             if split == "seen" or category in HELDOUT_CATEGORIES
             for i in range(args.start, args.start + args.n)]
    if not items:
        sys.exit("fresh_prompts: no prompts: the static category has no held-out split")
    pipe = Pipeline.from_pretrained(args.model)
    out = Path(args.output)
    names = {}
    for side, setting in settings.items():
        names[side] = " ".join(f"{k}={v}" for k, v in setting.items()) or "the model's defaults"
        print(f"{side}: {names[side]}, {len(items) * args.seeds} videos", file=sys.stderr)
        run_eval(pipe, out / side, n=args.n, seeds=tuple(range(args.seeds)), items=items,
                 model_name=f"{args.model or 'kinema-tiny'}, {names[side]}, prompts {args.start}–"
                            f"{args.start + args.n - 1} of {' '.join(args.categories)} ({' '.join(args.splits)})",
                 **setting)
    result = compare(read_samples(out / "a"), read_samples(out / "b"))
    table = "\n".join(line for line in markdown(result, names["a"], names["b"]).splitlines()
                      if "| no data |" not in line) + "\n"
    (out / "comparison.md").write_text(table)
    print(table)


if __name__ == "__main__":
    main()
