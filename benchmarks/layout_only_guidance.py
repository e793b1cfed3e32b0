"""Does a layout transformer draw two-object scenes better from its layout alone than from the
layout and the prompt's words? Both ways on the same relation and binding prompts and seeds.

    python benchmarks/layout_only_guidance.py [--model DIR] [--n 25] [-o DIR]

"words + layout" is the pipeline as it ships: the guided branch reads the prompt's words and the
planned layout. "layout only" gives that branch the words of the empty prompt (what training's
`layout_caption_dropout` shows the transformer) and the same layout; the unguided branch has
neither, as always. The planner still reads the prompt, so both ways draw the same plan. Writes
both eval folders and their paired comparison (`compare.md`) under the output folder.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Callable


def layout_only(sample_fn: Callable) -> Callable:
    """`sample_fn` (kinema.diffusion.sampling.sample) with the guided branch's words replaced by
    the unguided branch's whenever a layout is given; without a layout, unchanged."""

    def sample(model, noise, states, mask, *, uncond_states=None, uncond_mask=None, layout=None, **kw):
        if layout is not None and uncond_states is not None:
            b = states.shape[0]
            states = uncond_states.expand(b, *uncond_states.shape[1:]).clone()
            mask = uncond_mask.expand(b, *uncond_mask.shape[1:]).clone()
        return sample_fn(model, noise, states, mask, uncond_states=uncond_states, uncond_mask=uncond_mask,
                         layout=layout, **kw)

    return sample


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", default=None, help="a pipeline folder (default: the shipped model)")
    ap.add_argument("--n", type=int, default=25, help="prompts per category and split (2 seeds each)")
    ap.add_argument("-o", "--output", default="runs/layout_only_guidance")
    args = ap.parse_args()

    import kinema.pipeline as pipeline_module
    from kinema.eval.compare import compare, markdown, read_samples
    from kinema.eval.run import run_eval

    pipe = pipeline_module.Pipeline.from_pretrained(args.model)
    if pipe.planner is None:
        raise SystemExit("layout_only_guidance: the model has no scene planner, so no layout to guide by")
    out = Path(args.output)
    shipped = pipeline_module.sample
    runs = {}
    for name, sample_fn in (("words_and_layout", shipped), ("layout_only", layout_only(shipped))):
        pipeline_module.sample = sample_fn
        try:
            run_eval(pipe, out / name, n=args.n, categories=("relation", "binding"), progress=True)
        finally:
            pipeline_module.sample = shipped
        runs[name] = read_samples(out / name / "samples.jsonl")
    text = markdown(compare(runs["words_and_layout"], runs["layout_only"]), "words + layout", "layout only")
    (out / "compare.md").write_text(text, encoding="utf-8")
    print(text)


if __name__ == "__main__":
    main()
