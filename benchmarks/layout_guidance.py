"""Can guidance lean a layout transformer harder on its layout? Three ways of guiding, on the same
relation and binding prompts and seeds, each compared with the pipeline as it ships.

    python benchmarks/layout_guidance.py [--model DIR] [--n 25] [--boost 2.0] [-o DIR]

- "words + layout" (as shipped): v = v_u + g (v_c - v_u); the guided branch reads the prompt's
  words and the planned layout, the unguided one neither.
- "layout only": the guided branch gets the empty prompt's words (what training's
  `layout_caption_dropout` shows the transformer) and the same layout.
- "layout boost": v = v_u + g (v_c - v_u) + h (v_c - v_w), where v_w reads the words without the
  layout (what `layout_dropout` trains): extra guidance toward what the layout adds, one more
  transformer call a step.

The planner still reads the prompt, so every way draws the same plan. Writes each eval folder and
the paired comparisons (`layout_only_vs_shipped.md`, `layout_boost_vs_shipped.md`).
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Callable

import torch


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


class LayoutBoost:
    """A transformer whose guided velocity gains h (v_c - v_w) once combined as v_u + g (v_c - v_u):
    on a guided call (batch [guided; unguided], the unguided half's layout zero) it returns
    v_c + (h / g)(v_c - v_w) for the guided half. Any other call passes through."""

    def __init__(self, model, guidance: float, boost: float):
        self.model, self.guidance, self.boost = model, float(guidance), float(boost)

    def __getattr__(self, name):
        return getattr(self.model, name)

    def __call__(self, x, tt, states, mask, layout=None, **kw):
        if layout is None:
            return self.model(x, tt, states, mask, **kw)
        v = self.model(x, tt, states, mask, layout=layout, **kw)
        b = x.shape[0] // 2
        if x.shape[0] % 2 or self.guidance == 0 or bool(layout[b:].any()) or not bool(layout[:b].any()):
            return v
        v_words = self.model(x[:b], tt[:b], states[:b], mask[:b], layout=torch.zeros_like(layout[:b]), **kw)
        v_c, v_u = v.chunk(2)
        return torch.cat([v_c + (self.boost / self.guidance) * (v_c - v_words), v_u])


def layout_boost(sample_fn: Callable, boost: float) -> Callable:
    """`sample_fn` with its transformer wrapped in `LayoutBoost` at the call's guidance."""

    def sample(model, noise, states, mask, *, guidance: float = 5.0, **kw):
        return sample_fn(LayoutBoost(model, guidance, boost), noise, states, mask, guidance=guidance, **kw)

    return sample


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", default=None, help="a pipeline folder (default: the shipped model)")
    ap.add_argument("--n", type=int, default=25, help="prompts per category and split (2 seeds each)")
    ap.add_argument("--boost", type=float, default=2.0, help="h, the layout boost's scale")
    ap.add_argument("-o", "--output", default="runs/layout_guidance")
    args = ap.parse_args()

    import kinema.pipeline as pipeline_module
    from kinema.eval.compare import compare, markdown, read_samples
    from kinema.eval.run import run_eval

    pipe = pipeline_module.Pipeline.from_pretrained(args.model)
    if pipe.planner is None:
        raise SystemExit("layout_guidance: the model has no scene planner, so no layout to guide by")
    out = Path(args.output)
    shipped = pipeline_module.sample
    ways = {"shipped": shipped, "layout_only": layout_only(shipped),
            "layout_boost": layout_boost(shipped, args.boost)}
    runs = {}
    for name, sample_fn in ways.items():
        pipeline_module.sample = sample_fn
        try:
            run_eval(pipe, out / name, n=args.n, categories=("relation", "binding"), progress=True)
        finally:
            pipeline_module.sample = shipped
        runs[name] = read_samples(out / name / "samples.jsonl")
    for name in ("layout_only", "layout_boost"):
        text = markdown(compare(runs["shipped"], runs[name]), "words + layout", name.replace("_", " "))
        (out / f"{name}_vs_shipped.md").write_text(text, encoding="utf-8")
        print(text)


if __name__ == "__main__":
    main()
