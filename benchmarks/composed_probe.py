"""Probe: does composing per-object sub-prompts at sampling time help two-object prompts?

Composable guidance (Liu et al. 2022) with the distilled model, whose every call already carries
guidance 5: v = a v(full) + lam sum_k v(object_k) + (1 - a - 2 lam) v(""). Each object's
sub-prompt is the canonical caption of the item's scene with that object alone (same background),
i.e. a perfect parse of the prompt. "1:0" is the model's own sampling (one call a step); the others
take four calls a step. Prints, per category and split, how many videos the analyzer judges right
in binding, relation and everything, on the benchmark's first `--n` binding and relation prompts.

    python benchmarks/composed_probe.py --n 25 --configs 1:0,1:0.5,1:1
"""

from __future__ import annotations

import argparse
import copy
import json
import math
import sys
import time
from concurrent.futures import ProcessPoolExecutor

import torch

from kinema import Pipeline
from kinema.diffusion.sampling import sample
from kinema.eval.prompts import make_item
from kinema.eval.run import _analyze_and_judge
from kinema.pipeline import _Engine, _float_to_u8, _Run
from kinema.world.captions import canonical_caption


class Composed:
    """A velocity model that evaluates every term in one batch and returns their weighted sum."""

    def __init__(self, model, states: torch.Tensor, mask: torch.Tensor, weights: list[float]):
        self.model, self.states, self.mask, self.weights = model, states, mask, weights

    def __call__(self, x, tt, _states, _mask):
        terms = len(self.weights)
        v = self.model(x.repeat(terms, 1, 1, 1, 1), tt.repeat(terms, 1), self.states, self.mask)
        v = v.view(terms, *x.shape)
        return sum(w * v[i] for i, w in enumerate(self.weights))


def sub_prompts(spec) -> list[str]:
    """One canonical caption per object of `spec`, each with that object alone."""
    out = []
    for obj in spec.objects:
        one = copy.deepcopy(spec)
        one.objects = [copy.deepcopy(obj)]
        out.append(canonical_caption(one))
    return out


def generate(pipe, items, seed: int, a: float, lam: float) -> list:
    """Decoded uint8 videos [T, H, W, 3] for `items` (all of one size and length), sampled as
    `pipe.generate_batch` samples them: the same per-seed noise and the model's own steps,
    sampler and shift; only the velocity is the composed one."""
    settings = pipe.resolve_sampling()
    if settings["guidance"] != 1.0:
        raise SystemExit(f"composed_probe: the model samples with guidance {settings['guidance']:g}; "
                         "the probe composes distilled calls (guidance 1)")
    spec = items[0].spec
    run = _Run(pipe, spec.width, spec.height, settings["steps"], 1.0, settings["sampler"], 0, settings["shift"])
    frames = 1 + math.ceil((spec.num_frames - 1) / pipe.temporal_factor)
    b = len(items)
    gens = [torch.Generator().manual_seed(seed) for _ in items]
    noise = torch.cat([torch.randn((1, pipe.latent_channels, frames, run.lat_h, run.lat_w), generator=g)
                       for g in gens])
    full = [it.prompt for it in items]
    if lam == 0 and a == 1:
        texts, weights = full, [1.0]
    else:
        subs = [sub_prompts(it.spec) for it in items]
        texts = full + [s[0] for s in subs] + [s[1] for s in subs] + [""] * b
        weights = [a, lam, lam, 1.0 - a - 2 * lam]
    states, mask = pipe.encode_text(texts)
    model = Composed(pipe.transformer, states, mask, weights)
    with pipe.denoise_precision_context():
        z = sample(model, noise, states[:b], mask[:b], guidance=1.0, steps=run.steps, sampler=run.sampler,
                   shift=pipe._shift(frames, run.lat_h, run.lat_w, run.shift)).float()
    engine = _Engine(run, None, 0)
    return [_float_to_u8(engine.decode(z[i:i + 1])[:, :spec.num_frames]) for i in range(b)]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=25)
    ap.add_argument("--configs", default="1:0,1:0.5,1:1,0:1", help="full-prompt weight:sub-prompt weight, ...")
    ap.add_argument("--categories", default="binding,relation")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--model", default=None)
    args = ap.parse_args()
    pipe = Pipeline.from_pretrained(args.model) if args.model else Pipeline.from_pretrained()
    items = [make_item(c, s, i) for c in args.categories.split(",") for s in ("seen", "heldout")
             for i in range(args.n)]
    with ProcessPoolExecutor(2) as pool:
        for a, lam in _configs(args.configs):
            _run_config(pipe, pool, items, args.seed, a, lam)


def _configs(text: str) -> list[tuple[float, float]]:
    return [tuple(map(float, c.split(":"))) for c in text.split(",")]


def _run_config(pipe, pool, items, seed: int, a: float, lam: float) -> None:
    """Generate and judge `items` with one weighting; print the counts per category and split."""
    t0 = time.perf_counter()
    futs = []
    for start in range(0, len(items), 8):
        chunk = items[start:start + 8]
        for it, frames in zip(chunk, generate(pipe, chunk, seed, a, lam)):
            futs.append((it, pool.submit(_analyze_and_judge, (it.category, it.spec.to_dict(), frames))))
    rows = {}
    for it, f in futs:
        _, v = f.result()
        key = f"{it.category}/{it.split}"
        r = rows.setdefault(key, {"n": 0, "binding": 0, "relation": 0, "everything": 0})
        r["n"] += 1
        for k in ("binding", "relation", "everything"):
            r[k] += bool(v.get(k))
    print(f"full={a} sub={lam} ({time.perf_counter() - t0:.0f} s)", json.dumps(rows), flush=True)


if __name__ == "__main__":
    sys.exit(main())
