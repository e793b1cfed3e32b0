"""Does a model place two objects as the relation words say? Asked on stills, in a minute or two.

A relation prompt's placement is decided in the first latent frame, which is a latent frame of its
own (the autoencoder is causal), so one-frame images of the benchmark's relation prompts ask the
same question as the videos for a fraction of the time. For each model this generates stills of
relation prompts START to START+N−1 (seen and held-out, 2 seeds), judges them like `kinema eval`
and prints, per split, the benchmark's relation and binding verdicts and how often the pair is
placed as asked, reversed (e.g. "right of" for "left of"), another relation or unclear
(`relation_placement.py`'s rule). A model that ignores the relation words places the pair as
often reversed as asked.

    python benchmarks/relation_stills.py --model v9=src/kinema/weights/kinema-tiny \\
        --model ft=runs/ft/final --guidance ft=5 -o runs/relation_stills

Each model's report and samples go to OUT/NAME (`relation_placement.py` reads them again).
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import replace
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import relation_placement  # noqa: E402  (a sibling script)

OUTCOMES = relation_placement.OUTCOMES


def parse_pairs(words: list[str], what: str, convert=str) -> dict:
    """NAME=VALUE words as a dict, in order; a clear error for a malformed or repeated one."""
    pairs: dict = {}
    for word in words:
        name, sep, value = word.partition("=")
        if not sep or not name or not value:
            raise ValueError(f"{what} {word!r}: use NAME=VALUE")
        if name in pairs:
            raise ValueError(f"{what} {name!r} given twice")
        try:
            pairs[name] = convert(value)
        except ValueError:
            raise ValueError(f"{what} {word!r}: {value!r} is not valid") from None
    return pairs


def models_and_guidance(tool: str, model_words: list[str], guidance_words: list[str]) -> tuple[dict, dict]:
    """--model NAME=PATH and --guidance NAME=G words as dicts; exits with a line naming `tool` for a
    malformed pair or a guidance for no model."""
    try:
        models = parse_pairs(model_words, "--model")
        guidance = parse_pairs(guidance_words, "--guidance", float)
    except ValueError as exc:
        sys.exit(f"{tool}: {exc}")
    unknown = sorted(set(guidance) - set(models))
    if unknown:
        sys.exit(f"{tool}: --guidance names {', '.join(unknown)}, which no --model has")
    return models, guidance


def load_model(tool: str, name: str, path: str):
    """The pipeline at PATH ('shipped': the shipped model); exits with a line naming `tool` and the
    model when it cannot be loaded."""
    from kinema.errors import KinemaError
    from kinema.pipeline import Pipeline

    try:
        return Pipeline.from_pretrained(None if path == "shipped" else path)
    except KinemaError as exc:
        sys.exit(f"{tool}: model {name}: {exc}")


def size_or_exit(tool: str, size: str) -> tuple[int, int]:
    """--size WIDTHxHEIGHT as (width, height); exits with a line naming `tool` for a bad one."""
    from kinema.errors import KinemaError
    from kinema.pipeline import parse_size

    try:
        return parse_size(size)
    except KinemaError as exc:
        sys.exit(f"{tool}: --size: {exc}")


def relation_items(start: int, n: int, width: int = 128, height: int = 128) -> list:
    """The benchmark's relation prompts START..START+N−1, both splits, the same words and objects
    as `kinema eval`'s videos (at 128x128; another size draws its own), cut to their first frame
    (where the relation is judged)."""
    from kinema.eval.prompts import make_item

    items = []
    for split in ("seen", "heldout"):
        for i in range(start, start + n):
            item = make_item("relation", split, i, width=width, height=height)
            item.spec = replace(item.spec, num_frames=1)
            item.spec.validate()
            items.append(item)
    return items


def summary_lines(records: list[dict]) -> list[str]:
    """Per split: relation and binding verdicts, and where the two asked colours were placed."""
    pct = relation_placement.share
    placement = relation_placement.tally(records)
    lines = []
    for split, c in placement.items():
        mine = [r for r in records if r["category"] == "relation" and r["split"] == split]
        right = sum(bool(r["verdict"].get("relation")) for r in mine)
        bound = sum(bool(r["verdict"].get("binding")) for r in mine)
        shown = c["both_colours"]
        asked, reversed_ = c.get("asked", 0), c.get("reversed", 0)
        lines.append(f"  {split}: {len(mine)} stills; relation right {pct(right, len(mine))}; "
                     f"binding right {pct(bound, len(mine))}; both colours in "
                     f"{shown}: " + ", ".join(f"{o} {pct(c.get(o, 0), shown)}" for o in OUTCOMES)
                     + f"; asked of asked or reversed {pct(asked, asked + reversed_)}")
    return lines


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", nargs="+", action="extend", required=True, metavar="NAME=PATH",
                    help="pipeline folders to compare (PATH 'shipped' for the shipped model)")
    ap.add_argument("--guidance", nargs="+", action="extend", default=[], metavar="NAME=G",
                    help="guidance scale for a model (default: the model's own)")
    ap.add_argument("--start", type=int, default=0, help="first relation prompt (default 0)")
    ap.add_argument("--n", type=int, default=100, help="prompts per split (default 100)")
    ap.add_argument("--seeds", type=int, default=2)
    ap.add_argument("--size", default="128x128", help="WIDTHxHEIGHT of the stills (default 128x128)")
    ap.add_argument("-o", "--output", required=True, help="folder for each model's report and samples")
    args = ap.parse_args()
    models, guidance = models_and_guidance("relation_stills", args.model, args.guidance)
    if args.start < 0 or args.n < 1 or args.seeds < 1:
        sys.exit("relation_stills: --start must be at least 0, --n and --seeds at least 1")

    from kinema.eval.compare import read_samples
    from kinema.eval.run import run_eval

    width, height = size_or_exit("relation_stills", args.size)
    items = relation_items(args.start, args.n, width, height)
    out = Path(args.output)
    for name, path in models.items():
        pipe = load_model("relation_stills", name, path)
        g = guidance.get(name)
        print(f"{name}: {path}, guidance {g if g is not None else 'the model default'}, "
              f"{len(items) * args.seeds} stills", file=sys.stderr)
        run_eval(pipe, out / name, n=args.n, seeds=tuple(range(args.seeds)), items=items, guidance=g,
                 model_name=f"{name} ({path}), relation prompts {args.start}–{args.start + args.n - 1} as stills",
                 progress=False)
        print(f"{name} ({path}, guidance {g if g is not None else 'default'})")
        print("\n".join(summary_lines(read_samples(out / name))), flush=True)


if __name__ == "__main__":
    main()
