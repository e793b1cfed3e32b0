"""Where does a model's cross-attention put each object's words? Read off one forward pass.

For the benchmark's relation prompts (cut to one frame, as `relation_stills.py` does) this renders
the prompt's own scene, encodes it, noises it to each timestep t and runs the transformer once,
keeping every block's cross-attention (`kinema.train.grounding`). Per split and t it prints:

- **on object**: the share of a named word's attention (size, colour, shape words; averaged over
  heads and blocks) that falls on its object's cells, the complement of the grounding loss,
  beside the share that spreading it evenly over the frame would give;
- **side as asked**: how often the subject's colour word looks, on average, further towards the
  asked side than the other object's colour word ("red left of blue": red's attention centroid
  left of blue's). Near pure noise (t = 0.95) the picture says nearly nothing, so this is what the
  text alone tells each place; 50% is a model that ignores the relation words.

    python benchmarks/attention_grounding.py --model v9=shipped --model g=runs/g/final --size 64x64
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from relation_stills import load_model, parse_pairs, relation_items, size_or_exit  # noqa: E402  (a sibling script)

ASKED_SIGN = {"left of": ("x", -1), "right of": ("x", 1), "above": ("y", -1), "below": ("y", 1)}


def attention_grid(maps: list[torch.Tensor], token: int, grid: tuple[int, int]) -> np.ndarray:
    """One text token's attention over the h x w token grid (first token time), averaged over
    heads and blocks and scaled to sum to 1."""
    h, w = grid
    a = torch.stack([m[0, :, : h * w, token].float().mean(0) for m in maps]).mean(0)
    a = a / a.sum().clamp_min(1e-12)
    return a.reshape(h, w).numpy()


def centroid(a: np.ndarray) -> tuple[float, float]:
    """(x, y) of an attention grid's centre of mass, as fractions of the frame."""
    h, w = a.shape
    ys, xs = (np.arange(h) + 0.5) / h, (np.arange(w) + 0.5) / w
    return float((a.sum(0) * xs).sum()), float((a.sum(1) * ys).sum())


def measure(pipe, items: list, timesteps: list[float], seeds: int) -> dict:
    """{(split, t): {"on": [...], "chance": [...], "side": [...]}} over items and noise seeds."""
    from kinema.diffusion.flow import add_noise
    from kinema.train.grounding import grounding_loss, grounding_targets, phrase_spans, tokens_of
    from kinema.world.captions import relation_between
    from kinema.world.render import render

    dit = pipe.transformer
    pt, ph, pw = dit.config.patch_size
    out: dict = {}
    for item in items:
        spec = item.spec
        frames = torch.from_numpy(render(spec)).permute(3, 0, 1, 2)[None].float() / 127.5 - 1.0
        with torch.no_grad():
            z = pipe.vae.encode(frames.to(pipe.device)).float()
        grid = (z.shape[2] // pt, z.shape[3] // ph, z.shape[4] // pw)
        states, mask = pipe.encode_text([item.prompt])
        offsets = pipe.text_encoder.token_offsets([item.prompt])
        targets, weights = grounding_targets([spec], [item.prompt], offsets, grid, pipe.temporal_factor, pt,
                                             states.shape[1])
        if weights.sum() == 0:
            continue
        chance = float((targets[0].mean(1) * weights[0]).sum() / weights[0].sum())
        found = phrase_spans(spec, item.prompt)
        colour_tokens = [tokens_of([spans[1]], offsets[0]) for _, spans in found]
        rel = relation_between(spec, 0, 1)
        for t in timesteps:
            for seed in range(seeds):
                noise = torch.randn(z.shape, generator=torch.Generator().manual_seed(seed))
                tt = torch.full((1, z.shape[2]), float(t))
                maps: list[torch.Tensor] = []
                with torch.no_grad():
                    dit(add_noise(z, noise.to(z.device), tt.to(z.device)), tt.to(z.device), states, mask,
                        cross_attention=maps)
                maps = [m.cpu() for m in maps]
                row = out.setdefault((item.split, t), {"on": [], "chance": [], "side": []})
                row["on"].append(1.0 - float(grounding_loss(maps, targets, weights)))
                row["chance"].append(chance)
                if rel is not None and len(colour_tokens) == 2 and all(colour_tokens):
                    (ax, ay), (bx, by) = (centroid(np.mean([attention_grid(maps, j, grid[1:]) for j in toks], 0))
                                          for toks in colour_tokens)
                    axis, sign = ASKED_SIGN[rel]
                    diff = (ax - bx) if axis == "x" else (ay - by)
                    row["side"].append(float(np.sign(diff) == sign))
    return out


def report_lines(results: dict) -> list[str]:
    from relation_placement import share

    lines = []
    for (split, t), row in sorted(results.items(), key=lambda kv: (kv[0][0] != "seen", -kv[0][1])):
        side = row["side"]
        lines.append(f"  {split} t={t:g}: on object {100 * np.mean(row['on']):.1f}% "
                     f"(even spread {100 * np.mean(row['chance']):.1f}%); side as asked "
                     f"{share(int(sum(side)), len(side))}")
    return lines


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", nargs="+", action="extend", required=True, metavar="NAME=PATH",
                    help="pipeline folders (PATH 'shipped' for the shipped model)")
    ap.add_argument("--n", type=int, default=100, help="relation prompts per split (default 100)")
    ap.add_argument("--seeds", type=int, default=2, help="noise draws per prompt and t (default 2)")
    ap.add_argument("--t", type=float, nargs="+", default=[0.95, 0.5, 0.1], help="timesteps (default 0.95 0.5 0.1)")
    ap.add_argument("--size", default="128x128", help="WIDTHxHEIGHT (default 128x128)")
    args = ap.parse_args()
    if args.n < 1 or args.seeds < 1 or not all(0 < t <= 1 for t in args.t):
        sys.exit("attention_grounding: --n and --seeds must be at least 1, each --t in (0, 1]")
    try:
        models = parse_pairs(args.model, "--model")
    except ValueError as exc:
        sys.exit(f"attention_grounding: {exc}")

    width, height = size_or_exit("attention_grounding", args.size)
    items = relation_items(0, args.n, width, height)
    for name, path in models.items():
        pipe = load_model("attention_grounding", name, path)
        print(f"{name} ({path}), {args.size}, {len(items)} prompts x {args.seeds} noises")
        print("\n".join(report_lines(measure(pipe, items, args.t, args.seeds))), flush=True)


if __name__ == "__main__":
    main()
